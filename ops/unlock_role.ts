/**
 * Undoes `lock_role`: `ALTER ROLE ... LOGIN` and `role_unlocked` in security_events. Sessions cut by the lock
 * are not restored; clients reconnect on their own.
 *
 * Safety: destructive, through the approval gate. Refuses a role the policy says must not log in (its
 * NOLOGIN is the policy, not a lock), and shows who locked it and when, from security_events.
 *
 * @module
 */

import { z } from "zod";
import { InvalidInput } from "../core/errors.ts";
import type { OpDeps, Operation, PlanBase, Reconciled } from "./types.ts";
import {
  asTargetError,
  displayIdent,
  inTargetTransaction,
  primaryPool,
  roleName,
  targetName,
  targetSecurity,
} from "./_security.ts";
import { readRole } from "./lock_role.ts";
import { own } from "../core/lookup.ts";

/** Arguments: target and role. */
export const unlockRoleArgs = z.strictObject({ target: targetName, role: roleName });
/** Validated arguments. */
export type UnlockRoleArgs = z.infer<typeof unlockRoleArgs>;

/** The plan, with who locked the role when security_events says so. */
export interface UnlockRolePlan extends PlanBase {
  target: string;
  role: string;
  fingerprint: { oid: number; canLogin: boolean };
  /** The last role_locked event of the role, when security_events has one. */
  lockedBy?: { at: string; actor: string | null };
}

/** What the unlock did. */
export interface UnlockRoleResult {
  target: string;
  role: string;
  canLogin: boolean;
}

async function lastLock(deps: OpDeps, target: string, role: string): Promise<UnlockRolePlan["lockedBy"]> {
  const sql = await primaryPool(deps, target);
  const [{ present }] = await sql<{ present: boolean }[]>`
    select to_regclass('public.security_events') is not null as present`;
  if (!present) return undefined;
  const [e] = await sql<{ occurred_at: Date; actor: string | null }[]>`
    select occurred_at, actor from public.security_events
     where event_type = 'role_locked' and target_role = ${role} order by occurred_at desc limit 1`;
  return e ? { at: new Date(e.occurred_at).toISOString(), actor: e.actor } : undefined;
}

async function planUnlock(input: UnlockRoleArgs, deps: OpDeps): Promise<UnlockRolePlan> {
  const args = unlockRoleArgs.parse(input);
  const sec = targetSecurity(deps, args.target);
  const r = await readRole(deps, args.target, args.role);
  if (!r) throw new InvalidInput(`Cannot unlock ${args.role}: no such role on ${args.target}`);
  if (r.rolcanlogin) throw new InvalidInput(`${args.role} is not locked on ${args.target}: it can log in`);
  const p = own(sec.roles, args.role);
  if (p && !p.login) {
    throw new InvalidInput(
      `${args.role} is NOLOGIN by policy (targets.${args.target}.security.roles.${args.role}.login: false), not locked`,
    );
  }
  const lockedBy = await lastLock(deps, args.target, args.role);
  const warnings: string[] = [];
  if (!p && !sec.other_roles.includes(args.role)) {
    warnings.push(
      `${args.role} is not in the role policy or security.other_roles: detect will report its logins`,
    );
  }
  if (!lockedBy) {
    warnings.push(`security_events has no role_locked event for ${args.role}: it was not locked by the bot`);
  }
  return {
    summary: `Unlock role ${args.role} on ${args.target} (ALTER ROLE \u2026 LOGIN)`,
    target: args.target,
    role: args.role,
    steps: [`ALTER ROLE ${displayIdent(args.role)} LOGIN; (with role_unlocked in security_events)`],
    fingerprint: { oid: r.oid, canLogin: r.rolcanlogin },
    warnings,
    lockedBy,
  };
}

/** The operation. */
export const unlockRole: Operation<UnlockRoleArgs, UnlockRolePlan, UnlockRoleResult> = {
  name: "unlock_role",
  destructive: true,
  args: unlockRoleArgs,
  plan: planUnlock,
  async revalidate(plan, deps) {
    const r = await readRole(deps, plan.target, plan.role);
    if (!r || r.oid !== plan.fingerprint.oid) {
      return `Role ${plan.role} was dropped or re-created since the plan`;
    }
    if (r.rolcanlogin) return `Role ${plan.role} can already log in`;
    return undefined;
  },
  async run(plan, deps) {
    const m = deps.targets.member(plan.target, "primary");
    try {
      await inTargetTransaction(deps, plan.target, async (tx) => {
        await tx`alter role ${tx(plan.role)} login`;
      }, () => ({
        eventType: "role_unlocked",
        severity: "warning",
        targetRole: plan.role,
        details: plan.lockedBy ? { locked_at: plan.lockedBy.at, locked_by: plan.lockedBy.actor } : {},
      }));
    } catch (err) {
      throw asTargetError(m, err, `unlock ${plan.role}`);
    }
    return { target: plan.target, role: plan.role, canLogin: true };
  },
  async reconcile(plan, deps): Promise<Reconciled<UnlockRoleResult>> {
    const r = await readRole(deps, plan.target, plan.role);
    if (!r) return { status: "needs_human", note: `Role ${plan.role} no longer exists` };
    return r.rolcanlogin
      ? {
        status: "done",
        result: { target: plan.target, role: plan.role, canLogin: true },
        note: "The role can log in",
      }
      : { status: "not_done", note: `${plan.role} is still NOLOGIN: the ALTER ROLE did not commit` };
  },
  describeResult: (r) => `${r.role} can log in again`,
};
