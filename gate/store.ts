/**
 * The approval gate's SQL: one small named function per statement over `bisman_ops.requests`,
 * `approvals`, `freeze` and `instances` (sql/0002_requests.sql).
 *
 * Every state change is a conditional UPDATE that names the state it leaves (`where state = 'pending'`),
 * so two clicks, a Slack retry or two bot replicas racing for the same request change it once: the
 * loser's UPDATE matches no row. Time comes from the caller (`deps.now`), never from SQL's `now()`,
 * so tests can move the clock and every replica judges expiry by the same rule.
 *
 * @module
 */

import type { Sql } from "postgres";
import type { EffectivePolicy } from "../core/config.ts";
import type { FreezeState } from "../core/freeze.ts";

export type { FreezeState };
export { clearFreeze, readFreeze, setFreeze } from "../core/freeze.ts";
import type { PlanBase } from "../ops/types.ts";

/** Where a request is in its life cycle. */
export type RequestState =
  | "pending"
  | "approved"
  | "running"
  | "succeeded"
  | "failed"
  | "denied"
  | "expired"
  | "interrupted"
  | "cancelled"
  | "stale";

/** States after which nothing more happens to a request (except reconcile notes on `interrupted`). */
export const FINAL_STATES: readonly RequestState[] = [
  "succeeded",
  "failed",
  "denied",
  "expired",
  "interrupted",
  "cancelled",
  "stale",
];

/** States in which a request is still open: waiting for approvals, approved, or running. */
export const OPEN_STATES: readonly RequestState[] = ["pending", "approved", "running"];

/** Every state, in life-cycle order. */
export const ALL_STATES: readonly RequestState[] = [...OPEN_STATES, ...FINAL_STATES];

/** What reconcile() found after an interruption, as stored. */
export interface ReconcileVerdict {
  status: "done" | "not_done" | "needs_human";
  note: string;
}

/** A plan as the gate stores it: the operation's plan, plus optional fields the approval message shows. */
export interface StoredPlan extends PlanBase {
  /** What is checked after the steps ran. */
  verify?: string[];
  /** How a failed step is undone (or that it cannot be). */
  undo?: string[];
  /** The word an approver must type when the policy demands typed confirmation (default: the target). */
  confirmText?: string;
}

/** One row of `bisman_ops.requests`. */
export interface RequestRow {
  id: number;
  action: string;
  target: string | null;
  args: Record<string, unknown>;
  plan: StoredPlan;
  plan_hash: string;
  notes: string[];
  state: RequestState;
  requester_id: string;
  requester_name: string | null;
  via: string;
  asked_in: string | null;
  channel: string | null;
  message_ts: string | null;
  thread_ts: string | null;
  approvals_needed: number;
  policy: EffectivePolicy;
  created_at: Date;
  expires_at: Date;
  started_at: Date | null;
  finished_at: Date | null;
  decided_by: string | null;
  decided_by_name: string | null;
  result: unknown;
  summary: string | null;
  error: string | null;
  deny_reason: string | null;
  run_by: string | null;
  heartbeat_at: Date | null;
  reconcile: ReconcileVerdict | null;
  // The fields below came with sql/0006 (issue 11); optional so rows built by older code still type-check.
  /** When the one reminder went to the thread. */
  reminded_at?: Date | null;
  /** A stop asked for while it ran (operations that stop safely), and by whom. */
  cancel_requested_at?: Date | null;
  cancel_requested_by?: string | null;
  cancel_requested_by_name?: string | null;
  /** "Take a backup first": null when not offered, true while kept, false when an approver dropped it. */
  pre_backup?: boolean | null;
  /** The latest progress line of a running request. */
  progress?: string | null;
  /** The bot's seal over the fields that decide what runs (gate/seal.ts); null in rows from before sql/0007. */
  seal?: unknown;
}

/** One approval. */
export interface ApprovalRow {
  approver: string;
  approver_name: string | null;
  at: Date;
  /** The plan hash the approver's click carried (sql/0007). */
  plan_hash?: string | null;
  /** The bot's seal of this approval (gate/seal.ts). */
  seal?: string | null;
}

/** What a new request stores. */
export interface NewRequest {
  /** Reserved with {@link nextRequestId}, so the seal can cover it. */
  id: number;
  action: string;
  target?: string;
  args: unknown;
  plan: StoredPlan;
  planHash: string;
  notes: string[];
  requesterId: string;
  requesterName?: string;
  via: string;
  askedIn?: string;
  approvalsNeeded: number;
  policy: EffectivePolicy;
  createdAt: Date;
  expiresAt: Date;
  /** Offer "take a backup first" (kept until an approver drops it). */
  preBackup?: boolean;
  /** The bot's seal over the row (gate/seal.ts). */
  seal: unknown;
}

