/**
 * The history of restore tests (`bisman_ops.restore_tests`), and the facts the rest of the bot reads from
 * it: the last proven restore of a target (when, from which dump, its measured RTO and the age of the
 * dump's data: an upper bound on RPO), the plan note every destructive operation shows, and the approval
 * precondition `require_restore_test_within_days`.
 *
 * Runs of one target serialise on a session advisory lock in the state database, so two restore tests of
 * one target never run at once, across bot replicas too; the lock goes with the connection if the bot dies.
 *
 * @module
 */

import type { Sql } from "postgres";
import { type Config, policyFor } from "../core/config.ts";
import { OpsError } from "../core/errors.ts";
import { humanAge } from "./_findings.ts";

/** One verification query's outcome. */
export interface Verification {
  name: string;
  /** The value in the restored database (first column of the first row), as text. */
  restored?: string;
  /** The same query on the source (primary or replica), when compared. */
  source?: string;
  /** Where the source value came from (`primary`, a replica name). */
  sourceMember?: string;
  /** |restored - source| in percent of source. */
  diffPercent?: number;
  ok: boolean;
  /** Why it failed (or a note when it passed). */
  reason?: string;
}

/** A stored run. */
export interface RestoreTestRecord {
  id: number;
  target: string;
  trigger: string;
  requestedBy: string;
  status: "running" | "passed" | "failed" | "cancelled";
  startedAt: Date;
  finishedAt?: Date;
  backupFile: string;
  backupBytes?: number;
  backupCreatedAt?: Date;
  restoreServer: string;
  scratchDatabase: string;
  objectsTotal?: number;
  restoreMs?: number;
  totalMs?: number;
  restoredBytes?: number;
  verifications: Verification[];
  error?: string;
  scratchDropped?: boolean;
}

/** The last passing restore test of a target: what the rest of the bot relies on. */
export interface ProvenRestore {
  id: number;
  at: Date;
  backupFile: string;
  /** Measured RTO: CREATE DATABASE plus pg_restore. */
  restoreMs: number;
  /** How old the dump's data was when it was restored: an upper bound on RPO. */
  dataAgeMs?: number;
}

interface Row {
  id: string;
  target: string;
  trigger: string;
  requested_by: string;
  status: RestoreTestRecord["status"];
  started_at: Date;
  finished_at: Date | null;
  backup_file: string;
  backup_bytes: string | null;
  backup_created_at: Date | null;
  restore_server: string;
  scratch_database: string;
  objects_total: number | null;
  restore_ms: string | null;
  total_ms: string | null;
  restored_bytes: string | null;
  verifications: Verification[];
  error: string | null;
  scratch_dropped: boolean | null;
}

const num = (v: string | number | null) => (v === null ? undefined : Number(v));

function fromRow(r: Row): RestoreTestRecord {
  return {
    id: Number(r.id),
    target: r.target,
    trigger: r.trigger,
    requestedBy: r.requested_by,
    status: r.status,
    startedAt: r.started_at,
    finishedAt: r.finished_at ?? undefined,
    backupFile: r.backup_file,
    backupBytes: num(r.backup_bytes),
    backupCreatedAt: r.backup_created_at ?? undefined,
    restoreServer: r.restore_server,
    scratchDatabase: r.scratch_database,
    objectsTotal: r.objects_total ?? undefined,
    restoreMs: num(r.restore_ms),
    totalMs: num(r.total_ms),
    restoredBytes: num(r.restored_bytes),
    verifications: r.verifications ?? [],
    error: r.error ?? undefined,
    scratchDropped: r.scratch_dropped ?? undefined,
  };
}

/** Records a run as started, before it touches anything. @returns the run's id */
export async function recordStart(
  state: Sql,
  r: {
    target: string;
    trigger: string;
    requestedBy: string;
    startedAt: Date;
    backupFile: string;
    backupBytes: number;
    restoreServer: string;
    scratchDatabase: string;
  },
): Promise<number> {
  const [row] = await state<{ id: string }[]>`
    insert into bisman_ops.restore_tests
      (target, trigger, requested_by, status, started_at, backup_file, backup_bytes, restore_server, scratch_database)
    values (${r.target}, ${r.trigger}, ${r.requestedBy}, 'running', ${r.startedAt}, ${r.backupFile},
            ${r.backupBytes}, ${r.restoreServer}, ${r.scratchDatabase})
    returning id`;
  return Number(row.id);
}

