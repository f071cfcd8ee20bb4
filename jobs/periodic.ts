/**
 * The periodic checks of the seed: backup status hourly, credential ages daily, audit anomalies hourly, and
 * restore tests monthly. Each calls its operation for every target and posts only what a person must see:
 * a target that got worse or recovered (backups, credentials), new findings to acknowledge (audit), or a
 * restore test's result. Everything they find is kept with the run, for `/bisman jobs` and the checklist.
 *
 * @module
 */

import type { AppDeps } from "../core/deps.ts";
import { OpsError } from "../core/errors.ts";
import type { Invoker } from "../core/access.ts";
import type { JobContext, JobDefinition, JobLevel } from "./types.ts";
import { readBackupStatus } from "../ops/backup_status.ts";
import { readCredentialAges } from "../ops/credential_ages.ts";
import { detectBypass } from "../ops/detect_bypass.ts";
import { listSecurityEvents } from "../ops/security_events.ts";
import { planRestoreTest, restoreTestNeedsApproval, runRestoreTest } from "../ops/restore_test.ts";
import { renderRestoreResult } from "../views/restore_test.ts";
import { renderAuditAnomalies, renderTargetChanges, type TargetChange } from "../views/jobs.ts";

const rank: Record<JobLevel, number> = { ok: 0, warning: 1, critical: 2 };

function worst(levels: JobLevel[]): JobLevel {
  return levels.reduce<JobLevel>((w, l) => rank[l] > rank[w] ? l : w, "ok");
}

/** The scheduler as the invoker of the requests and runs it starts. */
const SCHEDULER: Invoker = { userId: "scheduler", via: "scheduler" };

function failure(err: unknown, ctx: JobContext, what: string, target: string): string {
  if (err instanceof OpsError) return ctx.deps.secrets.scrub(err.userMessage);
  ctx.log.warn(`${what} failed`, { target, error: err });
  return "internal error: see the bot's log";
}

/** One target's judged state, as stored with the run and compared with the next. */
interface TargetState {
  status: JobLevel;
  lines: { status: JobLevel; text: string }[];
}

/**
 * Runs `read` for every target and posts the targets whose status got worse or came back to ok since the
 * previous run. A target that could not be read counts as a warning, never as ok.
 */
async function reportChanges(
  ctx: JobContext,
  title: string,
  read: (target: string) => Promise<TargetState>,
): Promise<
  {
    summary: string;
    level: JobLevel;
    details: Record<string, unknown>;
    message?: { channel: string; ts: string };
  }
> {
  const names = ctx.deps.targets.names();
  const states = await Promise.all(names.map(async (t): Promise<[string, TargetState]> => {
    try {
      return [t, await read(t)];
    } catch (err) {
      return [t, {
        status: "warning",
        lines: [{ status: "warning", text: `could not check: ${failure(err, ctx, title, t)}` }],
      }];
    }
  }));
  const before = (ctx.previous?.details?.targets ?? {}) as Record<string, { status?: JobLevel }>;
  const changes: TargetChange[] = [];
  for (const [target, s] of states) {
    const was = before[target]?.status ?? "ok";
    if (rank[s.status] > rank[was] || (s.status === "ok" && was !== "ok")) {
      changes.push({ target, was, now: s.status, lines: s.lines });
    }
  }
  const message = changes.length ? await ctx.post(renderTargetChanges(title, changes)) : undefined;
  const level = worst(states.map(([, s]) => s.status));
  return {
    summary: states.map(([t, s]) => `${t} ${s.status}`).join(", ") +
      (changes.length ? `; posted ${changes.length} change(s)` : ""),
    level,
    details: { targets: Object.fromEntries(states) },
    message,
  };
}

/** The seed's backup strategy, checked hourly: dumps, pgBackRest, WAL archiving. */
export const backupStatusJob: JobDefinition = {
  name: "backup_status",
  summary: "Newest backups and WAL archiving of every target; posts when a target gets worse or recovers",
  defaultCron: "0 * * * *",
  destructive: false,
  run: (ctx) =>
    reportChanges(ctx, "Backup status", async (target) => {
      const r = await readBackupStatus(target, ctx.deps);
      // Restore tests have their own job and their own section; this one is about having backups.
      const findings = r.findings.filter((f) => f.source !== "restore_test");
      const lines = findings.filter((f) => f.severity !== "ok").map((f) => ({
        status: f.severity,
        text: `${f.check}: ${f.reason}`,
      }));
      return { status: worst(findings.map((f) => f.severity)), lines };
    }),
};

/** The seed's 90-day rule, checked daily against Vault's version history. */
export const credentialAgeJob: JobDefinition = {
  name: "credential_age",
  summary: "Vault password ages of every rotatable role against the 90-day rule",
  defaultCron: "0 8 * * *",
  destructive: false,
  unavailable: (deps) => deps.vault ? undefined : "Vault is not configured (VAULT_ADDR)",
  run: (ctx) =>
    reportChanges(ctx, "Credential ages", async (target) => {
      const warnDays = ctx.deps.config.digest.credential_warning_days;
      const lines: TargetState["lines"] = [];
      for (const a of await readCredentialAges(target, ctx.deps)) {
        const age = a.ageDays === undefined ? "?" : `${Math.floor(a.ageDays)} days`;
        if (a.error) lines.push({ status: "warning", text: `${a.role}: age unknown: ${a.error}` });
        else if (a.overdue) {
          lines.push({
            status: "critical",
            text: `${a.role} is ${age} old (limit ${a.maxAgeDays}): \`/bisman rotate ${a.role} ${target}\``,
          });
        } else if ((a.ageDays ?? 0) >= a.maxAgeDays - warnDays) {
          lines.push({ status: "warning", text: `${a.role} is ${age} old (limit ${a.maxAgeDays})` });
        }
      }
      return { status: worst(lines.map((l) => l.status)), lines };
    }),
};

