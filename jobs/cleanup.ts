/**
 * The daily cleanup: expire pending approvals past their deadline, drop orphaned restore-test scratch
 * databases (only those the restore test marked as its own), prune job-run history beyond its retention,
 * and, where configured, archive old audit_logs_dml rows to verified files before deleting them.
 *
 * It runs unattended on its schedule (configured in advance); run on demand, it is the destructive
 * operation `cleanup`, reached only through the approval gate with a plan that counts what it will touch.
 * One step failing does not stop the others; the run fails afterwards, naming each failed step.
 *
 * @module
 */

import { z } from "zod";
import type { OpDeps, Operation, PlanBase } from "../ops/types.ts";
import { OpsError, StepFailed } from "../core/errors.ts";
import { archiveAuditRows, archiveTargets, countArchivable } from "./audit_archive.ts";
import { claimSlot, countPrunableRuns, finishRun, pruneRuns, renewLease } from "./run_store.ts";
import type { JobDefinition } from "./types.ts";
import type { AppDeps } from "../core/deps.ts";
import { expireDue, listRequests } from "../gate/store.ts";
import { gateHousekeeping } from "./approval_expiry.ts";
import { cleanupRestoreScratch } from "../ops/restore_cleanup.ts";

/** One step as the plan shows it. */
export interface CleanupItem {
  key: "approvals" | "scratch_databases" | "job_runs" | "audit_archive";
  title: string;
  /** Why the step will not run (not in this build, not configured), or undefined. */
  unavailable?: string;
  /** What the step will touch, in words ("12 runs older than 90 days"). */
  pending: string;
}

/** The plan: every step and what it will touch. */
export interface CleanupPlan extends PlanBase {
  items: CleanupItem[];
}

/** How each step went. */
export interface CleanupReport {
  steps: {
    key: CleanupItem["key"];
    title: string;
    outcome: "ok" | "failed" | "not available";
    detail: string;
  }[];
}

function why(err: unknown): string {
  return err instanceof OpsError
    ? err.userMessage
    : err instanceof Error
    ? err.message.split("\n")[0]
    : String(err);
}

const approvalsStep = {
  key: "approvals" as const,
  title: "Expire pending approvals past their deadline",
  unavailable: (_deps: OpDeps): string | undefined => undefined,
  count: async (deps: OpDeps) => {
    const now = deps.now().getTime();
    const due = (await listRequests(deps.state, ["pending"], 10_000)).filter((r) =>
      r.expires_at.getTime() <= now
    );
    return `${due.length} pending request(s) past their deadline`;
  },
  run: async (deps: OpDeps) => {
    // Through the gate when this process has it, so each expired request's message is edited too.
    const gate = gateHousekeeping(deps as OpDeps & Pick<AppDeps, "gate">);
    if (gate) return `${await gate.sweep()} request(s) expired`;
    const expired = await expireDue(deps.state, deps.now());
    return `${expired.length} request(s) expired (their messages are updated by the next gate sweep)`;
  },
};

const scratchStep = {
  key: "scratch_databases" as const,
  title: "Drop orphaned restore-test scratch databases (marker-checked)",
  unavailable: (deps: OpDeps): string | undefined =>
    Object.values(deps.config.targets).some((t) => t.restore_test)
      ? undefined
      : "no target has restore tests",
  count: (deps: OpDeps): Promise<string> =>
    Promise.resolve(
      `marked scratch databases of ${
        Object.entries(deps.config.targets).filter(([, t]) => t.restore_test).map(([n]) => n).join(", ")
      } whose restore test is not running; unmarked ones are only reported`,
    ),
  run: async (deps: OpDeps) => {
    const r = await cleanupRestoreScratch(deps);
    const parts = [
      `${r.dropped.length} dropped${
        r.dropped.length ? ` (${r.dropped.map((d) => d.database).join(", ")})` : ""
      }`,
      ...(r.refused.length
        ? [
          `${r.refused.length} left alone (${r.refused.map((x) => `${x.database}: ${x.reason}`).join("; ")})`,
        ]
        : []),
      ...(r.busy.length ? [`skipped while a test runs: ${r.busy.join(", ")}`] : []),
      ...(r.interrupted.length ? [`${r.interrupted.length} interrupted test record(s) closed`] : []),
    ];
    if (r.errors.length) {
      throw new StepFailed(
        "scratch_databases",
        [...parts, ...r.errors.map((e) => `${e.target}: ${e.message}`)].join("; "),
      );
    }
    return parts.join("; ");
  },
};

const jobRunsStep = {
  key: "job_runs" as const,
  title: "Prune job-run history beyond its retention",
  unavailable: (_deps: OpDeps): string | undefined => undefined,
  count: async (deps: OpDeps) => {
    const days = deps.config.retention.job_runs_days;
    return `${await countPrunableRuns(deps.state, days)} run record(s) older than ${days} days`;
  },
  run: async (deps: OpDeps) => {
    const days = deps.config.retention.job_runs_days;
    return `${await pruneRuns(deps.state, days)} run record(s) older than ${days} days deleted`;
  },
};

