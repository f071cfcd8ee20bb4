/**
 * The sandbox's bot configuration and environment, written into the data folder on every start (ports
 * may change): `bisman.yaml` for the bot. It is rewritten each start; edit this file, not it. (The CLI's
 * per-person env files come from sandbox/cli_people.ts.)
 *
 * @module
 */

import { stringify } from "yaml";
import { parseConfig } from "../core/config.ts";
import type { PersistentCluster } from "../standins/cluster.ts";
import { BOT_ROLE, OWNER_ROLE, SAMPLE_DB, STATE_DB } from "./seed.ts";
import { CLI_PEOPLE } from "./cli_people.ts";
import {
  OPS_CHANNEL,
  ROLE_SECRETS,
  SANDBOX_USERS,
  TEAM_ID,
  VAULT_DB_CONNECTION,
  VAULT_ROOT_ROLE,
} from "./standins.ts";

/** The sandbox's one target. */
export const TARGET = "sandbox";
/** The variable holding the bot role's password (never written into the YAML). */
export const PASSWORD_ENV = "BISMAN_SANDBOX_DB_PASSWORD";

const [alice, bob, carol] = SANDBOX_USERS.map((u) => u.id);

/** Facts the config is built from. */
export interface SandboxConfigInput {
  cluster: PersistentCluster;
  dataDir: string;
  /** The folder of `pg_dump -Fc` files. */
  dumpDir: string;
  /** The pgBackRest stanza, where pgbackrest is installed. */
  pgbackrest?: { stanza: string; configFile: string };
  /** Alertmanager's URL, linked from alert threads. */
  alertmanagerUrl?: string;
  /** The checklist's outside sources (sandbox/evidence.ts): keys for the target and top-level keys. */
  evidence?: { target: Record<string, unknown>; top: Record<string, unknown> };
}

/** The YAML document of the sandbox's config. */
export function sandboxConfigDoc(input: SandboxConfigInput): Record<string, unknown> {
  const { cluster } = input;
  const conn = (port: number) => ({
    host: "127.0.0.1",
    port,
    database: SAMPLE_DB,
    user: BOT_ROLE,
    password_env: PASSWORD_ENV,
    // The sandbox's loopback clusters have no TLS; the header of the written file says so.
    sslmode: "disable",
    connect_timeout_seconds: 3,
  });
  return {
    workspace: { team_id: TEAM_ID },
    slack: { ops_channel: OPS_CHANNEL.id, command_channels: [] },
    access: {
      operators: { users: [alice, bob], groups: [] },
      approvers: { users: [bob, carol], groups: [] },
      // The break-glass CLI: each person logs in to the state database as their own role
      // (sandbox/cli_people.ts); dave has a role too, and is refused for not being listed here.
      cli_operators: { alice, bob, carol },
    },
    policies: { default: { expiry_minutes: 15 } },
    targets: {
      [TARGET]: {
        description: "The sandbox's local primary and streaming replica (deno task dev)",
        primary: conn(cluster.primary.port),
        replicas: cluster.replica ? [{ name: "replica1", ...conn(cluster.replica.port) }] : [],
        vault: { kv_mount: "secret", database_connection: VAULT_DB_CONNECTION },
        roles: ROLE_SECRETS,
        credential_max_age_days: 90,
        backups: {
          dump_folder: {
            path: input.dumpDir,
            pattern: "bisman_*.dump",
            max_age_hours: 26,
            // A new sandbox has one dump: judging 30 days of retention would only ever warn.
            retention_days: 0,
          },
          ...(input.pgbackrest
            ? {
              pgbackrest: {
                stanza: input.pgbackrest.stanza,
                config_file: input.pgbackrest.configFile,
                ...(Deno.uid() === 0 ? { run_as: "postgres" } : {}),
                retention_days: 0,
              },
            }
            : {}),
          // WAL archiving is on only with the pgBackRest stanza (its archive_command): without it, judging
          // archiving would only ever report a sandbox's own choice as critical.
          ...(input.pgbackrest ? { wal_archiving: { max_age_minutes: 60 } } : {}),
          tools: { pg_restore: `${cluster.binDir}/pg_restore`, pgbackrest: "pgbackrest" },
        },
        security: {
          // The sandbox's own superuser (its harness), Vault's database-engine role and the tables' owner are
          // expected roles; so are the CLI's people, whom data folders made before the state database moved to
          // its own server still hold here. Any other login outside the seed's policy is an "unexpected DB user".
          other_roles: ["postgres", VAULT_ROOT_ROLE, "bisman_cli", OWNER_ROLE, ...CLI_PEOPLE],
          audit_reads: "replica",
          // The bot runs beside the sandbox's primary and may edit its pg_hba.conf, so `/bisman block` and
          // `unblock` change it and verify the change through pg_hba_file_rules (standins/cluster.ts writes
          // the file again on every start, so a block does not outlive a restart).
          manage_hba: { path: `${cluster.primary.dataDir}/pg_hba.conf` },
          // The application tables' non-superuser owner (sandbox/seed.ts), whose rights `roles apply` uses.
          grant_role: OWNER_ROLE,
        },
        // Restore tests restore into a marked scratch database on the sandbox's own primary, said openly with
        // allow_on_primary (so each one goes through the approval gate, and its plan warns about the disk it
        // uses). A separate scratch cluster would be the production set-up, but a third postmaster costs the
        // 2-core machines the sandbox runs on more than a scratch database does. The restore connects as the
        // postgres superuser over loopback (trusted by pg_hba): the audit SQL's DDL event trigger needs it.
        restore_test: {
          server: {
            host: "127.0.0.1",
            port: cluster.primary.port,
            database: "postgres",
            user: "postgres",
            sslmode: "disable",
          },
          allow_on_primary: true,
          jobs: 2,
        },
        ...input.evidence?.target,
      },
    },
    ...input.evidence?.top,
    default_target: TARGET,
    // Half a minute instead of production's five, so the idle-in-transaction sessions "make trouble" opens
    // are soon past the limit that `/bisman connections` and the terminate-idle buttons use.
    thresholds: { idle_in_transaction_minutes: 0.5 },
    alerts: {
      ...(input.alertmanagerUrl ? { alertmanager_url: input.alertmanagerUrl } : {}),
      // Quicker than production's minute, so a paused replica shows up soon.
      lag_check: { enabled: true, interval_seconds: 15 },
    },
  };
}

/** Writes `bisman.yaml`, validated with the bot's own schema first, and returns its path. */
export async function writeSandboxConfig(input: SandboxConfigInput): Promise<string> {
  const doc = sandboxConfigDoc(input);
  parseConfig(doc, "sandbox config");
  const path = `${input.dataDir}/bisman.yaml`;
  await Deno.writeTextFile(
    path,
    `# Written by \`deno task dev\` on every start (sandbox/config.ts); changes here are overwritten.\n` +
      `# SANDBOX ONLY: every connection has sslmode: disable (loopback clusters without TLS). A real\n` +
      `# deployment keeps the default, verify-full, with ca_file (see bisman.example.yaml).\n` +
      stringify(doc),
  );
  return path;
}

/**
 * The state database's URL on the sandbox's state server (sandbox/clusters.ts openStateCluster): the
 * postgres superuser over loopback TCP, which pg_hba trusts.
 */
export function stateUrl(cluster: Pick<PersistentCluster, "primary">): string {
  return cluster.primary.url({ database: STATE_DB });
}