/** Advisory-lock namespace (first int4 key) of instance liveness locks: an arbitrary constant, "bins". */
export const INSTANCE_LOCK_NS = 0x62696e73;

type Json = Parameters<Sql["json"]>[0];

/** Reserves the ID of the next request, so its seal can cover the ID before the row exists. */
export async function nextRequestId(sql: Sql): Promise<number> {
  const [row] = await sql<{ id: number }[]>`
    select nextval(pg_get_serial_sequence('bisman_ops.requests', 'id'))::int as id`;
  return row.id;
}

/** Inserts a pending request under its reserved ID, with its seal. */
export async function insertRequest(sql: Sql, r: NewRequest): Promise<RequestRow> {
  const [row] = await sql<RequestRow[]>`
    insert into bisman_ops.requests
      (id, action, target, args, plan, plan_hash, notes, requester_id, requester_name, via, asked_in,
       approvals_needed, policy, created_at, expires_at, pre_backup, seal)
    overriding system value
    values (${r.id}, ${r.action}, ${r.target ?? null}, ${sql.json(r.args as Json)}, ${
    sql.json(r.plan as unknown as Json)
  },
            ${r.planHash}, ${sql.json(r.notes)}, ${r.requesterId}, ${r.requesterName ?? null}, ${r.via},
            ${r.askedIn ?? null}, ${r.approvalsNeeded}, ${sql.json(r.policy as unknown as Json)},
            ${r.createdAt}, ${r.expiresAt}, ${r.preBackup ?? null}, ${sql.json(r.seal as Json)})
    returning *`;
  return row;
}

/** One request, or undefined. */
export async function getRequest(sql: Sql, id: number): Promise<RequestRow | undefined> {
  const [row] = await sql<RequestRow[]>`select * from bisman_ops.requests where id = ${id}`;
  return row;
}

/** Requests in the given states, oldest first (the digest lists open approvals with this). */
export async function listRequests(
  sql: Sql,
  states: readonly RequestState[],
  limit = 100,
): Promise<RequestRow[]> {
  return await sql<RequestRow[]>`
    select * from bisman_ops.requests where state in ${sql([...states])} order by id limit ${limit}`;
}

/** Remembers where the approval message was posted. */
export async function setMessage(
  sql: Sql,
  id: number,
  where: { channel: string; ts: string; threadTs?: string },
): Promise<void> {
  await sql`
    update bisman_ops.requests
       set channel = ${where.channel}, message_ts = ${where.ts}, thread_ts = ${where.threadTs ?? null}
     where id = ${id}`;
}

/** Approvals of a request, in the order given. */
export async function listApprovals(sql: Sql, id: number): Promise<ApprovalRow[]> {
  return await sql<ApprovalRow[]>`
    select approver, approver_name, at, plan_hash, seal
      from bisman_ops.approvals where request_id = ${id} order by at, approver`;
}

/**
 * Records one approval while the request is still pending and unexpired, with the plan hash the approver's
 * click carried and the bot's seal of it. Never for the requester: the statement itself refuses that row.
 * @returns `added`, `duplicate` (this approver already approved) or `closed` (no longer pending)
 */
export async function addApproval(
  sql: Sql,
  id: number,
  approver: { id: string; name?: string; planHash: string; seal: string },
  now: Date,
): Promise<"added" | "duplicate" | "closed"> {
  const inserted = await sql`
    insert into bisman_ops.approvals (request_id, approver, approver_name, at, plan_hash, seal)
    select r.id, ${approver.id}, ${approver.name ?? null}, ${now}, ${approver.planHash}, ${approver.seal}
      from bisman_ops.requests r
     where r.id = ${id} and r.state = 'pending' and r.expires_at > ${now} and r.requester_id <> ${approver.id}
    on conflict (request_id, approver) do nothing
    returning approver`;
  if (inserted.length) return "added";
  const [dup] = await sql`
    select 1 from bisman_ops.approvals where request_id = ${id} and approver = ${approver.id}`;
  return dup ? "duplicate" : "closed";
}

/**
 * Claims a request for running: the one conditional UPDATE that makes execution exactly-once. It
 * succeeds only while the request is pending, unexpired, has enough distinct approvals from `approvers`
 * (the approvals whose seals the gate verified; never the requester's), and is not frozen (unless its
 * policy allows it during a freeze), all judged in the same statement.
 * @returns the claimed row, or undefined when another click, replica or state change got there first
 */
