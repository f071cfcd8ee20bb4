/**
 * Locks a role during an incident: `ALTER ROLE ... NOLOGIN` (no new sessions), then terminates its sessions on
 * every server of the target, and records `role_locked` in security_events. `unlock_role` undoes it.
 *
 * Safety: destructive, reached only through the approval gate. Refuses the bot's own login and the
 * bootstrap superuser (both would lock people out of the server), and a superuser unless the bot is one
 * (PostgreSQL requires it). The ALTER commits before any session is cut, so a cut session cannot log back in.
 *
 * @module
 */

import { z } from "zod";
import { InvalidInput } from "../core/errors.ts";
import type { OpDeps, Operation, PlanBase, Reconciled } from "./types.ts";
import {
  asTargetError,
  describeSession,
  displayIdent,
  inTargetTransaction,
  primaryPool,
  recordSecurityEvent,
  roleName,
  type SessionInfo,
  sessionsOnTarget,
  targetName,
  targetSecurity,
  terminateOnTarget,
  type TerminateOutcome,
} from "./_security.ts";
import { own } from "../core/lookup.ts";

/** Arguments: target, role, and whether to terminate its sessions. */
export const lockRoleArgs = z.strictObject({
  target: targetName,
  role: roleName,
  /** Also terminate the role's open sessions (default true). */
  terminate: z.boolean().default(true),
});
/** Validated arguments. */
export type LockRoleArgs = z.infer<typeof lockRoleArgs>;
/** What callers may pass (defaults filled in by the schema). */
export type LockRoleInput = z.input<typeof lockRoleArgs>;

/** The plan: the role, its sessions when planned, and the state it was made from. */
export interface LockRolePlan extends PlanBase {
  target: string;
  role: string;
  terminate: boolean;
  sessions: SessionInfo[];
  fingerprint: { oid: number; canLogin: boolean };
}

/** What the lock did. */
export interface LockRoleResult {
  target: string;
  role: string;
  /** False when the role was already NOLOGIN (only sessions were cut). */
  altered: boolean;
  terminated: TerminateOutcome;
  /** Sessions of the role still open after termination. */
  remaining: SessionInfo[];
}

interface RoleRow {
  oid: number;
  rolcanlogin: boolean;
  rolsuper: boolean;
}

/** pg_roles row of `role` (undefined when it does not exist). */
export async function readRole(deps: OpDeps, target: string, role: string): Promise<RoleRow | undefined> {
  const sql = await primaryPool(deps, target);
  const [r] = await sql<RoleRow[]>`
    select oid::int as oid, rolcanlogin, rolsuper from pg_catalog.pg_roles where rolname = ${role}`;
  return r;
}

async function planLock(input: LockRoleInput, deps: OpDeps): Promise<LockRolePlan> {
  const args = lockRoleArgs.parse(input);
  const sec = targetSecurity(deps, args.target);
  if (args.role === sec.botRole) {
    throw new InvalidInput(`Cannot lock ${args.role}: it is the bot's own login on ${args.target}`);
  }
  const r = await readRole(deps, args.target, args.role);
  if (!r) throw new InvalidInput(`Cannot lock ${args.role}: no such role on ${args.target}`);
  if (r.oid === 10) {
    throw new InvalidInput(`Cannot lock ${args.role}: it is the bootstrap superuser of ${args.target}`);
  }
  const bot = await readRole(deps, args.target, sec.botRole);
  if (r.rolsuper && !bot?.rolsuper) {
    throw new InvalidInput(
      `Cannot lock ${args.role}: it is a superuser, and only a superuser may alter one. Ask a DBA to run ` +
        `ALTER ROLE ${displayIdent(args.role)} NOLOGIN`,
    );
  }
  const sessions = args.terminate ? await sessionsOnTarget(deps, args.target, { role: args.role }) : [];
  if (!r.rolcanlogin && !sessions.length) {
    throw new InvalidInput(
      `${args.role} is already locked (NOLOGIN) on ${args.target} and has no open sessions`,
    );
  }
  const warnings: string[] = [];
  const p = own(sec.roles, args.role);
  if (p && ["app", "service", "admin"].includes(p.kind)) {
    warnings.push(
      `${args.role} is a ${p.kind} role in the policy: whatever logs in as it stops working until unlocked`,
    );
  }
  if (!r.rolcanlogin) warnings.push(`${args.role} is already NOLOGIN: only its sessions are terminated`);
  return {
    summary: `Lock role ${args.role} on ${args.target}${
      sessions.length ? ` and cut its ${sessions.length} session(s)` : ""
    }`,
    target: args.target,
    role: args.role,
    terminate: args.terminate,
    sessions,
    steps: [
      ...(r.rolcanlogin
        ? [`ALTER ROLE ${displayIdent(args.role)} NOLOGIN; (with role_locked in security_events)`]
        : []),
      ...(args.terminate
        ? [
          `Terminate every session of ${args.role} on every server of ${args.target} (now ${sessions.length}${
            sessions.length ? `: ${sessions.slice(0, 5).map(describeSession).join("; ")}` : ""
          })`,
        ]
        : []),
      "Check that no session of the role is left",
    ],
    fingerprint: { oid: r.oid, canLogin: r.rolcanlogin },
    warnings,
  };
}

