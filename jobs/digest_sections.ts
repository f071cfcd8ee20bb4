/**
 * The checks of the daily digest, in the order the issue lists them. Each adapts one operation's report
 * (ops/) into digest lines; none runs its own queries against a target except through those operations.
 * A check whose operation is not in this build says so ("not available"), never "ok".
 *
 * @module
 */

import type { DigestCheck } from "./digest_check.ts";
import type { DigestLine, LineStatus, Status } from "../views/digest_model.ts";
import { OpsError } from "../core/errors.ts";
import { readVacuumStats } from "../ops/vacuum_stats.ts";
import { formatBytes, formatSeconds, readReplicationLag } from "../ops/replication_lag.ts";
import { readConnections } from "../ops/connections.ts";
import { readSlowQueries, type SlowQuery } from "../ops/slow_queries.ts";
import { listRequests, readFreeze } from "../gate/store.ts";
import { readBackupStatus } from "../ops/backup_status.ts";
import { lastProvenRestore, recentRestoreTests } from "../ops/restore_history.ts";
import { humanAge } from "../ops/_findings.ts";
import { readCredentialAges } from "../ops/credential_ages.ts";
import { detectBypass } from "../ops/detect_bypass.ts";
import { listSecurityEvents } from "../ops/security_events.ts";
import { own } from "../core/lookup.ts";
import { evidenceChecks } from "./digest_evidence.ts";

/** The operations judge "unknown" where they could not decide: "could not check", never fine or a finding. */
function judged(s: "ok" | "warning" | "critical" | "unknown"): LineStatus {
  return s;
}

