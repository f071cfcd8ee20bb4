/**
 * The scheduled replication-lag check (the seed: "check replication lag daily", alerting when it is high):
 * judges every replica of every target (ops/replication_lag.ts) and keeps one alert thread per problem.
 *
 * A replica over a threshold opens a `HighReplicationLag` thread (a replica that is unreachable or absent from
 * the primary's pg_stat_replication, or a primary that does not answer, a `ReplicationFailure` one); while the
 * condition lasts nothing more is posted, unless its severity changes (the parent is edited); when lag recovers
 * the thread is resolved. The alert goes through the same store as Alertmanager's (alerts/threads.ts), so it
 * gets the runbook buttons, and a second bot replica running the same check changes nothing.
 *
 * A plain function: bot.ts runs it on `alerts.lag_check.interval_seconds`, the scheduler may call it too.
 *
 * @module
 */

import type { AppDeps } from "../core/deps.ts";
import type { AlertSink, IncomingAlert } from "../core/alert_sink.ts";
import {
  formatBytes,
  formatSeconds,
  type LagReport,
  readReplicationLag,
  type ReplicaLag,
  type Severity,
} from "../ops/replication_lag.ts";

/** What one run found and did. */
export interface LagCheckResult {
  targets: { target: string; severity: Severity }[];
  /** Conditions that began (or changed severity) and were sent to the alert threads. */
  opened: string[];
  /** Conditions that ended. */
  resolved: string[];
}

/** A problem the check tracks: one per replica, one per primary. */
interface Condition {
  key: string;
  alertname: "HighReplicationLag" | "ReplicationFailure";
  severity: "warning" | "critical";
  target: string;
  member: string;
  summary: string;
  description: string;
}

/**
 * One fingerprint per problem AND alert name: a replica's HighReplicationLag and its ReplicationFailure are
 * different alerts with different threads (with one fingerprint for both, a failure was written into the old,
 * resolved lag thread far up the channel).
 */
async function fingerprintOf(alertname: string, key: string): Promise<string> {
  const d = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(`lag_check:${alertname}:${key}`));
  return Array.from(new Uint8Array(d).slice(0, 8), (b) => b.toString(16).padStart(2, "0")).join("");
}

function replicaCondition(r: LagReport, x: ReplicaLag, at: string): Condition | undefined {
  if (x.severity !== "warning" && x.severity !== "critical") return undefined;
  const failed = !x.view.reachable || x.view.inRecovery === false || (!x.sender && r.primary.reachable);
  const t = r.thresholds;
  return {
    key: `${r.target}:${x.replica}`,
    alertname: failed ? "ReplicationFailure" : "HighReplicationLag",
    severity: x.severity,
    target: r.target,
    member: x.replica,
    summary: failed
      ? `Replication of ${r.target}/${x.replica} is broken`
      : `Replication lag of ${r.target}/${x.replica} is over the ${x.severity} threshold`,
    // Figures as first seen: the thread is not edited every minute while they move.
    description: `At ${at}: ${formatBytes(x.lagBytes)} and ${formatSeconds(x.lagSeconds)} behind ` +
      `(warning at ${formatBytes(t.bytes_warning)} or ${formatSeconds(t.seconds_warning)}, critical at ${
        formatBytes(t.bytes_critical)
      } or ${formatSeconds(t.seconds_critical)}). ${x.reasons.join("; ")}`,
  };
}

function primaryCondition(r: LagReport, at: string): Condition | undefined {
  if (r.primary.reachable && !r.primary.inRecovery) return undefined;
  return {
    key: `${r.target}:primary`,
    alertname: "ReplicationFailure",
    severity: "critical",
    target: r.target,
    member: "primary",
    summary: r.primary.reachable
      ? `The configured primary of ${r.target} is in recovery (a standby)`
      : `The primary of ${r.target} does not answer`,
    description: `At ${at}: ${r.primary.error ?? `${r.primary.address} is in recovery`}`,
  };
}

/**
 * Runs the check once and sends what began, changed or ended to the alert threads.
 * Never throws for a target that does not answer (that is what it reports).
 */
export async function runLagCheck(
  deps: AppDeps,
  threads: AlertSink,
): Promise<LagCheckResult> {
  const at = deps.now().toISOString();
  const reports = await Promise.all(
    Object.keys(deps.config.targets).map(async (t) => {
      try {
        return await readReplicationLag(t, deps);
      } catch (err) {
        deps.log.error("lag check failed for a target", { target: t, error: err });
        return undefined;
      }
    }),
  );
  const names = Object.keys(deps.config.targets);
  const failedTargets = new Set(names.filter((_, i) => !reports[i]));
  const conditions: Condition[] = [];
  for (const r of reports) {
    if (!r) continue;
    const p = primaryCondition(r, at);
    if (p) conditions.push(p);
    for (const x of r.replicas) {
      const c = replicaCondition(r, x, at);
      if (c) conditions.push(c);
    }
  }

  const open = new Map((await threads.firing("lag_check")).map((a) => [a.fingerprint, a]));
  const send: IncomingAlert[] = [];
  const opened: string[] = [];
  const resolved: string[] = [];
  const stillBad = new Set<string>();
  for (const c of conditions) {
    const fingerprint = await fingerprintOf(c.alertname, c.key);
    stillBad.add(fingerprint);
    const current = open.get(fingerprint);
    // Same problem, same severity: the thread already says so.
    if (current && current.labels.alertname === c.alertname && current.labels.severity === c.severity) {
      continue;
    }
    send.push({
      fingerprint,
      status: "firing",
      labels: {
        alertname: c.alertname,
        severity: c.severity,
        target: c.target,
        ...(c.member === "primary" ? {} : { replica: c.member }),
        source: "bisman-ops",
      },
      annotations: { summary: c.summary, description: c.description },
      startsAt: current?.startsAt ?? at,
      endsAt: null,
      groupKey: `bisman-ops/lag_check/${c.target}`,
    });
    opened.push(c.key);
  }
  for (const [fingerprint, a] of open) {
    if (stillBad.has(fingerprint)) continue;
    // A target whose check failed outright is left as it was, not declared healthy.
    if (a.labels.target && failedTargets.has(a.labels.target)) continue;
    send.push({
      fingerprint,
      status: "resolved",
      labels: a.labels,
      annotations: a.annotations,
      startsAt: a.startsAt,
      endsAt: at,
      groupKey: `bisman-ops/lag_check/${a.labels.target ?? "unknown"}`,
    });
    resolved.push(`${a.labels.target}:${a.labels.replica ?? "primary"}`);
  }
  if (send.length) {
    await threads.ingest(send, "lag_check");
    await deps.audit.append({
      actor: "scheduler",
      action: "lag_check.changed",
      outcome: "ok",
      details: { opened, resolved },
    }).catch((err) => deps.log.error("audit append failed", { error: err }));
  }
  deps.metrics.inc("bisman_lag_checks_total", {}, 1, "Scheduled replication-lag checks run");
  // The lag gauges themselves are set by readReplicationLag (ops/_runbook_metrics.ts), whoever runs it.
  return {
    targets: reports.filter((r): r is LagReport => !!r).map((r) => ({
      target: r.target,
      severity: r.severity,
    })),
    opened,
    resolved,
  };
}