/** The operation. */
export const lockRole: Operation<LockRoleInput, LockRolePlan, LockRoleResult> = {
  name: "lock_role",
  destructive: true,
  args: lockRoleArgs,
  plan: planLock,
  async revalidate(plan, deps) {
    const r = await readRole(deps, plan.target, plan.role);
    if (!r || r.oid !== plan.fingerprint.oid) {
      return `Role ${plan.role} was dropped or re-created since the plan`;
    }
    if (r.rolcanlogin !== plan.fingerprint.canLogin) {
      return `Role ${plan.role} is now ${
        r.rolcanlogin ? "LOGIN" : "NOLOGIN"
      }: the plan was made when it was not`;
    }
    return undefined;
  },
  async run(plan, deps) {
    const m = deps.targets.member(plan.target, "primary");
    let altered = false;
    try {
      if (plan.fingerprint.canLogin) {
        await inTargetTransaction(deps, plan.target, async (tx) => {
          await tx`alter role ${tx(plan.role)} nologin`;
        }, () => ({
          eventType: "role_locked",
          severity: "critical",
          targetRole: plan.role,
          details: { sessions_at_plan: plan.sessions.length },
        }));
        altered = true;
      }
    } catch (err) {
      throw asTargetError(m, err, `lock ${plan.role}`);
    }
    let terminated: TerminateOutcome = { terminated: [], failed: [] };
    let remaining: SessionInfo[] = [];
    if (plan.terminate) {
      terminated = await terminateOnTarget(
        deps,
        plan.target,
        await sessionsOnTarget(deps, plan.target, { role: plan.role }),
      );
      remaining = await sessionsOnTarget(deps, plan.target, { role: plan.role });
      const sql = await primaryPool(deps, plan.target);
      await recordSecurityEvent(sql, deps, {
        eventType: "sessions_terminated",
        severity: "warning",
        targetRole: plan.role,
        details: {
          terminated: terminated.terminated,
          failed: terminated.failed,
          remaining: remaining.length,
        },
      });
    }
    return { target: plan.target, role: plan.role, altered, terminated, remaining };
  },
  async reconcile(plan, deps): Promise<Reconciled<LockRoleResult>> {
    const r = await readRole(deps, plan.target, plan.role);
    if (!r) return { status: "needs_human", note: `Role ${plan.role} no longer exists` };
    const remaining = await sessionsOnTarget(deps, plan.target, { role: plan.role });
    if (!r.rolcanlogin) {
      return {
        status: "done",
        result: {
          target: plan.target,
          role: plan.role,
          altered: true,
          terminated: { terminated: [], failed: [] },
          remaining,
        },
        note: remaining.length
          ? `${plan.role} is NOLOGIN but ${remaining.length} session(s) are still open: run /bisman terminate or lock-role again`
          : `${plan.role} is NOLOGIN and has no sessions`,
      };
    }
    return { status: "not_done", note: `${plan.role} can still log in: the ALTER ROLE did not commit` };
  },
  describeResult: (r) =>
    `${r.role} ${
      r.altered ? "locked (NOLOGIN)" : "was already NOLOGIN"
    }; ${r.terminated.terminated.length} session(s) terminated` +
    `${r.terminated.failed.length ? `, ${r.terminated.failed.length} could not be` : ""}${
      r.remaining.length ? `; ${r.remaining.length} still open` : ""
    }`,
};
