/**
 * Replication lag of every replica of a target, from both ends: the primary's `pg_stat_replication`
 * (state, sync state, sent/write/flush/replay LSN, byte lag, write/flush/replay lag) and the replica's own
 * view (`pg_last_wal_receive_lsn()`, `pg_last_wal_replay_lsn()`, `pg_last_xact_replay_timestamp()`,
 * `pg_stat_wal_receiver`), judged against `thresholds.lag`.
 *
 * Why both: the primary knows how much WAL the replica has not replayed and for how long (its lag tracker
 * keeps extrapolating `replay_lag` while the replica is stuck), the replica knows whether it is connected at
 * all. Time since the last replayed transaction is shown but never judged on its own: on an idle primary it
 * grows with nothing to replay, and alerting on it would be a false alarm.
 *
 * The bot's role needs `pg_monitor` (or `pg_read_all_stats`): without it PostgreSQL hides the LSN and lag
 * columns of other sessions, and the report says so instead of guessing.
 *
 * @module
 */

import { z } from "zod";
import type { OpDeps, Operation, PlanBase } from "./types.ts";
import type { TargetMember } from "../core/targets.ts";
import { targetFailure } from "./_pg_errors.ts";
import type { Thresholds } from "../core/config.ts";
import { RUNBOOK_SERIES, seconds } from "./_runbook_metrics.ts";
import type { Metrics } from "../core/metrics.ts";

/** ok < warning < critical; unknown when it could not be judged. */
export type Severity = "ok" | "warning" | "critical" | "unknown";

const rank: Record<Severity, number> = { ok: 0, unknown: 1, warning: 2, critical: 3 };

/** The worse of severities (critical over warning over unknown over ok). */
export function worst(list: Severity[]): Severity {
  return list.reduce<Severity>((a, b) => (rank[b] > rank[a] ? b : a), "ok");
}

/** One replica as the primary's walsender sees it (`pg_stat_replication`). */
export interface SenderView {
  applicationName: string;
  clientAddr: string | null;
  state: string | null;
  syncState: string | null;
  sentLsn: string | null;
  writeLsn: string | null;
  flushLsn: string | null;
  replayLsn: string | null;
  /** `pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)`: WAL written on the primary, not replayed yet. */
  bytesBehind: number | null;
  writeLagSeconds: number | null;
  flushLagSeconds: number | null;
  replayLagSeconds: number | null;
}

/** One replica as it sees itself. */
export interface ReplicaView {
  reachable: boolean;
  error?: string;
  inRecovery?: boolean;
  receiveLsn?: string | null;
  replayLsn?: string | null;
  /** `pg_last_xact_replay_timestamp()`, ISO; null when no transaction was replayed since start. */
  lastReplayAt?: string | null;
  secondsSinceLastReplay?: number | null;
  replayPaused?: boolean;
  /** `pg_stat_wal_receiver`; null when no WAL receiver runs. */
  receiver?: {
    status: string;
    senderHost: string | null;
    senderPort: number | null;
    receivedTli: number | null;
    /** The application_name the receiver connects with (its conninfo, else the replica's cluster_name). */
    applicationName: string | null;
  } | null;
}

/** The judged lag of one configured replica. */
export interface ReplicaLag {
  target: string;
  replica: string;
  address: string;
  severity: Severity;
  /** Why the severity is what it is, in words. */
  reasons: string[];
  /** Notes that explain without alerting (idle primary, how the replica was matched). */
  notes: string[];
  /** The replica has replayed everything the primary wrote, and the primary writes nothing. */
  idle: boolean;
  sender: SenderView | null;
  view: ReplicaView;
  /** The figures judged: bytes and seconds behind. */
  lagBytes: number | null;
  lagSeconds: number | null;
}

/** The primary's side of the report. */
export interface PrimaryView {
  address: string;
  reachable: boolean;
  error?: string;
  inRecovery?: boolean;
  currentLsn?: string;
  /** Walsenders the primary has that match no configured replica (listed, not judged). */
  unknownSenders: SenderView[];
}

