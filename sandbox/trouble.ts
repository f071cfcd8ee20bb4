/**
 * The console's "make trouble" panel: each button puts the sandbox into a state that one feature of the
 * bot reports or fixes, so every feature has something to show. A button whose feature has not landed
 * yet (its subcommand is not registered, its route does not exist) is shown disabled with
 * "coming with <feature>".
 *
 * Everything here acts on the sandbox's own cluster and stand-ins, never through the bot.
 *
 * @module
 */

import postgres from "postgres";
import type { TestCluster } from "../standins/cluster.ts";
import type { VaultStandIn } from "../standins/vault.ts";
import type { TroubleInfo, TroublePanel } from "./console.ts";
import { SAMPLE_DB } from "./seed.ts";
import { ROLE_SECRETS } from "./standins.ts";
import { SANDBOX_ALERTS, type SandboxAlertName, type SandboxAlerts } from "./alerts.ts";

/** What the panel acts on. */
export interface TroubleContext {
  cluster: TestCluster;
  vault: VaultStandIn;
  /** Names of the registered `/bisman` subcommands (features light up as they land). */
  subcommands: () => string[];
  /** Feature hooks the sandbox wires when their modules exist (fire an alert, run the digest, …). */
  hooks: Partial<Record<string, (user: string) => Promise<string>>>;
  /** Where the dumps are (to age one). */
  dumpDir: string;
  /** The sandbox's Alertmanager (or direct webhook posts): fires and resolves the runbook's alerts. */
  alerts?: Pick<SandboxAlerts, "fire" | "resolveAll">;
}

interface Trouble {
  id: string;
  label: string;
  description: string;
  /** undefined when available, else the feature it waits for. */
  waitsFor(ctx: TroubleContext): string | undefined;
  run(ctx: TroubleContext, user: string): Promise<string>;
}

const needsSubcommand = (name: string, feature: string) => (ctx: TroubleContext) =>
  ctx.subcommands().includes(name) ? undefined : feature;
const needsHook = (name: string, feature: string) => (ctx: TroubleContext) =>
  ctx.hooks[name] ? undefined : feature;

/** The current password of a rotatable role, read from Vault (it changes when someone rotates it). */
function passwordOf(ctx: TroubleContext, role: string): string {
  const ref = ROLE_SECRETS[role];
  const pw = ref ? ctx.vault.kvGet(ref.path)?.data[ref.key] : undefined;
  if (!pw) throw new Error(`no password for ${role} in Vault`);
  return pw;
}

/** Connects to the sample database as `role` with its password from Vault. */
function connectAs(ctx: TroubleContext, role: string, max = 1): postgres.Sql {
  return postgres({
    host: ctx.cluster.primary.host,
    port: ctx.cluster.primary.port,
    database: SAMPLE_DB,
    username: role,
    password: passwordOf(ctx, role),
    max,
    connect_timeout: 5,
    idle_timeout: 0,
    onnotice: () => {},
    connection: { application_name: "bisman-web" },
  });
}

/** Sessions left idle in a transaction; closed when the sandbox stops (or the bot terminates them). */
const idleClients: postgres.Sql[] = [];

/** Whether replica1 still replays WAL (false once it was promoted). */
async function replicaInRecovery(ctx: TroubleContext): Promise<boolean> {
  const r = ctx.cluster.replica;
  if (!r) return false;
  return (await r.psql("select pg_is_in_recovery()")).trim() === "t";
}

async function replayPaused(ctx: TroubleContext): Promise<boolean> {
  const r = ctx.cluster.replica;
  if (!r || !(await replicaInRecovery(ctx))) return false;
  return (await r.psql("select pg_is_wal_replay_paused()")).trim() === "t";
}

/** Whether the sandbox's primary server runs (its postmaster.pid is there). */
async function primaryRunning(ctx: TroubleContext): Promise<boolean> {
  return await Deno.stat(`${ctx.cluster.primary.dataDir}/postmaster.pid`).then(() => true, () => false);
}

/** The promotion message of a replica that no longer replays. */
const PROMOTED =
  "replica1 is no longer a standby since its promotion: it has no WAL replay to pause or resume.";