/** Records how a run ended. */
export async function recordFinish(
  state: Sql,
  id: number,
  r: {
    status: "passed" | "failed" | "cancelled";
    finishedAt: Date;
    backupCreatedAt?: Date;
    objectsTotal?: number;
    restoreMs?: number;
    totalMs: number;
    restoredBytes?: number;
    verifications: Verification[];
    error?: string;
    scratchDropped: boolean;
  },
): Promise<void> {
  await state`
    update bisman_ops.restore_tests set
      status = ${r.status}, finished_at = ${r.finishedAt}, backup_created_at = ${r.backupCreatedAt ?? null},
      objects_total = ${r.objectsTotal ?? null}, restore_ms = ${r.restoreMs ?? null}, total_ms = ${r.totalMs},
      restored_bytes = ${r.restoredBytes ?? null}, verifications = ${state.json(r.verifications as never)},
      error = ${r.error ?? null}, scratch_dropped = ${r.scratchDropped}
    where id = ${id}`;
}

/**
 * Asks the running restore test of `target` to stop (whichever replica runs it polls for this).
 * @returns the run's id, or undefined when none is running
 */
export async function requestRestoreStop(
  state: Sql,
  target: string,
  by: string,
  now: Date,
): Promise<number | undefined> {
  const [row] = await state<{ id: string }[]>`
    update bisman_ops.restore_tests set cancel_requested_at = ${now}, cancel_requested_by = ${by}
     where target = ${target} and status = 'running' and cancel_requested_at is null
    returning id`;
  return row ? Number(row.id) : undefined;
}

/** Who asked run `id` to stop, or undefined while nobody has. */
export async function restoreStopRequested(state: Sql, id: number): Promise<string | undefined> {
  const [row] = await state<{ by: string | null; at: Date | null }[]>`
    select cancel_requested_by as by, cancel_requested_at as at from bisman_ops.restore_tests where id = ${id}`;
  return row?.at ? (row.by ?? "someone") : undefined;
}

/** The last passing restore test of `target`, or undefined when none ever passed. */
export async function lastProvenRestore(state: Sql, target: string): Promise<ProvenRestore | undefined> {
  const [r] = await state<
    { id: string; finished_at: Date; backup_file: string; restore_ms: string; data_age_ms: string | null }[]
  >`
    select id, finished_at, backup_file, restore_ms,
           (extract(epoch from started_at - backup_created_at) * 1000)::bigint as data_age_ms
      from bisman_ops.restore_tests
     where target = ${target} and status = 'passed'
     order by finished_at desc
     limit 1`;
  if (!r) return undefined;
  return {
    id: Number(r.id),
    at: r.finished_at,
    backupFile: r.backup_file,
    restoreMs: Number(r.restore_ms),
    dataAgeMs: num(r.data_age_ms),
  };
}

/** The newest runs of `target`, newest first (the digest's trend, the backups report's last test). */
export async function recentRestoreTests(
  state: Sql,
  target: string,
  limit = 6,
): Promise<RestoreTestRecord[]> {
  const rows = await state<Row[]>`
    select * from bisman_ops.restore_tests where target = ${target} order by started_at desc, id desc
     limit ${limit}`;
  return rows.map(fromRow);
}

/** One run by id. */
export async function getRestoreTest(state: Sql, id: number): Promise<RestoreTestRecord | undefined> {
  const [r] = await state<Row[]>`select * from bisman_ops.restore_tests where id = ${id}`;
  return r ? fromRow(r) : undefined;
}

/**
 * Marks runs of `target` still recorded as running as failed: only call while holding the target's lock
 * (so none of them is really running).
 * @returns the ids it marked
 */
export async function markInterrupted(
  state: Sql,
  target: string,
  now: Date,
  note: string,
): Promise<number[]> {
  const rows = await state<{ id: string }[]>`
    update bisman_ops.restore_tests
       set status = 'failed', finished_at = ${now}, error = ${note}
     where target = ${target} and status = 'running'
    returning id`;
  return rows.map((r) => Number(r.id));
}

/** Advisory-lock class of restore tests ("rstt"); the object id is hashtext(target). */
const RESTORE_LOCK_CLASS = 0x72737474;

/**
 * Runs `fn` holding the target's restore-test lock (a session advisory lock on a reserved state
 * connection), or returns `busy` without waiting when another run (in any bot replica) holds it.
 */
