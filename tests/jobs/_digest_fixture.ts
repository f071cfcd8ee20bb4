/**
 * BISMAN targets for the digest and checklist tests and the digest benchmark: databases on one throwaway
 * cluster with the seed's schema and auditing, a dump folder per target, Vault secrets per target, and
 * restore-test history in the bot's state database. Helpers seed the problems the digest must report.
 */

import type { TestCluster } from "../../standins/cluster.ts";
import { pgDump, setAge } from "../support/dumps.ts";
import { createBismanDatabase } from "../support/bisman_schema.ts";
import type { VaultStandIn } from "../../standins/vault.ts";
import type { Sql } from "postgres";
import { recordFinish, recordStart } from "../../ops/restore_history.ts";

export const HOUR = 3600_000;
export const DAY = 24 * HOUR;

/** One prepared target database. */
export interface FixtureTarget {
  name: string;
  db: string;
  dumps: string;
  /** The KV path holding its role passwords. */
  vaultPath: string;
}

/**
 * A BISMAN database with a fresh dump (or one `dumpAgeMs` old) and a Vault secret whose versions are
 * `credentialAgeDays` old.
 */
export async function prepareTarget(
  cluster: TestCluster,
  vault: VaultStandIn,
  name: string,
  opts: { dumpAgeMs?: number; credentialAgeDays?: number; dumpFrom?: string; shareDb?: string } = {},
): Promise<FixtureTarget> {
  let db = opts.shareDb;
  if (!db) {
    const created = await createBismanDatabase(cluster, {
      prefix: name,
      rows: { clients: 20, invoices: 10 },
    });
    db = created.db;
    // A database in its steady state: the setup's own DDL and writes are not what the digest is about.
    await created.sql`truncate public.security_events, public.audit_logs_dml`;
    await created.sql`select pg_stat_statements_reset()`.catch(() => undefined);
  }
  const dumps = `${cluster.dir}/dumps_${name}`;
  await Deno.mkdir(dumps, { recursive: true });
  const file = `${dumps}/bisman_${name}.dump`;
  if (opts.dumpFrom) await Deno.copyFile(opts.dumpFrom, file);
  else await pgDump(cluster, db, file);
  await setAge(file, opts.dumpAgeMs ?? HOUR);
  const vaultPath = `bisman/${name}`;
  const v = vault.kvPut(vaultPath, {
    app_password: `app-${name}-pw-1`,
    readonly_password: `ro-${name}-pw-1`,
  });
  const days = opts.credentialAgeDays ?? 2;
  vault.setCreatedTime(vaultPath, v, new Date(Date.now() - days * DAY).toISOString());
  return { name, db, dumps, vaultPath };
}

/** The config block of a prepared target (primary on the cluster, as postgres, seed auditing). */
export function targetDoc(
  cluster: TestCluster,
  t: FixtureTarget,
  opts: { replica?: boolean; restoreTest?: boolean } = {},
): Record<string, unknown> {
  const conn = (port: number) => ({
    host: "127.0.0.1",
    port,
    database: t.db,
    user: "postgres",
    sslmode: "disable",
  });
  return {
    description: `fixture ${t.name}`,
    primary: conn(cluster.primary.port),
    replicas: opts.replica && cluster.replica ? [{ name: "replica1", ...conn(cluster.replica.port) }] : [],
    roles: {
      bisman_app: { path: t.vaultPath, key: "app_password" },
      bisman_readonly: { path: t.vaultPath, key: "readonly_password" },
    },
    backups: {
      dump_folder: { path: t.dumps, pattern: "bisman_*.dump", max_age_hours: 26, retention_days: 0 },
    },
    ...(opts.restoreTest === false ? {} : { restore_test: { allow_on_primary: true } }),
    // The test connects as the superuser, and reads audit rows on the primary (a paused replica would lag).
    security: { other_roles: ["postgres"], audit_reads: "primary" },
  };
}

/** A target whose primary does not answer (nothing listens on `port`). */
export function downDoc(port: number): Record<string, unknown> {
  return {
    description: "fixture down",
    primary: { host: "127.0.0.1", port, database: "bisman", user: "postgres", sslmode: "disable" },
  };
}

/** Records passing restore tests of `target`, `ageDays` old each, with their restore times. */
export async function seedRestoreTests(
  state: Sql,
  target: string,
  runs: { ageDays: number; restoreMs: number; passed?: boolean }[],
): Promise<void> {
  for (const r of runs) {
    const at = new Date(Date.now() - r.ageDays * DAY);
    const id = await recordStart(state, {
      target,
      trigger: "schedule",
      requestedBy: "scheduler",
      startedAt: new Date(at.getTime() - r.restoreMs - 1000),
      backupFile: `bisman_${target}.dump`,
      backupBytes: 100_000,
      restoreServer: "fixture",
      scratchDatabase: `bisman_restore_fixture_${Math.floor(Math.random() * 1e9)}`,
    });
    await recordFinish(state, id, {
      status: r.passed === false ? "failed" : "passed",
      finishedAt: at,
      restoreMs: r.restoreMs,
      totalMs: r.restoreMs + 1000,
      verifications: [],
      scratchDropped: true,
      ...(r.passed === false ? { error: "pg_restore failed" } : {}),
    });
  }
}
