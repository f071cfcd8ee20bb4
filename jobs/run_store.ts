/**
 * The run records of scheduled jobs in the state database, one named function per statement.
 *
 * Claiming a slot is the exactly-once mechanism: every replica's croner fires at the same scheduled time,
 * each tries `insert ... on conflict (job, slot) do nothing returning id`, and only one gets the row. The
 * claim runs under a transaction-scoped advisory lock per job, so it can also see whether another run of
 * the same job is still alive (its lease not lapsed) and record the slot as skipped instead of overlapping
 * it. Leases are judged by the database clock, so replicas with skewed clocks still agree.
 *
 * @module
 */

import type { Sql } from "postgres";
import type { JobLevel, PreviousRun, RunOutcome, RunRecord } from "./types.ts";
import { transaction } from "../core/pg_tx.ts";

/** Advisory lock namespace of job claims ("jobs"); the second key is hashtext(job). */
const JOB_LOCK_NS = 0x6a6f6273;

/** The result of trying to claim one slot. */
export type Claim =
  | { status: "claimed"; id: number; interrupted: InterruptedRun[] }
  /** Another replica already holds this slot. */
  | { status: "taken"; interrupted: InterruptedRun[] }
  /** A run of the same job is still alive elsewhere; the slot is recorded as skipped. */
  | {
    status: "skipped";
    id: number;
    blockedBy: { id: number; runner: string };
    interrupted: InterruptedRun[];
  };

/** A run whose lease lapsed: its process died or hung without renewing it. */
export interface InterruptedRun {
  id: number;
  runner: string;
  slot: Date;
}

/**
 * Claims `(job, slot)` for `runner`, first recording runs of the job whose lease has lapsed as interrupted.
 * @returns `claimed` (run it), `taken` (another replica has it) or `skipped` (another run is still alive)
 */
export async function claimSlot(state: Sql, p: {
  job: string;
  slot: Date;
  trigger: "schedule" | "manual";
  runner: string;
  invoker?: string;
  leaseSeconds: number;
}): Promise<Claim> {
  return await transaction(state, async (tx) => {
    await tx`select pg_advisory_xact_lock(${JOB_LOCK_NS}, hashtext(${p.job}))`;
    const lapsed = await tx<{ id: string; runner: string; slot: Date }[]>`
      update bisman_ops.job_runs
         set outcome = 'interrupted', finished_at = now(),
             error = 'The replica running it stopped renewing its lease (it died or hung): check its log'
       where job = ${p.job} and outcome = 'running' and lease_until < now()
      returning id, runner, slot`;
    const interrupted = lapsed.map((r) => ({ id: Number(r.id), runner: r.runner, slot: new Date(r.slot) }));
    const [live] = await tx<{ id: string; runner: string }[]>`
      select id, runner from bisman_ops.job_runs
       where job = ${p.job} and outcome = 'running'
       order by slot limit 1`;
    const skipped = live !== undefined;
    const [row] = await tx<{ id: string }[]>`
      insert into bisman_ops.job_runs
        (job, slot, trigger, runner, invoker, lease_until, outcome, finished_at, summary)
      values (${p.job}, ${p.slot}, ${p.trigger}, ${p.runner}, ${p.invoker ?? null},
              now() + make_interval(secs => ${p.leaseSeconds}),
              ${skipped ? "skipped" : "running"}, case when ${skipped}::boolean then now() end,
              ${skipped ? `Skipped: run ${live.id} on ${live.runner} was still running` : null})
      on conflict (job, slot) do nothing
      returning id`;
    if (!row) return { status: "taken", interrupted };
    if (skipped) {
      return {
        status: "skipped",
        id: Number(row.id),
        blockedBy: { id: Number(live.id), runner: live.runner },
        interrupted,
      };
    }
    return { status: "claimed", id: Number(row.id), interrupted };
  });
}

/** Extends a running run's lease; false when the run is no longer `running` (someone declared it dead). */
export async function renewLease(state: Sql, id: number, leaseSeconds: number): Promise<boolean> {
  const rows = await state`
    update bisman_ops.job_runs
       set heartbeat_at = now(), lease_until = now() + make_interval(secs => ${leaseSeconds})
     where id = ${id} and outcome = 'running'
    returning id`;
  return rows.length > 0;
}