export async function claimRequest(
  sql: Sql,
  id: number,
  claim: { instance: string; by: string; byName?: string; now: Date; approvers: string[]; needed: number },
): Promise<RequestRow | undefined> {
  const [row] = await sql<RequestRow[]>`
    update bisman_ops.requests r
       set state = 'running', run_by = ${claim.instance}, started_at = ${claim.now},
           heartbeat_at = ${claim.now}, decided_by = ${claim.by}, decided_by_name = ${claim.byName ?? null}
     where r.id = ${id}
       and r.state = 'pending'
       and r.expires_at > ${claim.now}
       and r.approvals_needed = ${claim.needed}
       and (select count(*) from bisman_ops.approvals a
             where a.request_id = r.id and a.approver <> r.requester_id
               and a.approver = any(${claim.approvers}::text[])) >= ${claim.needed}
       and (not (select f.frozen from bisman_ops.freeze f)
            or coalesce((r.policy ->> 'allowed_during_freeze')::boolean, false))
    returning *`;
  return row;
}

/**
 * Records the end of a run by this instance. `interrupted` is accepted too: if a peer wrongly took this
 * instance for dead (its lock connection dropped), the real outcome still wins.
 */
export async function finishRequest(
  sql: Sql,
  id: number,
  instance: string,
  end: {
    state: "succeeded" | "failed" | "stale" | "cancelled";
    now: Date;
    result?: unknown;
    summary?: string;
    error?: string;
  },
): Promise<RequestRow | undefined> {
  const [row] = await sql<RequestRow[]>`
    update bisman_ops.requests
       set state = ${end.state}, finished_at = ${end.now},
           result = ${end.result === undefined ? null : sql.json(end.result as Json)},
           summary = ${end.summary ?? null}, error = ${end.error ?? null}
     where id = ${id} and run_by = ${instance} and state in ('running', 'interrupted')
    returning *`;
  return row;
}

/** Closes a pending request as denied, cancelled or expired; undefined when it was no longer pending. */
export async function closePending(
  sql: Sql,
  id: number,
  close: {
    state: "denied" | "cancelled" | "expired";
    now: Date;
    by?: string;
    byName?: string;
    reason?: string;
  },
): Promise<RequestRow | undefined> {
  const [row] = await sql<RequestRow[]>`
    update bisman_ops.requests
       set state = ${close.state}, finished_at = ${close.now}, decided_by = ${close.by ?? null},
           decided_by_name = ${close.byName ?? null}, deny_reason = ${close.reason ?? null}
     where id = ${id} and state = 'pending'
       and (${close.state} <> 'expired' or expires_at <= ${close.now})
    returning *`;
  return row;
}

/** Marks every pending request past its expiry as expired; returns those this call expired. */
export async function expireDue(sql: Sql, now: Date): Promise<RequestRow[]> {
  return await sql<RequestRow[]>`
    update bisman_ops.requests
       set state = 'expired', finished_at = ${now}
     where state = 'pending' and expires_at <= ${now}
    returning *`;
}

/** Running requests whose instance holds no liveness lock: their process died. */
export async function orphanedRunning(sql: Sql): Promise<RequestRow[]> {
  return await sql<RequestRow[]>`
    select r.* from bisman_ops.requests r
     where r.state = 'running'
       and not exists (
         select 1
           from bisman_ops.instances i
           join pg_locks l
             on l.locktype = 'advisory' and l.granted and l.objsubid = 2
            and l.classid = ${INSTANCE_LOCK_NS}::oid and l.objid = i.lock_key::oid
            and l.database = (select d.oid from pg_database d where d.datname = current_database())
          where i.id = r.run_by)
     order by r.id`;
}

/** Marks a running request interrupted, once, if it is still held by the dead `runBy`. */
export async function markInterrupted(
  sql: Sql,
  id: number,
  runBy: string,
  now: Date,
): Promise<RequestRow | undefined> {
  const [row] = await sql<RequestRow[]>`
    update bisman_ops.requests
       set state = 'interrupted', finished_at = ${now},
           error = 'The bot stopped while this was running'
     where id = ${id} and state = 'running' and run_by = ${runBy}
    returning *`;
  return row;
}

/** Stores reconcile()'s verdict. */
export async function recordReconcile(sql: Sql, id: number, verdict: ReconcileVerdict): Promise<void> {
  await sql`update bisman_ops.requests set reconcile = ${
    sql.json(verdict as unknown as Json)
  } where id = ${id}`;
}

/** Signs of life: this instance's row and every request it is running. */
export async function heartbeat(sql: Sql, instance: string, now: Date): Promise<void> {
  await sql`update bisman_ops.instances set heartbeat_at = ${now} where id = ${instance}`;
  await sql`
    update bisman_ops.requests set heartbeat_at = ${now} where run_by = ${instance} and state = 'running'`;
}

/** Registers a bot instance; returns the second key of its liveness lock. */
export async function registerInstance(
  sql: Sql,
  inst: { id: string; host: string; pid: number; now: Date },
): Promise<number> {
  const [row] = await sql<{ lock_key: number }[]>`
    insert into bisman_ops.instances (id, host, pid, started_at, heartbeat_at)
    values (${inst.id}, ${inst.host}, ${inst.pid}, ${inst.now}, ${inst.now})
    returning lock_key`;
  return row.lock_key;
}

