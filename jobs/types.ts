/**
 * The shape of a scheduled job and of what the scheduler hands it. A job is entry-point code like a
 * subcommand: it calls operations (ops/) and renders through views/, and the scheduler around it
 * owns slots, leases, run records and failure posts.
 *
 * @module
 */

import type { AppDeps } from "../core/deps.ts";
import type { Invoker } from "../core/access.ts";
import type { Logger } from "../core/log.ts";
import type { Reply } from "../views/reply.ts";
import type {
  EffectiveSchedule,
  JobLevel,
  JobService,
  JobServices,
  RunOutcome,
  RunRecord,
} from "../core/job_service.ts";

export type { EffectiveSchedule, JobLevel, JobService, JobServices, RunOutcome, RunRecord };

/** Where a posted message lives. */
export interface PostedMessage {
  channel: string;
  ts: string;
}

/** Posts a message in the ops channel (or in a thread of it); returns where it went. */
export type Poster = (reply: Reply, opts?: { threadTs?: string }) => Promise<PostedMessage>;

/** The previous finished run of the same job, for jobs that report changes only. */
export interface PreviousRun {
  id: number;
  slot: Date;
  outcome: RunOutcome;
  level: JobLevel | null;
  details: Record<string, unknown>;
  finishedAt: Date | null;
}

/** What a running job may use. */
export interface JobContext {
  deps: AppDeps;
  job: string;
  runId: number;
  /** The scheduled time croner computed (or the moment of a manual run). */
  slot: Date;
  trigger: "schedule" | "manual";
  invoker?: Invoker;
  log: Logger;
  /** Aborted when the bot stops; long jobs should stop early. */
  signal: AbortSignal;
  post: Poster;
  /** The newest run of this job that finished (ok or failed) before this one. */
  previous?: PreviousRun;
  services: JobServices;
}

/** What a job reports; `summary` is one line for `/bisman jobs` and the run record. */
export interface JobResult {
  summary: string;
  level?: JobLevel;
  /** Stored with the run (JSON): evidence for the checklist, state for the next run. */
  details?: Record<string, unknown>;
  /** The message the run posted, so a button on it can acknowledge this run. */
  message?: PostedMessage;
}

/** One job: name, default schedule, whether a manual run needs approval, and its work. */
export interface JobDefinition {
  /** Lower-case with underscores; the key under `schedules` in the config. */
  readonly name: string;
  readonly summary: string;
  /** Croner pattern in the scheduler's time zone unless the config overrides it. */
  readonly defaultCron: string;
  /** Destructive jobs run on their schedule (configured in advance) and only through the gate on demand. */
  readonly destructive: boolean;
  /**
   * Defaults that another config block implies (the lag check's `alerts.lag_check`); `schedules.<name>`
   * still overrides them.
   */
  configDefaults?(config: AppDeps["config"]): { cron?: string; enabled?: boolean };
  /** Why this job cannot run in this build or config (its operation is missing), or undefined. */
  unavailable?(deps: AppDeps, services: JobServices): string | undefined;
  /** For a manual run of a destructive job: the request the approval gate gets. */
  gateRequest?(deps: AppDeps): { action: string; args: unknown };
  run(ctx: JobContext): Promise<JobResult>;
}