/** Records how a run ended. Overwrites `interrupted` too: the true outcome beats a presumed death. */
export async function finishRun(state: Sql, id: number, r: {
  outcome: "ok" | "failed" | "interrupted";
  level?: JobLevel;
  summary?: string;
  error?: string;
  details?: Record<string, unknown>;
  message?: { channel: string; ts: string };
}): Promise<void> {
  await state`
    update bisman_ops.job_runs
       set outcome = ${r.outcome}, finished_at = now(), level = ${r.level ?? null},
           summary = ${r.summary ?? null}, error = ${r.error ?? null},
           details = ${state.json((r.details ?? {}) as never)},
           message_channel = ${r.message?.channel ?? null}, message_ts = ${r.message?.ts ?? null}
     where id = ${id}`;
}

/** Marks runs still `running` under `runner` as interrupted (a clean stop that could not wait for them). */
export async function abandonRuns(state: Sql, ids: number[], why: string): Promise<void> {
  if (!ids.length) return;
  await state`
    update bisman_ops.job_runs set outcome = 'interrupted', finished_at = now(), error = ${why}
     where id = any(${ids}::bigint[]) and outcome = 'running'`;
}

/** What changed in a job's failing state, so the caller posts a failure or a recovery exactly once. */
export interface StateChange {
  /** This failure started a failing streak: post it. */
  startedFailing: boolean;
  /** This success ended a failing streak of `failures` runs: post the recovery. */
  recovered: boolean;
  failures: number;
}

/**
 * Updates the per-job failing state under a row lock. Only the transition is reported, so a job failing
 * every minute is posted once, not every minute, whichever replica runs it.
 */
export async function recordJobState(state: Sql, job: string, ok: boolean): Promise<StateChange> {
  return await transaction(state, async (tx) => {
    await tx`insert into bisman_ops.job_state (job) values (${job}) on conflict (job) do nothing`;
    const [before] = await tx<{ failing_since: Date | null; consecutive_failures: number }[]>`
      select failing_since, consecutive_failures from bisman_ops.job_state where job = ${job} for update`;
    if (ok) {
      await tx`
        update bisman_ops.job_state
           set last_success_at = now(), failing_since = null, consecutive_failures = 0
         where job = ${job}`;
      return {
        startedFailing: false,
        recovered: before.failing_since !== null,
        failures: before.consecutive_failures,
      };
    }
    await tx`
      update bisman_ops.job_state
         set last_failure_at = now(), failing_since = coalesce(failing_since, now()),
             consecutive_failures = consecutive_failures + 1, failures_total = failures_total + 1
       where job = ${job}`;
    return {
      startedFailing: before.failing_since === null,
      recovered: false,
      failures: before.consecutive_failures + 1,
    };
  });
}

/** Per-job state for /metrics: last success, failing or not, failures ever. */
export interface JobStateRow {
  job: string;
  lastSuccessAt: Date | null;
  failing: boolean;
  consecutiveFailures: number;
  failuresTotal: number;
}

export async function readJobStates(state: Sql): Promise<JobStateRow[]> {
  const rows = await state<
    {
      job: string;
      last_success_at: Date | null;
      failing_since: Date | null;
      consecutive_failures: number;
      failures_total: string;
    }[]
  >`select job, last_success_at, failing_since, consecutive_failures, failures_total from bisman_ops.job_state`;
  return rows.map((r) => ({
    job: r.job,
    lastSuccessAt: r.last_success_at ? new Date(r.last_success_at) : null,
    failing: r.failing_since !== null,
    consecutiveFailures: r.consecutive_failures,
    failuresTotal: Number(r.failures_total),
  }));
}

interface RunRow {
  id: string;
  job: string;
  slot: Date;
  trigger: "schedule" | "manual";
  runner: string;
  invoker: string | null;
  started_at: Date;
  finished_at: Date | null;
  outcome: RunOutcome;
  level: JobLevel | null;
  summary: string | null;
  error: string | null;
  details: Record<string, unknown>;
  acked_by: string | null;
  acked_at: Date | null;
}