/** Forgets instances that are dead and no longer referenced by a running request. */
export async function pruneInstances(sql: Sql): Promise<void> {
  await sql`
    delete from bisman_ops.instances i
     where not exists (select 1 from bisman_ops.requests r where r.run_by = i.id and r.state = 'running')
       and not exists (
         select 1 from pg_locks l
          where l.locktype = 'advisory' and l.granted and l.objsubid = 2
            and l.classid = ${INSTANCE_LOCK_NS}::oid and l.objid = i.lock_key::oid
            and l.database = (select d.oid from pg_database d where d.datname = current_database()))`;
}

// --- everyday use (issue 11): lists, reminders, stopping a running request, the backup-first step ---

/** What `/bisman requests` asks for. */
export interface RequestSearch {
  /** Only these states (all when absent). */
  states?: RequestState[];
  /** Only requests by this Slack user. */
  requester?: string;
  /** Created at or after. */
  since: Date;
  limit: number;
}

/** Requests matching a search, newest first. */
export async function searchRequests(sql: Sql, q: RequestSearch): Promise<RequestRow[]> {
  return await sql<RequestRow[]>`
    select * from bisman_ops.requests
     where created_at >= ${q.since}
       and (${q.states ?? null}::text[] is null or state = any(${q.states ?? null}::text[]))
       and (${q.requester ?? null}::text is null or requester_id = ${q.requester ?? null})
     order by id desc
     limit ${q.limit}`;
}

/** How many approvals each of `ids` has. */
export async function countApprovals(sql: Sql, ids: number[]): Promise<Map<number, number>> {
  if (!ids.length) return new Map();
  const rows = await sql<{ id: number; n: number }[]>`
    select request_id::int as id, count(*)::int as n from bisman_ops.approvals
     where request_id = any(${ids}::int[]) group by request_id`;
  return new Map(rows.map((r) => [r.id, r.n]));
}

/**
 * Claims the one reminder of every pending request that has passed two thirds of its time to expiry: the
 * conditional UPDATE sets `reminded_at` once, so however many replicas sweep at once, each request's
 * reminder is claimed (and posted) by exactly one of them.
 * @returns the requests this call claimed
 */
export async function claimReminders(sql: Sql, now: Date): Promise<RequestRow[]> {
  return await sql<RequestRow[]>`
    update bisman_ops.requests
       set reminded_at = ${now}
     where state = 'pending' and reminded_at is null and expires_at > ${now}
       and created_at + (expires_at - created_at) * 2 / 3 <= ${now}
    returning *`;
}

/**
 * Records a request to stop a running request (once: a second click finds it already asked).
 * @returns the row, or undefined when it is not running or a stop was already asked for
 */
export async function requestStop(
  sql: Sql,
  id: number,
  by: { id: string; name?: string; now: Date },
): Promise<RequestRow | undefined> {
  const [row] = await sql<RequestRow[]>`
    update bisman_ops.requests
       set cancel_requested_at = ${by.now}, cancel_requested_by = ${by.id},
           cancel_requested_by_name = ${by.name ?? null}
     where id = ${id} and state = 'running' and cancel_requested_at is null
    returning *`;
  return row;
}

/** Requests run by `instance` that someone asked to stop (the heartbeat polls this). */
export async function stopsRequested(sql: Sql, instance: string): Promise<number[]> {
  const rows = await sql<{ id: number }[]>`
    select id from bisman_ops.requests
     where run_by = ${instance} and state = 'running' and cancel_requested_at is not null`;
  return rows.map((r) => r.id);
}

/** Stores the latest progress line of a running request. */
export async function setProgress(sql: Sql, id: number, text: string): Promise<void> {
  await sql`update bisman_ops.requests set progress = ${
    text.slice(0, 300)
  } where id = ${id} and state = 'running'`;
}

/**
 * Keeps or drops the offered "take a backup first" step of a pending request. `reseal` is given the row as
 * it stands (to check its seal first) and returns the seal of the row with the new value.
 * @returns the row, or undefined when it is no longer pending or the step was never offered
 */
export async function setPreBackup(
  sql: Sql,
  id: number,
  keep: boolean,
  reseal: (current: RequestRow) => unknown,
): Promise<RequestRow | undefined> {
  const [current] = await sql<RequestRow[]>`
    select * from bisman_ops.requests where id = ${id} and state = 'pending' and pre_backup is not null`;
  if (!current) return undefined;
  const [row] = await sql<RequestRow[]>`
    update bisman_ops.requests set pre_backup = ${keep}, seal = ${sql.json(reseal(current) as Json)}
     where id = ${id} and state = 'pending' and pre_backup is not null
       and seal = ${sql.json(current.seal as Json)}
    returning *`;
  return row;
}