function oneLine(s: string, max = 90): string {
  const flat = s.replace(/\s+/g, " ").trim();
  return flat.length <= max ? flat : `${flat.slice(0, max - 1)}\u2026`;
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
    // An unreachable primary is the target's own "could not check" line, not a finding of this section.
    if (!r.primary.reachable) {
      throw new OpsError("unreachable", r.primary.error ?? "the primary does not answer");
    }
    if (r.primary.inRecovery) {
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
    if (!r.replicas.length && !lines.length) {
      lines.push({ status: "not_configured", text: `no replicas configured (targets.${target}.replicas)` });
    }
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

const backups: DigestCheck = {
  key: "backups",
  title: "Backups",
  scope: "target",
  run: async (ctx, target) => {
    const r = await readBackupStatus(target!, ctx.deps);
    // Restore tests have their own section; here the dumps, pgBackRest and WAL archiving.
    const findings = r.findings.filter((f) => f.source !== "restore_test");
    const bad = findings.filter((f) => f.severity !== "ok");
    // All well: the figures that prove it (newest backup, archiving), not every passing check.
    const shown = bad.length
      ? bad
      : findings.filter((f) => /newest|archiv|stanza/i.test(f.check)).slice(0, 3);
    // "No backup source configured" is not a finding about a backup: nothing was there to look at.
    const lines = shown.map((f): DigestLine => ({
      status: f.source === "config" ? "not_configured" : f.severity,
      text: `${f.check}: ${f.reason}`,
    }));
    if (lines.length) return lines;
    return findings.length
      ? [{ status: "ok", text: findings.map((f) => f.check).join(", ") }]
      : [{ status: "unknown", text: "the backup check returned no finding at all" }];
  },
};

const restoreTest: DigestCheck = {
  key: "restore_test",
  title: "Last restore test",
  scope: "target",
  run: async (ctx, target) => {
    const rt = own(ctx.deps.config.targets, target!)?.restore_test;
    if (!rt) {
      return [{
        status: "not_configured",
        text: `restore tests are not configured: add targets.${target}.restore_test`,
      }];
    }
    const [recent, proven] = await Promise.all([
      recentRestoreTests(ctx.deps.state, target!, 6),
      lastProvenRestore(ctx.deps.state, target!),
    ]);
    const now = ctx.now.getTime();
    const maxMs = rt.max_age_days * 86_400_000;
    const last = recent.find((r) => r.status !== "running");
    if (!last) return [{ status: "warning", text: "no restore test has run yet" }];
    const lines: DigestLine[] = [];
    const ago = humanAge(now - (last.finishedAt ?? last.startedAt).getTime());
    const passedOld = proven ? now - proven.at.getTime() : Infinity;
    const ageStatus: Status = passedOld > 2 * maxMs ? "critical" : passedOld > maxMs ? "warning" : "ok";
    if (last.status === "passed") {
      // Trend: this restore's duration against the passing runs before it.
      const before = recent.filter((r) => r.status === "passed" && r.id !== last.id && r.restoreMs);
      const avg = before.length ? before.reduce((a, r) => a + r.restoreMs!, 0) / before.length : undefined;
      const trend = avg && last.restoreMs
        ? `, ${last.restoreMs >= avg ? "+" : ""}${
          Math.round((last.restoreMs / avg - 1) * 100)
        }% vs the ${before.length} before`
        : "";
      lines.push({
        status: ageStatus,
        text:
          `passed ${ago} ago from ${last.backupFile}: restored in ${humanAge(last.restoreMs ?? 0)}${trend}` +
          (ageStatus === "ok" ? "" : ` (policy: within ${rt.max_age_days} days)`),
      });
    } else {
      lines.push({
        status: passedOld > maxMs ? "critical" : "warning",
        text: `failed ${ago} ago (${last.backupFile}): ${last.error ?? "see its report"}` +
          (proven ? `; last pass ${humanAge(passedOld)} ago` : "; none has passed yet"),
      });
    }
    return lines;
  },
};

const credentials: DigestCheck = {
  key: "credentials",
  title: "Credential ages",
  scope: "target",
  run: async (ctx, target) => {
    const ages = await readCredentialAges(target!, ctx.deps);
    if (!ages.length) {
      return [{
        status: "not_configured",
        text: `no rotatable roles are mapped for this target (targets.${target}.roles)`,
      }];
    }
    const warnDays = ctx.deps.config.digest.credential_warning_days;
    const lines: DigestLine[] = [];
    const fine: string[] = [];
    for (const a of ages) {
      const age = a.ageDays === undefined ? "?" : `${Math.floor(a.ageDays)}${a.atLeast ? "+" : ""} days`;
      if (a.error) lines.push({ status: "unknown", text: `${a.role}: could not check its age: ${a.error}` });
      else if (a.overdue) {
        lines.push({
          status: "critical",
          text:
            `${a.role} is ${age} old (rotate every ${a.maxAgeDays}): \`/bisman rotate ${a.role} ${target}\``,
        });
      } else if ((a.ageDays ?? 0) >= a.maxAgeDays - warnDays) {
        lines.push({
          status: "warning",
          text: `${a.role} is ${age} old, due within ${Math.ceil(a.maxAgeDays - a.ageDays!)} days`,
        });
      } else fine.push(`${a.role} ${age}`);
    }
    if (fine.length) {
      lines.push({ status: "ok", text: `${fine.join(", ")} (limit ${ages[0].maxAgeDays} days)` });
    }
    return lines;
  },
};

const security: DigestCheck = {
  key: "security",
  title: "Audit anomalies and security events",
  scope: "target",
  run: async (ctx, target) => {
    const since = ctx.since.toISOString();
    const [d, ev] = await Promise.all([
      detectBypass({ target: target!, since }, ctx.deps),
      listSecurityEvents({ target: target!, since, limit: 50 }, ctx.deps),
    ]);
    const lines: DigestLine[] = d.findings.slice(0, 4).map((f) => ({
      status: f.severity,
      text: f.title + (f.next ? ` (\`${f.next}\`)` : ""),
    }));
    if (d.findings.length > 4) {
      lines.push({
        status: d.findings[4].severity,
        text: `${d.findings.length - 4} more: \`/bisman detect ${target}\``,
      });
    }
    const bySeverity = (s: string) => ev.events.filter((e) => e.severity === s);
    for (const sev of ["critical", "warning"] as const) {
      const list = bySeverity(sev);
      if (list.length) {
        const types = [...new Set(list.map((e) => e.eventType))].join(", ");
        lines.push({ status: sev, text: `${list.length} ${sev} security event(s): ${types}` });
      }
    }
    const total = Object.values(ev.byType).reduce((a, n) => a + n, 0);
    if (!lines.length) {
      lines.push({
        status: "ok",
        text: `no anomalies in ${d.rowsInWindow} audited write(s); ${total} security event(s)` +
          (total ? ` (${Object.entries(ev.byType).map(([t, n]) => `${t} ${n}`).join(", ")})` : ""),
      });
    }
    // The bot's own approved actions, seen in the statistics under another role: ok, with their requests.
    for (const own of d.ownActions ?? []) lines.push({ status: "ok", text: `the bot's own: ${own}` });
    if (d.skipped.length) lines.push({ status: "unknown", text: `could not check: ${d.skipped.join("; ")}` });
    return lines;
  },
};

const alerts: DigestCheck = {
  key: "alerts",
  title: "Alert threads still firing",
  scope: "global",
  unavailable: (_deps, _target, services) =>
    services.alerts ? undefined : "alert threads are not running in this process",
  run: async (ctx) => {
    const threads = ctx.services.alerts!;
    const firing = [...await threads.firing("alertmanager"), ...await threads.firing("lag_check")];
    if (!firing.length) return [{ status: "ok", text: "no alert is firing" }];
    const lines: DigestLine[] = firing.slice(0, 10).map((a) => ({
      status: a.labels.severity === "critical" ? "critical" : "warning",
      text: `${a.labels.alertname ?? "alert"}${a.labels.target ? ` on ${a.labels.target}` : ""}` +
        `${a.startsAt ? ` since ${hhmm(new Date(a.startsAt))}` : ""}: ${a.annotations.summary ?? ""}`,
    }));
    if (firing.length > 10) lines.push({ status: "warning", text: `${firing.length - 10} more firing` });
    return lines;
  },
};

/** Every check, target sections first in the issue's order, then the deployment-wide ones. */
export const digestChecks: DigestCheck[] = [
  backups,
  restoreTest,
  replication,
  connections,
  slowQueries,
  autovacuum,
  credentials,
  security,
  // The seed's items read from the systems that hold them (issue 19).
  ...evidenceChecks,
  freeze,
  approvals,
  alerts,
];