/** Replication lag of one target. */
export interface LagReport {
  target: string;
  checkedAt: string;
  severity: Severity;
  primary: PrimaryView;
  replicas: ReplicaLag[];
  thresholds: Thresholds["lag"];
}

function addressOf(m: TargetMember): string {
  return `${m.conn.host}:${m.conn.port}`;
}

/** `1.5 MiB`, `812 B`. @example formatBytes(1572864) // "1.5 MiB" */
export function formatBytes(n: number | null | undefined): string {
  if (n === null || n === undefined) return "?";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let v = n;
  let i = 0;
  while (Math.abs(v) >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${v} B` : `${v.toFixed(1)} ${units[i]}`;
}

/** `42.0 s`, `3 min 5 s`. @example formatSeconds(185) // "3 min 5 s" */
export function formatSeconds(s: number | null | undefined): string {
  if (s === null || s === undefined) return "?";
  if (s < 60) return `${s.toFixed(1)} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;
  return `${Math.floor(s / 3600)} h ${Math.round((s % 3600) / 60)} min`;
}

/** The application_name a WAL receiver connects with: `application_name=` of its conninfo, else the fallback. */
export function receiverApplicationName(conninfo: string | null | undefined): string | null {
  if (!conninfo) return null;
  const pick = (key: string) =>
    new RegExp(`(?:^|\\s)${key}=('(?:[^'\\\\]|\\\\.)*'|\\S+)`).exec(conninfo)?.[1];
  const raw = pick("application_name") ?? pick("fallback_application_name");
  if (!raw) return null;
  return raw.startsWith("'") ? raw.slice(1, -1).replace(/\\(.)/g, "$1") : raw;
}

async function readSenders(
  primary: TargetMember,
  deps: OpDeps,
): Promise<{ view: PrimaryView; senders: SenderView[] }> {
  const address = addressOf(primary);
  try {
    const sql = await deps.targets.pool(primary.target, primary.name);
    const [self] = await sql<{ in_recovery: boolean; current_lsn: string | null }[]>`
      select pg_is_in_recovery() as in_recovery,
             case when pg_is_in_recovery() then null else pg_current_wal_lsn()::text end as current_lsn`;
    const rows = await sql<
      {
        application_name: string;
        client_addr: string | null;
        state: string | null;
        sync_state: string | null;
        sent_lsn: string | null;
        write_lsn: string | null;
        flush_lsn: string | null;
        replay_lsn: string | null;
        bytes_behind: number | null;
        write_lag: number | null;
        flush_lag: number | null;
        replay_lag: number | null;
      }[]
    >`
      select application_name, host(client_addr) as client_addr, state, sync_state,
             sent_lsn::text, write_lsn::text, flush_lsn::text, replay_lsn::text,
             case when pg_is_in_recovery() then null
                  else pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)::float8 end as bytes_behind,
             extract(epoch from write_lag)::float8 as write_lag,
             extract(epoch from flush_lag)::float8 as flush_lag,
             extract(epoch from replay_lag)::float8 as replay_lag
        from pg_stat_replication
       order by pid`;
    return {
      view: {
        address,
        reachable: true,
        inRecovery: self.in_recovery,
        currentLsn: self.current_lsn ?? undefined,
        unknownSenders: [],
      },
      senders: rows.map((r) => ({
        applicationName: r.application_name,
        clientAddr: r.client_addr,
        state: r.state,
        syncState: r.sync_state,
        sentLsn: r.sent_lsn,
        writeLsn: r.write_lsn,
        flushLsn: r.flush_lsn,
        replayLsn: r.replay_lsn,
        bytesBehind: r.bytes_behind,
        writeLagSeconds: r.write_lag,
        flushLagSeconds: r.flush_lag,
        replayLagSeconds: r.replay_lag,
      })),
    };
  } catch (err) {
    deps.log.warn("primary does not answer", { target: primary.target, error: err });
    return {
      view: {
        address,
        reachable: false,
        error: deps.secrets.scrub(targetFailure(primary, err, "read pg_stat_replication").userMessage),
        unknownSenders: [],
      },
      senders: [],
    };
  }
}

/** Reads a replica's own view of its replication; never throws (an unreachable replica is a finding). */
export async function readReplicaView(m: TargetMember, deps: OpDeps): Promise<ReplicaView> {
  try {
    const sql = await deps.targets.pool(m.target, m.name);
    const [r] = await sql<
      {
        in_recovery: boolean;
        receive_lsn: string | null;
        replay_lsn: string | null;
        last_replay_at: Date | null;
        since_last_replay: number | null;
        paused: boolean | null;
        cluster_name: string;
      }[]
    >`
      select pg_is_in_recovery() as in_recovery,
             pg_last_wal_receive_lsn()::text as receive_lsn,
             pg_last_wal_replay_lsn()::text as replay_lsn,
             pg_last_xact_replay_timestamp() as last_replay_at,
             extract(epoch from now() - pg_last_xact_replay_timestamp())::float8 as since_last_replay,
             case when pg_is_in_recovery() then pg_is_wal_replay_paused() end as paused,
             current_setting('cluster_name') as cluster_name`;
    const [w] = await sql<
      {
        status: string;
        sender_host: string | null;
        sender_port: number | null;
        received_tli: number | null;
        conninfo: string | null;
      }[]
    >`select status, sender_host, sender_port, received_tli, conninfo from pg_stat_wal_receiver`;
    return {
      reachable: true,
      inRecovery: r.in_recovery,
      receiveLsn: r.receive_lsn,
      replayLsn: r.replay_lsn,
      lastReplayAt: r.last_replay_at ? new Date(r.last_replay_at).toISOString() : null,
      secondsSinceLastReplay: r.since_last_replay,
      replayPaused: r.paused ?? false,
      receiver: w
        ? {
          status: w.status,
          senderHost: w.sender_host,
          senderPort: w.sender_port,
          receivedTli: w.received_tli,
          applicationName: receiverApplicationName(w.conninfo) ?? (r.cluster_name || null),
        }
        : null,
    };
  } catch (err) {
    deps.log.warn("replica does not answer", { target: m.target, replica: m.name, error: err });
    return {
      reachable: false,
      error: deps.secrets.scrub(targetFailure(m, err, "read its replication state").userMessage),
    };
  }
}

/**
 * Finds the walsender of a configured replica: by the application_name its receiver uses, then by its
 * configured name; when the target has one replica and the primary one walsender, that one.
 */
function matchSender(
  replica: TargetMember,
  view: ReplicaView,
  senders: SenderView[],
  claimed: Set<SenderView>,
  onlyOne: boolean,
): { sender: SenderView | null; how?: string } {
  const free = senders.filter((s) => !claimed.has(s));
  const names = [view.receiver?.applicationName, replica.name].filter((n): n is string => !!n);
  for (const n of names) {
    const hit = free.find((s) => s.applicationName === n);
    if (hit) return { sender: hit };
  }
  if (onlyOne && senders.length === 1 && free.length === 1) {
    return {
      sender: free[0],
      how: `matched the only walsender (application_name "${free[0].applicationName}") to the only replica`,
    };
  }
  return { sender: null };
}

/** Judges one replica against the thresholds. Pure. */
export function judgeReplica(
  r: Omit<ReplicaLag, "severity" | "reasons" | "idle" | "lagBytes" | "lagSeconds">,
  primary: PrimaryView,
  t: Thresholds["lag"],
): ReplicaLag {
  const reasons: string[] = [];
  const notes = [...r.notes];
  const sev: Severity[] = [];
  const { view, sender } = r;
  let lagBytes: number | null = null;
  let lagSeconds: number | null = null;
  let idle = false;

  if (!view.reachable) {
    sev.push("critical");
    reasons.push(`the replica does not answer: ${view.error ?? "no detail"}`);
  } else if (view.inRecovery === false) {
    sev.push("critical");
    reasons.push("the replica is not in recovery: it is a primary now (promoted?), not a standby");
  }
  if (primary.reachable && primary.inRecovery === false) {
    if (!sender) {
      sev.push("critical");
      reasons.push("the replica is absent from the primary's pg_stat_replication: it is not streaming");
    } else {
      if (sender.state !== "streaming") {
        sev.push(sender.state === null ? "unknown" : "warning");
        reasons.push(
          sender.state === null
            ? "the walsender's columns are hidden: grant pg_monitor to the bot's role"
            : `the walsender is in state "${sender.state}", not streaming`,
        );
      }
      lagBytes = sender.bytesBehind;
      // The primary's lag tracker keeps extrapolating replay_lag while the replica is stuck, and shows
      // NULL once the replica has caught up on an idle primary: both are what we want to judge.
      lagSeconds = sender.replayLagSeconds ?? (lagBytes === 0 ? 0 : null);
      if (lagBytes === 0) {
        idle = sender.replayLagSeconds === null;
        lagSeconds = sender.replayLagSeconds ?? 0;
        if (view.secondsSinceLastReplay !== null && view.secondsSinceLastReplay !== undefined) {
          notes.push(
            `the replica has replayed everything the primary wrote; the last replayed transaction is ${
              formatSeconds(view.secondsSinceLastReplay)
            } old because the primary has written nothing since (idle), which is not lag`,
          );
        } else {
          notes.push("the replica has replayed everything the primary wrote");
        }
      }
    }
  } else if (view.reachable && view.inRecovery) {
    // Without the primary, the replica's own view is all there is: WAL received but not replayed yet.
    if (view.receiveLsn && view.replayLsn && view.receiveLsn !== view.replayLsn) {
      lagSeconds = view.secondsSinceLastReplay ?? null;
    } else if (view.receiveLsn && view.receiveLsn === view.replayLsn) {
      lagSeconds = 0;
    }
  }
  if (view.reachable && view.inRecovery && view.receiver === null) {
    sev.push("critical");
    reasons.push("the replica has no WAL receiver running: it receives nothing from the primary");
  }
  if (view.replayPaused) {
    // Paused on purpose (a long report, a backup) is not lag by itself; the lag it causes is judged below.
    notes.push(
      "WAL replay is paused on the replica (pg_wal_replay_pause()): resume with pg_wal_replay_resume()",
    );
  }
  if (lagBytes !== null) {
    if (lagBytes >= t.bytes_critical) {
      sev.push("critical");
      reasons.push(`${formatBytes(lagBytes)} behind (critical at ${formatBytes(t.bytes_critical)})`);
    } else if (lagBytes >= t.bytes_warning) {
      sev.push("warning");
      reasons.push(`${formatBytes(lagBytes)} behind (warning at ${formatBytes(t.bytes_warning)})`);
    }
  }
  if (lagSeconds !== null) {
    if (lagSeconds >= t.seconds_critical) {
      sev.push("critical");
      reasons.push(`${formatSeconds(lagSeconds)} behind (critical at ${formatSeconds(t.seconds_critical)})`);
    } else if (lagSeconds >= t.seconds_warning) {
      sev.push("warning");
      reasons.push(`${formatSeconds(lagSeconds)} behind (warning at ${formatSeconds(t.seconds_warning)})`);
    }
  }
  if (!primary.reachable && lagSeconds === null && view.reachable) sev.push("unknown");
  return { ...r, notes, severity: worst(sev), reasons, idle, lagBytes, lagSeconds };
}

/**
 * Reads and judges the replication lag of every configured replica of `target`; never throws for a
 * server that does not answer (that is a critical finding).
 * @throws {NotConfigured} for an unknown target
 */
export async function readReplicationLag(target: string, deps: OpDeps): Promise<LagReport> {
  const members = deps.targets.members(target);
  const primary = members[0];
  const replicas = members.slice(1);
  const t = deps.config.thresholds.lag;
  const [{ view: pview, senders }, views] = await Promise.all([
    readSenders(primary, deps),
    Promise.all(replicas.map((m) => readReplicaView(m, deps))),
  ]);
  const claimed = new Set<SenderView>();
  const judged = replicas.map((m, i) => {
    const { sender, how } = matchSender(m, views[i], senders, claimed, replicas.length === 1);
    if (sender) claimed.add(sender);
    return judgeReplica(
      {
        target,
        replica: m.name,
        address: addressOf(m),
        notes: how ? [how] : [],
        sender,
        view: views[i],
      },
      pview,
      t,
    );
  });
  pview.unknownSenders = senders.filter((s) => !claimed.has(s));
  const sev: Severity[] = judged.map((r) => r.severity);
  if (!pview.reachable) sev.push("critical");
  if (pview.reachable && pview.inRecovery) sev.push("critical");
  const report: LagReport = {
    target,
    checkedAt: deps.now().toISOString(),
    severity: worst(sev),
    primary: pview,
    replicas: judged,
    thresholds: t,
  };
  recordReplicationLag(deps.metrics, report);
  return report;
}

export const replicationLagArgs = z.strictObject({
  target: z.string().regex(/^[a-z_][a-z0-9_]{0,62}$/, "a target name"),
});
export type ReplicationLagArgs = z.infer<typeof replicationLagArgs>;

/** The plan of a read-only lag check: what will be read. */
export interface ReplicationLagPlan extends PlanBase {
  target: string;
}

/**
 * `replication_lag`: read-only. plan() names what is read; run() reads and judges.
 * @example
 * const report = await replicationLag.run(await replicationLag.plan({ target: "prod" }, deps), deps);
 */
export const replicationLag: Operation<ReplicationLagArgs, ReplicationLagPlan, LagReport> = {
  name: "replication_lag",
  destructive: false,
  args: replicationLagArgs,
  plan(args, deps) {
    const replicas = deps.targets.members(args.target).slice(1).map((m) => m.name);
    return Promise.resolve({
      summary: `Read the replication lag of ${args.target} (${replicas.length} replica(s))`,
      target: args.target,
      steps: [
        "On the primary: pg_stat_replication (state, sync state, LSNs, byte lag, write/flush/replay lag)",
        `On each replica (${
          replicas.join(", ") || "none configured"
        }): receive/replay LSN, last replay time, WAL receiver`,
        "Judge against thresholds.lag",
      ],
      fingerprint: {},
    });
  },
  run: (plan, deps) => readReplicationLag(plan.target, deps),
  describeResult: (r) =>
    `${r.target}: ${r.severity}; ` +
    r.replicas.map((x) => `${x.replica} ${formatBytes(x.lagBytes)} / ${formatSeconds(x.lagSeconds)}`).join(
      ", ",
    ),
};

/** After a lag check: bytes and seconds behind per replica; a replica that could not be measured has none. */
export function recordReplicationLag(metrics: Metrics | undefined, r: LagReport): void {
  if (!metrics) return;
  for (const x of r.replicas) {
    const labels = { target: r.target, replica: x.replica };
    if (x.lagBytes !== null) {
      metrics.set(RUNBOOK_SERIES.lagBytes, labels, x.lagBytes, "Replication lag in bytes (last check)");
    } else metrics.remove(RUNBOOK_SERIES.lagBytes, labels);
    if (x.lagSeconds !== null) {
      metrics.set(RUNBOOK_SERIES.lagSeconds, labels, x.lagSeconds, "Replication lag in seconds (last check)");
    } else metrics.remove(RUNBOOK_SERIES.lagSeconds, labels);
  }
  metrics.set(
    RUNBOOK_SERIES.lagChecked,
    { target: r.target },
    seconds(new Date(r.checkedAt)),
    "When the bot last measured a target's replication lag (Unix time)",
  );
}
