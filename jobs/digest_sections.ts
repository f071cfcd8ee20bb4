/**
 * The checks of the daily digest, in the order the issue lists them. Each adapts one operation's report
 * (ops/) into digest lines; none runs its own queries against a target except through those operations.
 * A check whose operation is not in this build says so ("not available"), never "ok".
 *
 * @module
 */

import type { DigestCheck, DigestLine, Status } from "./digest.ts";
import { readVacuumStats } from "../ops/vacuum_stats.ts";
import { formatBytes, formatSeconds, readReplicationLag } from "../ops/replication_lag.ts";
import { readConnections } from "../ops/connections.ts";
import { readSlowQueries, type SlowQuery } from "../ops/slow_queries.ts";
import { listRequests, readFreeze } from "../core/approval_store.ts";

/** The operations judge "unknown" where they could not decide; the digest never shows that as fine. */
function judged(s: "ok" | "warning" | "critical" | "unknown"): Status {
  return s === "unknown" ? "warning" : s;
}

function oneLine(s: string, max = 90): string {
  const flat = s.replace(/\s+/g, " ").trim();
  return flat.length <= max ? flat : `${flat.slice(0, max - 1)}…`;
}

/** A check whose operation this build does not have yet: always "not available", with the reason. */
function missing(key: string, title: string, scope: "target" | "global", why: string): DigestCheck {
  return {
    key,
    title,
    scope,
    unavailable: () => why,
    run: () => Promise.reject(new Error(`${key} is not available`)),
  };
}

const autovacuum: DigestCheck = {
  key: "autovacuum",
  title: "Autovacuum",
  scope: "target",
  run: async (ctx, target) => {
    const r = await readVacuumStats(target!, ctx.deps);
    const lines: DigestLine[] = [];
    if (!r.autovacuumOn) lines.push({ status: "warning", text: "autovacuum is off" });
    const bad = r.tables.filter((t) => t.severity !== "ok");
    for (const t of bad.slice(0, 3)) {
      lines.push({ status: t.severity, text: `${t.schema}.${t.table}: ${t.reasons.join("; ")}` });
    }
    if (bad.length > 3) {
      lines.push({
        status: bad[3].severity,
        text: `${bad.length - 3} more table(s): \`/bisman checklist ${target}\``,
      });
    }
    if (!lines.length) {
      const never = r.neverVacuumed
        ? `; ${r.neverVacuumed} table(s) never vacuumed, none with many dead tuples`
        : "";
      lines.push({
        status: "ok",
        text:
          `no table over ${ctx.deps.config.digest.vacuum.min_dead_tuples} dead tuples needs a vacuum${never}`,
      });
    }
    return lines;
  },
};

const replication: DigestCheck = {
  key: "replication",
  title: "Replication lag",
  scope: "target",
  run: async (ctx, target) => {
    const r = await readReplicationLag(target!, ctx.deps);
    const lines: DigestLine[] = [];
    if (!r.primary.reachable) {
      lines.push({ status: "critical", text: `primary does not answer: ${r.primary.error ?? ""}` });
    } else if (r.primary.inRecovery) {
      lines.push({ status: "critical", text: "the configured primary is in recovery (a standby)" });
    }
    for (const rep of r.replicas) {
      const figures = rep.view.reachable
        ? `${formatBytes(rep.lagBytes)}, ${formatSeconds(rep.lagSeconds)} behind${
          rep.idle ? " (idle primary)" : ""
        }`
        : `does not answer: ${rep.view.error ?? ""}`;
      const why = rep.reasons.length ? `: ${rep.reasons.join("; ")}` : "";
      lines.push({ status: judged(rep.severity), text: `${rep.replica} ${figures}${why}` });
    }
    if (!r.replicas.length && !lines.length) lines.push({ status: "ok", text: "no replicas configured" });
    return lines;
  },
};

const connections: DigestCheck = {
  key: "connections",
  title: "Connections",
  scope: "target",
  run: async (ctx, target) => {
    const r = await readConnections(target!, ctx.deps);
    const t = ctx.deps.config.thresholds;
    const usage: Status = r.percent >= t.connections_percent_critical
      ? "critical"
      : r.percent >= t.connections_percent_warning
      ? "warning"
      : "ok";
    return [
      { status: usage, text: `${r.total} of ${r.maxConnections} in use (${r.percent}%)` },
      {
        status: r.leaks.length ? "warning" : "ok",
        text:
          `${r.idleInTransaction.length} idle in transaction, ${r.leaks.length} for over ${r.leakMinutes} min` +
          (r.leaks.length ? ` (suspected leak: \`/bisman connections ${target}\`)` : ""),
      },
    ];
  },
};

/** What the slow-query check remembers: cumulative counters per statement, to report the period only. */
interface SlowSnapshot {
  at: string;
  statsReset: string | null;
  q: Record<string, [number, number]>;
}

/** Statements read per digest to compute the period's figures (the slowest by mean since the reset). */
const SLOW_SNAPSHOT_SIZE = 200;