function toRecord(r: RunRow): RunRecord {
  return {
    id: Number(r.id),
    job: r.job,
    slot: new Date(r.slot),
    trigger: r.trigger,
    runner: r.runner,
    invoker: r.invoker,
    startedAt: new Date(r.started_at),
    finishedAt: r.finished_at ? new Date(r.finished_at) : null,
    outcome: r.outcome,
    level: r.level,
    summary: r.summary,
    error: r.error,
    details: r.details ?? {},
    ackedBy: r.acked_by,
    ackedAt: r.acked_at ? new Date(r.acked_at) : null,
  };
}

const runColumns = (sql: Sql) =>
  sql`id, job, slot, trigger, runner, invoker, started_at, finished_at, outcome, level, summary, error,
      details, acked_by, acked_at`;

/** One run by id. */
export async function readRun(state: Sql, id: number): Promise<RunRecord | undefined> {
  const [row] = await state<RunRow[]>`
    select ${runColumns(state)} from bisman_ops.job_runs where id = ${id}`;
  return row ? toRecord(row) : undefined;
}

/** The newest run (by slot) of each job, skipped slots excluded. */
export async function readLastRuns(state: Sql): Promise<Map<string, RunRecord>> {
  const rows = await state<RunRow[]>`
    select distinct on (job) ${runColumns(state)} from bisman_ops.job_runs
     where outcome <> 'skipped'
     order by job, slot desc`;
  return new Map(rows.map((r) => [r.job, toRecord(r)]));
}

/** Runs of one job, newest first, optionally only those that ended in one of `outcomes` or since `since`. */
export async function readRuns(state: Sql, job: string, opts: {
  outcomes?: RunOutcome[];
  since?: Date;
  limit?: number;
} = {}): Promise<RunRecord[]> {
  const rows = await state<RunRow[]>`
    select ${runColumns(state)} from bisman_ops.job_runs
     where job = ${job}
       and (${opts.outcomes ?? null}::text[] is null or outcome = any(${opts.outcomes ?? null}::text[]))
       and (${opts.since ?? null}::timestamptz is null or slot >= ${opts.since ?? null})
     order by slot desc
     limit ${opts.limit ?? 100}`;
  return rows.map(toRecord);
}

/** The newest finished (ok or failed) run of `job` before `slot`. */
export async function readPreviousRun(state: Sql, job: string, slot: Date): Promise<PreviousRun | undefined> {
  const [r] = await state<
    {
      id: string;
      slot: Date;
      outcome: RunOutcome;
      level: JobLevel | null;
      details: Record<string, unknown>;
      finished_at: Date | null;
    }[]
  >`
    select id, slot, outcome, level, details, finished_at from bisman_ops.job_runs
     where job = ${job} and slot < ${slot} and outcome in ('ok', 'failed')
     order by slot desc limit 1`;
  if (!r) return undefined;
  return {
    id: Number(r.id),
    slot: new Date(r.slot),
    outcome: r.outcome,
    level: r.level,
    details: r.details ?? {},
    finishedAt: r.finished_at ? new Date(r.finished_at) : null,
  };
}

/**
 * Records that a person acknowledged a run (the weekly slow-query review, audit findings).
 * @returns false when the run does not exist or was already acknowledged (the first click counts)
 */
export async function ackRun(
  state: Sql,
  id: number,
  by: { userId: string; userName?: string },
): Promise<boolean> {
  const rows = await state`
    update bisman_ops.job_runs set acked_by = ${by.userId}, acked_by_name = ${by.userName ?? null},
           acked_at = now()
     where id = ${id} and acked_at is null and outcome = 'ok'
    returning id`;
  return rows.length > 0;
}

/** Deletes finished runs older than `days`; returns how many. Running runs are never pruned. */
export async function pruneRuns(state: Sql, days: number): Promise<number> {
  const rows = await state`
    delete from bisman_ops.job_runs
     where outcome <> 'running' and coalesce(finished_at, started_at) < now() - make_interval(days => ${days})
    returning id`;
  return rows.length;
}

/** How many runs `pruneRuns(days)` would delete (for the cleanup plan). */
export async function countPrunableRuns(state: Sql, days: number): Promise<number> {
  const [r] = await state<{ n: number }[]>`
    select count(*)::int as n from bisman_ops.job_runs
     where outcome <> 'running' and coalesce(finished_at, started_at) < now() - make_interval(days => ${days})`;
  return r.n;
}