/** One "make trouble" button per alert the runbook names, fired through the sandbox's Alertmanager. */
function alertTrouble(name: SandboxAlertName): Trouble {
  const why: Record<SandboxAlertName, string> = {
    HighReplicationLag: "replica1 lags (the seed's pg_replication_lag > 30 rule)",
    ReplicationFailure: "replica1 stopped streaming (runbook: promote the replica, investigate)",
    TooManyConnections: "the primary has too many connections (runbook: check for connection leaks)",
    SlowQueries: "statements are slow on average (the seed's pg_stat_statements rule)",
    UnexpectedDbUser: "an unexpected role logged in from 203.0.113.7 (runbook: rotate all credentials)",
    SuspiciousQueries: "suspicious queries from 203.0.113.7 (runbook: check audit logs, block the IP)",
  };
  return {
    // "fire-alert" stays the id of the first one, which the console and its tests have always used.
    id: name === "HighReplicationLag"
      ? "fire-alert"
      : `fire-${name.replace(/([a-z])([A-Z])/g, "$1-$2").toLowerCase()}`,
    label: `Fire ${name}`,
    description: `${name} through Alertmanager (or the same webhook payload): ${why[name]}.`,
    waitsFor: (ctx) => ctx.alerts ? undefined : "coming with alert threads (POST /alerts)",
    run: (ctx) => ctx.alerts!.fire(name),
  };
}

const TROUBLES: Trouble[] = [
  {
    id: "pause-replay",
    label: "Pause replay on the replica",
    description: "pg_wal_replay_pause() on replica1: its lag grows with every write on the primary " +
      "(writes a row a second while paused, so the lag shows). Press again to resume.",
    waitsFor: needsSubcommand("lag", "coming with replication lag (/bisman lag)"),
    run: async (ctx) => {
      const replica = ctx.cluster.replica;
      if (!replica) throw new Error("the sandbox has no replica");
      if (!(await replicaInRecovery(ctx))) {
        stopLagWriter();
        return PROMOTED;
      }
      if (await replayPaused(ctx)) {
        await replica.psql("select pg_wal_replay_resume()");
        stopLagWriter();
        return "Replay resumed on replica1: the lag falls back to zero.";
      }
      await replica.psql("select pg_wal_replay_pause()");
      startLagWriter(ctx);
      return "Replay paused on replica1. The primary now writes a row a second, so the replica falls " +
        "behind: try /bisman lag. Press the button again to resume.";
    },
  },
  {
    id: "idle-in-transaction",
    label: "Open 3 idle-in-transaction sessions",
    description: "Three bisman_app sessions that BEGIN, read and then sit idle in their transaction " +
      "(a connection leak in the app).",
    waitsFor: needsSubcommand("connections", "coming with connections (/bisman connections)"),
    run: async (ctx) => {
      const sql = connectAs(ctx, "bisman_app", 3);
      idleClients.push(sql);
      for (let i = 0; i < 3; i++) {
        const conn = await sql.reserve();
        await conn`begin`;
        await conn`select id from public.clients order by id limit 1`;
        // Left open on purpose: the session stays "idle in transaction" until someone terminates it.
      }
      return "3 bisman_app sessions are now idle in transaction (application_name bisman-web). " +
        "Try /bisman connections.";
    },
  },
  {
    id: "unexpected-role-write",
    label: "Write rows as an unexpected role",
    description: "bisman_admin (not an app or service role) updates a client and inserts an invoice.",
    waitsFor: needsSubcommand("detect", "coming with security detection (/bisman detect)"),
    run: async (ctx) => {
      const sql = connectAs(ctx, "bisman_admin");
      try {
        await sql.begin(async (tx) => {
          await tx`select set_config('app.service_name', 'admin-console', true),
                          set_config('app.user_id', 'mallory', true)`;
          await tx`update public.clients set name = name where id = (select min(id) from public.clients)`;
        });
      } finally {
        await sql.end({ timeout: 2 });
      }
      return "bisman_admin updated a client row (app user mallory). Try /bisman detect.";
    },
  },
  {
    id: "no-app-context",
    label: "Write rows without app context",
    description: "bisman_app updates a client without setting app.user_id or app.service_name, as a " +
      "script that bypasses the application would.",
    waitsFor: needsSubcommand("detect", "coming with security detection (/bisman detect)"),
    run: async (ctx) => {
      const sql = connectAs(ctx, "bisman_app");
      try {
        await sql`update public.clients set name = name where id = (select max(id) from public.clients)`;
      } finally {
        await sql.end({ timeout: 2 });
      }
      return "bisman_app wrote a row with no app.user_id and no app.service_name. Try /bisman detect.";
    },
  },
  {
    id: "age-backup",
    label: "Age the newest backup",
    description: "Makes the newest pg_dump file look three days old, past the 26-hour limit.",
    waitsFor: needsSubcommand("backups", "coming with backups (/bisman backups)"),
    run: async (ctx) => {
      const names: string[] = [];
      for await (const e of Deno.readDir(ctx.dumpDir)) {
        if (e.isFile && e.name.endsWith(".dump")) names.push(e.name);
      }
      const newest = names.sort().at(-1);
      if (!newest) throw new Error(`no dump in ${ctx.dumpDir}`);
      const old = new Date(Date.now() - 3 * 86_400_000);
      const renamed = `bisman_${old.toISOString().slice(0, 10).replaceAll("-", "")}.dump`;
      if (renamed !== newest) await Deno.rename(`${ctx.dumpDir}/${newest}`, `${ctx.dumpDir}/${renamed}`);
      await Deno.utime(`${ctx.dumpDir}/${renamed}`, old, old);
      return `${newest} is now ${renamed}, last written three days ago. Try /bisman backups.`;
    },
  },
  ...SANDBOX_ALERTS.map(alertTrouble),
  {
    id: "resolve-alerts",
    label: "Resolve the fired alerts",
    description:
      "Ends every alert fired from this panel in Alertmanager: its resolved notification reaches " +
      "the bot, and each thread shows RESOLVED.",
    waitsFor: (ctx) => ctx.alerts ? undefined : "coming with alert threads (POST /alerts)",
    run: (ctx) => ctx.alerts!.resolveAll(),
  },
  {
    id: "digest-now",
    label: "Post the daily digest now",
    description: "Runs the 09:00 digest job at once.",
    waitsFor: needsHook("digestNow", "coming with the daily digest"),
    run: (ctx, user) => ctx.hooks.digestNow!(user),
  },
  {
    id: "stop-primary",
    label: "Stop the primary",
    description:
      "pg_ctl stop on the sandbox's primary, as in the runbook's \"Replication failure → Promote " +
      'replica": try /bisman status, then /bisman promote replica1. Press again to start it (only while ' +
      "replica1 has not been promoted; after a promotion, delete the data folder to start over).",
    waitsFor: needsSubcommand("promote", "coming with promote (/bisman promote)"),
    run: async (ctx) => {
      if (!(await primaryRunning(ctx))) {
        if (!(await replicaInRecovery(ctx))) {
          return "replica1 was promoted, so starting the old primary would make two primaries: it stays " +
            "stopped. Stop the sandbox and delete its data folder to start over.";
        }
        await ctx.cluster.primary.start();
        return "The primary runs again, and replica1 streams from it.";
      }
      stopLagWriter();
      await ctx.cluster.primary.stop("fast");
      return "The primary is stopped (pg_ctl stop -m fast). Try /bisman status, then /bisman promote replica1 " +
        "(two approvers). Press the button again to start it while replica1 is still a standby.";
    },
  },
];

