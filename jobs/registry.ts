/**
 * Every scheduled job: name, default schedule (the seed's), whether a manual run needs approval, and its
 * work. A job that cannot run in this process or config (no Vault, no restore tests configured) is still
 * listed, as "not available", with the reason.
 *
 * @module
 */

import type { JobDefinition } from "./types.ts";
import { digestJob } from "./digest.ts";
import { cleanupJob, cleanupOperation } from "./cleanup.ts";
import { registerOperations } from "../ops/registry.ts";
import { slowQueryReviewJob } from "./reviews.ts";
import { approvalExpiryJob } from "./approval_expiry.ts";
import { runLagCheck } from "./lag_check.ts";
import { auditAnomalyJob, backupStatusJob, credentialAgeJob, restoreTestJob } from "./periodic.ts";
import { intervalCron } from "./scheduler.ts";
import { auditAnchorJob } from "./audit_anchor.ts";

// The on-demand run of the daily cleanup is an operation (reached through the gate). It is registered here,
// with its job, because it drives the gate's expiry sweep and the job-run store, which ops/ must not import.
registerOperations(cleanupOperation);

/**
 * The seed's "check replication lag" (jobs/lag_check.ts) on the schedule: its cadence and switch default to
 * `alerts.lag_check`, so one key still turns it off or changes how often it runs.
 */
export const lagCheckJob: JobDefinition = {
  name: "lag_check",
  summary: "Replication lag of every replica; opens and resolves HighReplicationLag threads",
  defaultCron: "* * * * *",
  destructive: false,
  configDefaults: (config) => ({
    cron: intervalCron(config.alerts.lag_check.interval_seconds),
    enabled: config.alerts.lag_check.enabled,
  }),
  unavailable: (_deps, services) =>
    services.alerts ? undefined : "alert threads are not running in this process",
  run: async (ctx) => {
    const r = await runLagCheck(ctx.deps, ctx.services.alerts!);
    const bad = r.targets.filter((t) => t.severity !== "ok");
    const level = bad.some((t) => t.severity === "critical") ? "critical" : bad.length ? "warning" : "ok";
    return {
      summary:
        `${r.targets.length} target(s) checked, ${bad.length} not ok; ${r.opened.length} alert(s) opened, ` +
        `${r.resolved.length} resolved`,
      level,
      details: { opened: r.opened, resolved: r.resolved },
    };
  },
};

const jobs: JobDefinition[] = [];

/** All registered jobs, in the order `/bisman jobs` lists them. */
export function allJobs(): JobDefinition[] {
  return [...jobs];
}

/** The job called `name`, or undefined. */
export function getJob(name: string): JobDefinition | undefined {
  return jobs.find((j) => j.name === name);
}

/** Adds jobs; a second one of the same name is a programming error. */
export function registerJobs(...list: JobDefinition[]): void {
  for (const j of list) {
    if (jobs.some((x) => x.name === j.name)) throw new Error(`Job ${j.name} is registered twice`);
    jobs.push(j);
  }
}

/** Replaces a registered job (a feature module swapping a "not built" entry for the real one). */
export function replaceJob(job: JobDefinition): void {
  const i = jobs.findIndex((x) => x.name === job.name);
  if (i < 0) throw new Error(`Job ${job.name} is not registered`);
  jobs[i] = job;
}

registerJobs(
  digestJob,
  lagCheckJob,
  backupStatusJob,
  restoreTestJob,
  credentialAgeJob,
  slowQueryReviewJob,
  auditAnomalyJob,
  cleanupJob,
  approvalExpiryJob,
);
// Everyday use (issue 11): the audit log's daily anchor.
registerJobs(auditAnchorJob);