export async function tryWithRestoreLock<T>(
  state: Sql,
  target: string,
  fn: () => Promise<T>,
): Promise<{ busy: true } | { busy: false; value: T }> {
  const conn = await state.reserve();
  try {
    const [{ ok }] = await conn<{ ok: boolean }[]>`
      select pg_try_advisory_lock(${RESTORE_LOCK_CLASS}, hashtext(${target})) as ok`;
    if (!ok) return { busy: true };
    try {
      return { busy: false, value: await fn() };
    } finally {
      await conn`select pg_advisory_unlock(${RESTORE_LOCK_CLASS}, hashtext(${target}))`.catch(() =>
        undefined
      );
    }
  } finally {
    conn.release();
  }
}

/**
 * Like {@link tryWithRestoreLock}, but a held lock is an error naming the run that holds it.
 * @throws {OpsError} `conflict` when a restore test of `target` is already running
 */
export async function withRestoreLock<T>(
  state: Sql,
  target: string,
  now: Date,
  fn: () => Promise<T>,
): Promise<T> {
  const r = await tryWithRestoreLock(state, target, fn);
  if (!r.busy) return r.value;
  // The holder takes the lock before it records its run: give the row a moment to appear, so the refusal
  // can name who holds it (a run that ended meanwhile never shows up, and the message says less).
  let running: RestoreTestRecord | undefined;
  for (let i = 0; i < 15 && !running; i++) {
    if (i) await new Promise((r) => setTimeout(r, 200));
    [running] = (await recentRestoreTests(state, target, 5)).filter((x) => x.status === "running");
  }
  const who = running
    ? `: run ${running.id} by ${running.requestedBy}, started ${
      humanAge(now.getTime() - running.startedAt.getTime())
    } ago from ${running.backupFile}`
    : "";
  throw new OpsError(
    "conflict",
    `A restore test of ${target} is already running${who}. Wait for its result; two never run at once`,
  );
}

/** Actions that are restore tests themselves: requiring a restore test of them would lock it out for good. */
const RESTORE_TEST_ACTIONS = new Set(["restore_test", "restore_test_gated"]);

/** Days of a passing restore test an action requires (its policy, an alias such as `promote`, or `default`). */
export function requiredRestoreDays(config: Config, action: string): number | undefined {
  if (RESTORE_TEST_ACTIONS.has(action)) return undefined;
  return policyFor(config, action).require_restore_test_within_days;
}

/**
 * The approval precondition: when the action's policy sets `require_restore_test_within_days`, refuses
 * unless the target's last passing restore test is at most that old. Checked at request time and again
 * just before running.
 * @returns the refusal (why, and how to start a test), or undefined when the action may go on
 */
export async function checkRestoreRequirement(
  deps: { config: Config; state: Sql; now: () => Date },
  action: string,
  target: string | undefined,
): Promise<string | undefined> {
  const days = requiredRestoreDays(deps.config, action);
  if (days === undefined || !target) return undefined;
  const proven = await lastProvenRestore(deps.state, target);
  const start = `Start one with \`/bisman restore-test ${target}\`, then ask again.`;
  if (!proven) {
    return `${action} on ${target} needs a passing restore test within ${days} days, and ${target} has none. ${start}`;
  }
  const age = deps.now().getTime() - proven.at.getTime();
  if (age <= days * 86_400_000) return undefined;
  return `${action} on ${target} needs a passing restore test within ${days} days; the last one passed ${
    humanAge(age)
  } ago (run ${proven.id}, ${proven.backupFile}). ${start}`;
}

/** "last proven restore: N days ago (...)": the plan note of every destructive operation on `target`. */
export async function provenRestoreNote(
  deps: { state: Sql; now: () => Date },
  target: string | undefined,
): Promise<string | undefined> {
  if (!target) return undefined;
  const proven = await lastProvenRestore(deps.state, target);
  if (!proven) return `last proven restore: none on record for ${target}`;
  return `last proven restore: ${describeProven(proven, deps.now())}`;
}

/** "3 days ago, from x.dump, restored in 41 s, data 5 h old". */
export function describeProven(p: ProvenRestore, now: Date): string {
  const days = Math.floor((now.getTime() - p.at.getTime()) / 86_400_000);
  const when = days === 0 ? "today" : days === 1 ? "1 day ago" : `${days} days ago`;
  return `${when} (${p.at.toISOString().slice(0, 16)}Z), from ${p.backupFile}, restored in ${
    humanAge(p.restoreMs)
  }${p.dataAgeMs !== undefined ? `, data ${humanAge(p.dataAgeMs)} old` : ""}`;
}
