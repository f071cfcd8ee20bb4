/**
 * Terminates the sessions of a target's primary that sit idle in a transaction for longer than N minutes: the
 * seed's answer to a connection leak ("High connection count -> Check for connection leaks"). Destructive.
 *
 * The plan lists the exact sessions (pid, backend start, user, application, client, idle time). A pid alone is
 * not an identity (PostgreSQL reuses them), so the fingerprint is pid + backend_start, and run() terminates
 * only sessions that still have both and are still idle in a transaction for longer than the limit; any other
 * session, including one that started after the plan or began a new transaction since, is left alone. Matching and terminating happen in one statement, so a session
 * that commits between a check and the kill is not cut.
 *
 * @module
 */

import { z } from "zod";
import type { OpDeps, Operation, PlanBase, Reconciled } from "./types.ts";
import { type IdleSession, readIdleInTransaction } from "./connections.ts";
import { redactionOf } from "../core/redact.ts";
import { targetFailure } from "./_pg_errors.ts";
import { formatSeconds } from "./replication_lag.ts";

const identifier = z.string().regex(/^[a-z_][a-z0-9_]{0,62}$/, "a target name");

export const terminateIdleArgs = z.strictObject({
  target: identifier,
  // Fractions are allowed (0.5 = 30 s); 0 would mean every idle-in-transaction session, however young.
  older_than_minutes: z.number().positive().max(24 * 60),
});
export type TerminateIdleArgs = z.infer<typeof terminateIdleArgs>;

/** The most sessions one request may terminate; more means something else is wrong, and a person should look. */
export const MAX_SESSIONS = 200;

/** The exact sessions to terminate. */
export interface TerminateIdlePlan extends PlanBase {
  target: string;
  olderThanMinutes: number;
  sessions: IdleSession[];
  fingerprint: { sessions: { pid: number; backendStart: string }[] };
}

/** What run() did with each planned session. */
export interface TerminateIdleResult {
  target: string;
  terminated: { pid: number; backendStart: string }[];
  /** Planned sessions left alone: gone, or no longer idle in a transaction. */
  skipped: { pid: number; backendStart: string; why: string }[];
}

function describeSession(s: IdleSession): string {
  return `pid ${s.pid} (started ${s.backendStart}): ${s.user ?? "?"}@${s.database ?? "?"}, application "${
    s.application || "(none)"
  }", client ${s.clientAddr ?? "local socket"}, ${s.state} for ${formatSeconds(s.idleSeconds)}`;
}

/** Which of `planned` still exist with the same backend start and are still idle in a transaction. */
async function stillMatching(
  plan: TerminateIdlePlan,
  deps: OpDeps,
): Promise<{ pid: number; backendStart: string }[]> {
  const sql = await deps.targets.pool(plan.target, "primary");
  const pids = plan.fingerprint.sessions.map((s) => s.pid);
  const starts = plan.fingerprint.sessions.map((s) => s.backendStart);
  if (!pids.length) return [];
  // Sent as text and cast by PostgreSQL: postgres.js would turn a timestamptz parameter into a JS Date and
  // lose the microseconds that make pid + backend_start an identity.
  const rows = await sql<{ pid: number; backend_start: string }[]>`
    select a.pid, to_char(a.backend_start at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') as backend_start
      from pg_stat_activity a
      join unnest(${pids}::int[], ${starts}::text[]::timestamptz[]) as p(pid, backend_start)
        on a.pid = p.pid and a.backend_start = p.backend_start
     where a.state in ('idle in transaction', 'idle in transaction (aborted)')
       and now() - a.state_change >= make_interval(secs => ${plan.olderThanMinutes * 60})`;
  return rows.map((r) => ({ pid: r.pid, backendStart: r.backend_start }));
}

/**
 * `terminate_idle`: destructive.
 * @throws {OpsError} `unreachable` when the primary does not answer
 */