const slowQueries: DigestCheck = {
  key: "slow_queries",
  title: "Slow queries",
  scope: "target",
  run: async (ctx, target) => {
    const r = await readSlowQueries(target!, ctx.deps, SLOW_SNAPSHOT_SIZE);
    const prev = ctx.previous as SlowSnapshot | undefined;
    // Counters are cumulative since the last reset: subtract the previous digest's, unless a reset came between.
    const usable = prev && prev.statsReset === r.statsReset ? prev : undefined;
    ctx.remember(
      {
        at: r.checkedAt,
        statsReset: r.statsReset,
        q: Object.fromEntries(r.queries.map((q) => [q.queryId, [q.calls, q.totalMs]])),
      } satisfies SlowSnapshot,
    );
    const period = r.queries.map((q): SlowQuery => {
      const before = usable?.q[q.queryId];
      if (!before) return q;
      const calls = q.calls - before[0];
      const total = q.totalMs - before[1];
      return { ...q, calls, totalMs: total, meanMs: calls > 0 ? total / calls : 0 };
    }).filter((q) => q.calls > 0).sort((a, b) => b.meanMs - a.meanMs);
    const top = period.slice(0, ctx.deps.config.digest.slow_queries);
    const from = usable
      ? "since the last digest"
      : r.statsReset
      ? `since the statistics reset ${r.statsReset.slice(0, 10)}`
      : "since the statistics were reset";
    if (!top.length) return [{ status: "ok", text: `no statements ran ${from}` }];
    const threshold = r.thresholdMs;
    return top.map((q) => ({
      status: q.meanMs >= threshold ? "warning" : "ok",
      text: `${Math.round(q.meanMs)} ms mean × ${q.calls} calls ${from}${q.user ? ` (${q.user})` : ""}: ` +
        oneLine(q.query),
    }));
  },
};

function hhmm(d: Date): string {
  return `${d.toISOString().slice(0, 16).replace("T", " ")} UTC`;
}

const freeze: DigestCheck = {
  key: "freeze",
  title: "Freeze",
  scope: "global",
  run: async (ctx) => {
    const f = await readFreeze(ctx.deps.state);
    if (!f.frozen) return [{ status: "ok", text: "destructive actions are not frozen" }];
    const since = f.at ? ` since ${hhmm(f.at)}` : "";
    const by = f.by ? ` by ${f.byName ?? f.by}` : "";
    return [{
      status: "warning",
      text: `destructive actions are frozen${since}${by}: ${f.reason ?? "no reason given"}`,
    }];
  },
};

const approvals: DigestCheck = {
  key: "approvals",
  title: "Open approvals",
  scope: "global",
  run: async (ctx) => {
    const now = ctx.now.getTime();
    const open = await listRequests(ctx.deps.state, ["pending", "approved", "running"], 200);
    // Interrupted requests whose reconcile could not decide stay open until a person looks.
    const stuck = (await listRequests(ctx.deps.state, ["interrupted"], 500)).filter((r) =>
      r.reconcile?.status === "needs_human" && r.created_at.getTime() > now - 7 * 86_400_000
    );
    const lines: DigestLine[] = [];
    for (const r of stuck) {
      lines.push({
        status: "critical",
        text:
          `#${r.id} ${r.action}${r.target ? ` on ${r.target}` : ""} was interrupted and needs a person: ` +
          `${r.reconcile!.note}`,
      });
    }
    for (const r of open.slice(0, 10)) {
      const longRunning = r.state === "running" && r.started_at && now - r.started_at.getTime() > 3600_000;
      const what = r.state === "pending"
        ? `waiting for approval since ${hhmm(r.created_at)}, expires ${hhmm(r.expires_at)}`
        : r.state === "running"
        ? `running since ${hhmm(r.started_at ?? r.created_at)}`
        : "approved, about to run";
      lines.push({
        status: longRunning ? "warning" : "ok",
        text: `#${r.id} ${r.action}${r.target ? ` on ${r.target}` : ""} asked by ${
          r.requester_name ?? r.requester_id
        }: ${what}`,
      });
    }
    if (open.length > 10) lines.push({ status: "ok", text: `${open.length - 10} more open request(s)` });
    if (!lines.length) lines.push({ status: "ok", text: "no open requests" });
    return lines;
  },
};

/** Every check, target sections first in the issue's order, then the deployment-wide ones. */
export const digestChecks: DigestCheck[] = [
  missing(
    "backups",
    "Backups",
    "target",
    "the backup status check (ops/backup_status.ts) is not in this build",
  ),
  missing(
    "restore_test",
    "Last restore test",
    "target",
    "the restore-test history (ops/restore_history.ts) is not in this build",
  ),
  replication,
  connections,
  slowQueries,
  autovacuum,
  missing(
    "credentials",
    "Credential ages",
    "target",
    "the credential-age check (ops/credential_ages.ts) is not in this build",
  ),
  missing(
    "security",
    "Audit anomalies and security events",
    "target",
    "bypass detection (ops/detect_bypass.ts) and security events (ops/security_events.ts) are not in this build",
  ),
  freeze,
  approvals,
  missing(
    "alerts",
    "Alert threads still firing",
    "global",
    "alert threads (alerts/threads.ts) are not in this build",
  ),
];