const auditArchiveStep = {
  key: "audit_archive" as const,
  title: "Archive audit_logs_dml rows past the retention to files, verify, then delete them",
  unavailable: (deps: OpDeps): string | undefined =>
    deps.config.retention.audit_archive
      ? undefined
      : "not configured (retention.audit_archive): nothing is deleted",
  count: async (deps: OpDeps) => {
    const a = deps.config.retention.audit_archive!;
    const parts = await Promise.all(
      archiveTargets(deps).map(async (t) => {
        try {
          return `${t}: ${await countArchivable(deps, t)} row(s)`;
        } catch (err) {
          return `${t}: could not count (${why(err)})`;
        }
      }),
    );
    return `older than ${a.older_than_days} days, to ${a.dir}: ${parts.join(", ")}`;
  },
  run: async (deps: OpDeps, signal?: AbortSignal) => {
    const results: string[] = [];
    const failures: string[] = [];
    for (const t of archiveTargets(deps)) {
      try {
        const r = await archiveAuditRows(deps, t, signal);
        results.push(`${t}: ${r.rows} row(s) in ${r.files.length} file(s)`);
      } catch (err) {
        failures.push(`${t}: ${why(err)}`);
      }
    }
    if (failures.length) throw new StepFailed("audit_archive", [...results, ...failures].join("; "));
    return results.join("; ") || "no targets";
  },
};

const steps = [approvalsStep, scratchStep, jobRunsStep, auditArchiveStep];

/** Reads what each step would touch. Never changes anything. */
export async function planCleanup(deps: OpDeps): Promise<CleanupPlan> {
  const items = await Promise.all(steps.map(async (s): Promise<CleanupItem> => {
    const unavailable = s.unavailable(deps);
    if (unavailable) return { key: s.key, title: s.title, unavailable, pending: "not available" };
    try {
      return { key: s.key, title: s.title, pending: await s.count(deps) };
    } catch (err) {
      return { key: s.key, title: s.title, pending: `could not count: ${why(err)}` };
    }
  }));
  return {
    summary:
      "Cleanup: expire approvals, drop orphaned scratch databases, prune job runs, archive old audit rows",
    steps: items.map((i) => `${i.title}: ${i.unavailable ? `not available (${i.unavailable})` : i.pending}`),
    fingerprint: {},
    items,
  };
}

/** Runs every available step; one failing does not stop the others. */
export async function runCleanup(deps: OpDeps, signal?: AbortSignal): Promise<CleanupReport> {
  const report: CleanupReport = { steps: [] };
  for (const s of steps) {
    const unavailable = s.unavailable(deps);
    if (unavailable) {
      report.steps.push({ key: s.key, title: s.title, outcome: "not available", detail: unavailable });
      continue;
    }
    try {
      report.steps.push({ key: s.key, title: s.title, outcome: "ok", detail: await s.run(deps, signal) });
    } catch (err) {
      deps.log.warn("cleanup step failed", { step: s.key, error: err });
      report.steps.push({ key: s.key, title: s.title, outcome: "failed", detail: why(err) });
    }
  }
  return report;
}

function describe(r: CleanupReport): string {
  return r.steps.map((s) => `${s.key}: ${s.outcome === "ok" ? s.detail : `${s.outcome} (${s.detail})`}`).join(
    "; ",
  );
}

function throwIfFailed(r: CleanupReport): void {
  const failed = r.steps.filter((s) => s.outcome === "failed");
  if (failed.length) {
    throw new StepFailed(
      failed.map((s) => s.key).join(","),
      `Cleanup: ${failed.map((s) => `${s.title}: ${s.detail}`).join("; ")}`,
    );
  }
}

/** The scheduled cleanup. */
export const cleanupJob: JobDefinition = {
  name: "cleanup",
  summary: "Expires approvals, drops orphaned scratch databases, prunes job runs, archives old audit rows",
  defaultCron: "30 3 * * *",
  destructive: true,
  gateRequest: () => ({ action: "cleanup", args: {} }),
  run: async (ctx) => {
    const report = await runCleanup(ctx.deps, ctx.signal);
    throwIfFailed(report);
    return { summary: describe(report), details: { steps: report.steps } };
  },
};

/**
 * `cleanup` as an operation, for an on-demand run through the approval gate (`/bisman run cleanup`). The
 * run is recorded among the job's runs like a scheduled one.
 */
export const cleanupOperation: Operation<Record<string, never>, CleanupPlan, CleanupReport> = {
  name: "cleanup",
  destructive: true,
  args: z.strictObject({}),
  plan: (_args, deps) => planCleanup(deps),
  revalidate: () => Promise.resolve(undefined),
  run: async (_plan, deps) => {
    const claim = await claimSlot(deps.state, {
      job: "cleanup",
      slot: new Date(deps.now().getTime()),
      trigger: "manual",
      runner: `gate:${Deno.pid}`,
      invoker: deps.actor,
      leaseSeconds: deps.config.scheduler.lease_seconds,
    });
    if (claim.status !== "claimed") {
      throw new OpsError(
        "conflict",
        "Cleanup is already running (a scheduled run): try again when it has finished",
      );
    }
    let report: CleanupReport | undefined;
    const lease = deps.config.scheduler.lease_seconds;
    const heartbeat = setInterval(
      () =>
        void renewLease(deps.state, claim.id, lease).catch((e) =>
          deps.log.warn("lease renewal failed", { error: e })
        ),
      Math.max(250, (lease * 1000) / 3),
    );
    try {
      report = await runCleanup(deps);
      throwIfFailed(report);
      await finishRun(deps.state, claim.id, {
        outcome: "ok",
        summary: describe(report),
        details: { steps: report.steps },
      });
      return report;
    } catch (err) {
      await finishRun(deps.state, claim.id, {
        outcome: "failed",
        error: why(err),
        details: { steps: report?.steps },
      })
        .catch((e) => deps.log.error("could not record the cleanup run", { error: e }));
      throw err;
    } finally {
      clearInterval(heartbeat);
    }
  },
  describeResult: describe,
};