export const terminateIdle: Operation<TerminateIdleArgs, TerminateIdlePlan, TerminateIdleResult> = {
  name: "terminate_idle",
  destructive: true,
  args: terminateIdleArgs,

  async plan(args, deps) {
    const m = deps.targets.member(args.target, "primary");
    let sessions: IdleSession[];
    try {
      const sql = await deps.targets.pool(args.target, "primary");
      // The plan is stored, audited and posted for approval: its sessions' statements are masked.
      sessions = await readIdleInTransaction(
        sql,
        args.older_than_minutes,
        redactionOf(deps.config),
        MAX_SESSIONS + 1,
      );
    } catch (err) {
      throw targetFailure(m, err, "list idle-in-transaction sessions");
    }
    const warnings: string[] = [];
    if (sessions.length > MAX_SESSIONS) {
      sessions = sessions.slice(0, MAX_SESSIONS);
      warnings.push(
        `More than ${MAX_SESSIONS} sessions match: only the ${MAX_SESSIONS} oldest are in this plan; look for the leaking application`,
      );
    }
    if (sessions.length) {
      warnings.push(
        "Each session's open transaction is rolled back and its client gets an error on its next statement.",
      );
    }
    return {
      summary: sessions.length
        ? `Terminate ${sessions.length} session(s) idle in a transaction for more than ${args.older_than_minutes} min on ${args.target}'s primary`
        : `No session of ${args.target}'s primary is idle in a transaction for more than ${args.older_than_minutes} min: nothing to terminate`,
      target: args.target,
      olderThanMinutes: args.older_than_minutes,
      sessions,
      steps: sessions.length
        ? [
          ...sessions.map((s) => `pg_terminate_backend(${s.pid}): ${describeSession(s)}`),
          "Only sessions with the same pid and backend start that are still idle in a transaction; any other is left alone",
        ]
        : ["Nothing"],
      fingerprint: { sessions: sessions.map((s) => ({ pid: s.pid, backendStart: s.backendStart })) },
      warnings,
    };
  },

  async revalidate(plan, deps) {
    if (!plan.sessions.length) return undefined;
    const m = deps.targets.member(plan.target, "primary");
    let left;
    try {
      left = await stillMatching(plan, deps);
    } catch (err) {
      return targetFailure(m, err, "list sessions").userMessage;
    }
    // Some sessions ending on their own is normal; run() skips them. Only when none is left is the plan void.
    if (!left.length) {
      return `none of the ${plan.sessions.length} planned session(s) is still idle in a transaction: nothing to terminate`;
    }
    return undefined;
  },

  async run(plan, deps) {
    const m = deps.targets.member(plan.target, "primary");
    const planned = plan.fingerprint.sessions;
    if (!planned.length) return { target: plan.target, terminated: [], skipped: [] };
    const pids = planned.map((s) => s.pid);
    const starts = planned.map((s) => s.backendStart);
    let rows: { pid: number; terminated: boolean }[];
    try {
      const sql = await deps.targets.pool(plan.target, "primary");
      // Match and terminate in one statement: the state is re-checked by the row that is terminated.
      rows = await sql<{ pid: number; terminated: boolean }[]>`
        select a.pid, pg_terminate_backend(a.pid) as terminated
          from pg_stat_activity a
          join unnest(${pids}::int[], ${starts}::text[]::timestamptz[]) as p(pid, backend_start)
            on a.pid = p.pid and a.backend_start = p.backend_start
         where a.state in ('idle in transaction', 'idle in transaction (aborted)')
           and now() - a.state_change >= make_interval(secs => ${plan.olderThanMinutes * 60})
           and a.pid <> pg_backend_pid()`;
    } catch (err) {
      throw targetFailure(m, err, "terminate sessions");
    }
    const done = new Set(rows.filter((r) => r.terminated).map((r) => r.pid));
    const terminated = planned.filter((s) => done.has(s.pid));
    const skipped = planned.filter((s) => !done.has(s.pid)).map((s) => ({
      ...s,
      why: "gone, or no longer idle in a transaction for longer than the limit",
    }));
    deps.log.info("idle-in-transaction sessions terminated", {
      target: plan.target,
      terminated: terminated.length,
      skipped: skipped.length,
    });
    return { target: plan.target, terminated, skipped };
  },

  async reconcile(plan, deps): Promise<Reconciled<TerminateIdleResult>> {
    const m = deps.targets.member(plan.target, "primary");
    let left;
    try {
      left = await stillMatching(plan, deps);
    } catch (err) {
      return { status: "needs_human", note: targetFailure(m, err, "list sessions").userMessage };
    }
    if (left.length) {
      return {
        status: "not_done",
        note: `${left.length} planned session(s) are still idle in a transaction: ${
          left.map((s) => s.pid).join(", ")
        }`,
      };
    }
    return {
      status: "done",
      result: { target: plan.target, terminated: [], skipped: [] },
      note: "none of the planned sessions is left idle in a transaction",
    };
  },

  describeResult: (r) =>
    `${r.target}: terminated ${r.terminated.length} session(s)` +
    (r.terminated.length ? ` (pids ${r.terminated.map((s) => s.pid).join(", ")})` : "") +
    (r.skipped.length ? `, left ${r.skipped.length} that no longer matched` : ""),
};