/** Bypass detection and security events since the previous run; findings wait for an acknowledgement. */
export const auditAnomalyJob: JobDefinition = {
  name: "audit_anomaly",
  summary: "Bypass detection and security events of every target; findings wait for an acknowledgement",
  defaultCron: "0 * * * *",
  destructive: false,
  run: async (ctx) => {
    const now = ctx.deps.now().getTime();
    // From the previous run on, so nothing falls between two runs; at most a day back after an outage.
    const from = ctx.previous && now - ctx.previous.slot.getTime() < 86_400_000
      ? ctx.previous.slot
      : new Date(now - 3600_000);
    const since = from.toISOString();
    const results = await Promise.all(
      ctx.deps.targets.names().map(async (target) => {
        try {
          const [d, ev] = await Promise.all([
            detectBypass({ target, since }, ctx.deps),
            listSecurityEvents({ target, since, limit: 50 }, ctx.deps),
          ]);
          const events = ev.events.filter((e) => e.severity === "warning" || e.severity === "critical");
          return { target, findings: d.findings, events, skipped: d.skipped };
        } catch (err) {
          return { target, error: failure(err, ctx, "audit anomaly detection", target) };
        }
      }),
    );
    const read = results.filter((r) => !("error" in r));
    if (!read.length) {
      throw new OpsError(
        "step_failed",
        `No target could be checked: ${
          results.map((r) => `${r.target}: ${"error" in r ? r.error : ""}`).join("; ")
        }`,
      );
    }
    const findings = read.reduce(
      (n, r) => n + ("findings" in r ? r.findings!.length + r.events!.length : 0),
      0,
    );
    const errors = results.filter((r): r is { target: string; error: string } => "error" in r);
    const levels: JobLevel[] = read.flatMap((r) =>
      "findings" in r
        ? [...r.findings!.map((f) => f.severity), ...r.events!.map((e) => e.severity as JobLevel)]
        : []
    );
    const message = findings || errors.length
      ? await ctx.post(renderAuditAnomalies(ctx.runId, from, results))
      : undefined;
    return {
      summary:
        `${findings} finding(s) since ${
          since.slice(0, 16).replace("T", " ")
        } UTC across ${read.length} target(s)` +
        (errors.length ? `; could not check ${errors.map((e) => e.target).join(", ")}` : "") +
        (findings ? "; waiting for an acknowledgement" : ""),
      level: errors.length ? worst([...levels, "warning"]) : worst(levels),
      details: { findings, since, errors },
      message,
    };
  },
};

/** Targets whose restore tests the monthly job runs. */
function scheduledRestoreTargets(deps: Pick<AppDeps, "config">): string[] {
  return Object.entries(deps.config.targets).filter(([, t]) => t.restore_test?.scheduled).map(([n]) => n);
}

/**
 * The seed's monthly restore test of every target that has one configured. A target whose restore tests
 * need approval (on its primary) gets an approval request instead: the schedule never bypasses the gate.
 */
export const restoreTestJob: JobDefinition = {
  name: "restore_test",
  summary: "Restores the newest dump of every target into a scratch database and verifies it",
  defaultCron: "0 3 1 * *",
  destructive: false,
  unavailable: (deps) =>
    scheduledRestoreTargets(deps).length ? undefined : "no target configures targets.<name>.restore_test",
  run: async (ctx) => {
    const deps = { ...ctx.deps, actor: "scheduler" };
    const outcomes: { target: string; passed?: boolean; requested?: boolean; error?: string }[] = [];
    for (const target of scheduledRestoreTargets(ctx.deps)) {
      if (ctx.signal.aborted) break;
      try {
        if (restoreTestNeedsApproval(deps, target)) {
          if (!ctx.deps.gate) throw new OpsError("not_configured", "needs approval, and no gate runs here");
          await ctx.deps.gate.request({ action: "restore_test_gated", args: { target }, invoker: SCHEDULER });
          outcomes.push({ target, requested: true });
          continue;
        }
        const plan = await planRestoreTest({ target }, deps);
        const result = await runRestoreTest(plan, deps, { trigger: "schedule" });
        await ctx.post(renderRestoreResult(result));
        outcomes.push({ target, passed: result.passed });
      } catch (err) {
        outcomes.push({ target, error: failure(err, ctx, "restore test", target) });
      }
    }
    const failed = outcomes.filter((o) => o.passed === false || o.error);
    if (outcomes.length && failed.length === outcomes.length && outcomes.every((o) => o.error)) {
      throw new OpsError(
        "step_failed",
        `No restore test could run: ${outcomes.map((o) => `${o.target}: ${o.error}`).join("; ")}`,
      );
    }
    return {
      summary: outcomes.map((o) =>
        `${o.target} ${
          o.requested
            ? "approval requested"
            : o.error
            ? `could not run (${o.error})`
            : o.passed
            ? "passed"
            : "failed"
        }`
      ).join(", "),
      level: failed.length ? "critical" : "ok",
      details: { outcomes },
    };
  },
};