let lagWriter: ReturnType<typeof setInterval> | undefined;
let lagSql: postgres.Sql | undefined;

/** While replay is paused, a row a second on the primary keeps the replica's lag growing. */
function startLagWriter(ctx: TroubleContext): void {
  stopLagWriter();
  lagSql = ctx.cluster.primary.sql(SAMPLE_DB);
  const sql = lagSql;
  lagWriter = setInterval(() => {
    sql`update public.clients set name = name where id = (select min(id) from public.clients)`.catch(
      () => {},
    );
  }, 1000);
}

function stopLagWriter(): void {
  if (lagWriter) clearInterval(lagWriter);
  lagWriter = undefined;
  const sql = lagSql;
  lagSql = undefined;
  void sql?.end({ timeout: 1 }).catch(() => {});
}

/** The panel over the sandbox's context. */
export function createTroublePanel(ctx: TroubleContext): TroublePanel & { stop(): Promise<void> } {
  let paused = false;
  let primaryStopped = false;
  return {
    list(): TroubleInfo[] {
      return TROUBLES.map((t) => {
        const reason = t.waitsFor(ctx);
        const label = t.id === "pause-replay" && paused
          ? "Resume replay on the replica"
          : t.id === "stop-primary" && primaryStopped
          ? "Start the primary again"
          : t.label;
        return {
          id: t.id,
          label,
          description: t.description,
          enabled: !reason,
          ...(reason ? { reason } : {}),
        };
      });
    },
    async run(id: string, user: string): Promise<string> {
      const t = TROUBLES.find((x) => x.id === id);
      if (!t) throw new Error(`no trouble called ${id}`);
      const msg = await t.run(ctx, user);
      if (id === "pause-replay" || id === "stop-primary") paused = await replayPaused(ctx).catch(() => false);
      if (id === "stop-primary") primaryStopped = !(await primaryRunning(ctx));
      return msg;
    },
    async stop(): Promise<void> {
      stopLagWriter();
      const clients = idleClients.splice(0);
      await Promise.all(clients.map((c) => c.end({ timeout: 1 }).catch(() => {})));
      if (paused) await ctx.cluster.replica?.psql("select pg_wal_replay_resume()").catch(() => {});
    },
  };
}
