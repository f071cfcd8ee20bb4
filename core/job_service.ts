/**
 * The scheduler as the rest of the bot sees it (`deps.jobs`): schedules, manual runs, the newest runs, and
 * the records they leave. Ground level so that `AppDeps` can carry it; jobs/scheduler.ts implements it.
 *
 * @module
 */

import type { Invoker } from "./access.ts";
import type { AlertSink } from "./alert_sink.ts";

/** Services of the bot process that some jobs need beyond AppDeps; bot.ts fills them in as it builds them. */
export interface JobServices {
  /** The alert threads: the lag check opens and resolves its own; the digest lists those still firing. */
  alerts?: AlertSink;
}

/** How a job judged what it found; a run can succeed and still find problems. */
export type JobLevel = "ok" | "warning" | "critical";

/** The recorded outcome of one run. */
export type RunOutcome = "running" | "ok" | "failed" | "skipped" | "interrupted";

/** A job's effective schedule in this process. */
export interface EffectiveSchedule {
  name: string;
  summary: string;
  cron: string;
  timezone: string;
  enabled: boolean;
  destructive: boolean;
  unavailable?: string;
  nextRun?: Date;
}

/** A stored run, as `/bisman jobs` and the checklist read it. */
export interface RunRecord {
  id: number;
  job: string;
  slot: Date;
  trigger: "schedule" | "manual";
  runner: string;
  invoker: string | null;
  startedAt: Date;
  finishedAt: Date | null;
  outcome: RunOutcome;
  level: JobLevel | null;
  summary: string | null;
  error: string | null;
  details: Record<string, unknown>;
  ackedBy: string | null;
  ackedAt: Date | null;
}

/** The scheduler as commands see it (`deps.jobs`). */
export interface JobService {
  /** Process services jobs use (the alert threads); the digest preview passes them on. */
  readonly services: JobServices;
  schedules(): EffectiveSchedule[];
  /** Runs a job now, outside its schedule, recorded as a manual run; resolves when it has finished. */
  runNow(name: string, invoker: Invoker): Promise<RunRecord>;
  /** The newest run of each job. */
  lastRuns(): Promise<Map<string, RunRecord>>;
  /** Applies `deps.config`'s schedules after a reload; returns the jobs whose schedule changed. */
  reschedule(): string[];
}
