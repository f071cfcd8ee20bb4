/**
 * Every scheduled job: name, default schedule (the seed's), whether a manual run needs approval, and its
 * work. A job whose operation this build does not have is still listed, as "not available", so `/bisman
 * jobs` and the config say the same thing in every build.
 *
 * @module
 */

import type { JobDefinition } from "./types.ts";
import { digestJob } from "./digest.ts";
import { cleanupJob } from "./cleanup.ts";
import { slowQueryReviewJob } from "./reviews.ts";
import { approvalExpiryJob } from "./approval_expiry.ts";
import { runLagCheck } from "./lag_check.ts";
import { intervalCron } from "./scheduler.ts";

/** A job whose operation is not in this build yet: listed, never scheduled. */
function notBuilt(name: string, summary: string, defaultCron: string, why: string): JobDefinition {
  return {
    name,
    summary,
    defaultCron,
    destructive: false,
    unavailable: () => why,
    run: () => Promise.reject(new Error(`${name} is not available: ${why}`)),
  };
}

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
  notBuilt(
    "backup_status",
    "Newest backups and WAL archiving of every target; posts when it gets worse",
    "0 * * * *",
    "the backup status check (ops/backup_status.ts) is not in this build",
  ),
  notBuilt(
    "restore_test",
    "Restores the newest dump of every target into a scratch database and verifies it",
    "0 3 1 * *",
    "restore tests (ops/restore_test.ts) are not in this build",
  ),
  notBuilt(
    "credential_age",
    "Vault password ages of every rotatable role against the 90-day rule",
    "0 8 * * *",
    "the credential-age check (ops/credential_ages.ts) is not in this build",
  ),
  slowQueryReviewJob,
  notBuilt(
    "audit_anomaly",
    "Bypass detection and security events of every target; findings wait for an acknowledgement",
    "0 * * * *",
    "bypass detection (ops/detect_bypass.ts) is not in this build",
  ),
  cleanupJob,
  approvalExpiryJob,
);
