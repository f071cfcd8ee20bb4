/**
 * `/bisman roles apply`: removes least-privilege drift. The plan is the exact list of GRANT, REVOKE, ALTER
 * ROLE and ALTER DEFAULT PRIVILEGES statements `role_drift` derives from the policy; after approval they run
 * in one transaction on the primary (all or nothing), with a `grants_applied` row in security_events in that
 * same transaction, and the drift is read again to show what is left.
 *
 * Safety: destructive (reached only through the approval gate). The statements are built from catalog and
 * config names, every identifier quoted. What runs is never the stored plan's text: inside the run's own
 * transaction the statements are derived again from the live catalog and the config's policy, and they run
 * only when they equal, one for one, the statements the approver saw; otherwise the run is refused and
 * nothing changes. So an edit of the stored plan cannot turn an approved GRANT into other SQL. Roles are
 * never dropped, and a role the policy expects to log in that was locked stays locked (see role_drift).
 *
 * @module
 */

import { z } from "zod";
import { InvalidInput, OpsError } from "../core/errors.ts";
import type { Sql } from "postgres";
import type { OpDeps, Operation, PlanBase, Reconciled } from "./types.ts";
import { compareRoles, readRoleDrift, readRoleSnapshot, type RoleDriftResult } from "./role_drift.ts";
import { contentHash } from "./_hba.ts";
import { asTargetError, displayIdent, inTargetTransaction, targetName, targetSecurity } from "./_security.ts";

/** Arguments: the target. */
export const rolesApplyArgs = z.strictObject({ target: targetName });
/** Validated arguments. */
export type RolesApplyArgs = z.infer<typeof rolesApplyArgs>;

/** The plan: the statements, in order. */
export interface RolesApplyPlan extends PlanBase {
  target: string;
  statements: string[];
  fingerprint: { statementsSha256: string; count: number };
}

/** What the run did and what is left. */
export interface RolesApplyResult {
  target: string;
  applied: string[];
  /** Drift read again after the commit; empty `drift` means the database now matches the policy. */
  after: RoleDriftResult;
}

async function planRolesApply(args: RolesApplyArgs, deps: OpDeps): Promise<RolesApplyPlan> {
  const drift = await readRoleDrift(args, deps);
  if (!drift.statements.length) {
    throw new InvalidInput(
      `No drift on ${args.target}: roles and privileges match the policy, so there is nothing to apply`,
    );
  }
  const sec = targetSecurity(deps, args.target);
  const warnings = drift.notes.map((n) => n.detail);
  if (drift.statements.some((s) => /SUPERUSER|BYPASSRLS/.test(s))) {
    warnings.push(
      "Changing SUPERUSER or BYPASSRLS needs a superuser: with the bot's least-privilege role the whole transaction fails and nothing changes",
    );
  }
  if (sec.grant_role) warnings.push(`Runs after SET LOCAL ROLE ${sec.grant_role} (security.grant_role)`);
  return {
    summary:
      `Apply ${drift.statements.length} statement(s) on ${args.target} so roles and privileges match the policy`,
    target: args.target,
    steps: [
      "BEGIN",
      ...(sec.grant_role ? [`SET LOCAL ROLE ${displayIdent(sec.grant_role)};`] : []),
      ...drift.statements,
      "Record grants_applied in security_events",
      "COMMIT, then compare again",
    ],
    statements: drift.statements,
    fingerprint: {
      statementsSha256: await contentHash(drift.statements.join("\n")),
      count: drift.statements.length,
    },
    warnings,
  };
}

/** Thrown inside the run's transaction when the live statements are not the approved ones. */
class StaleStatements extends Error {
  constructor(readonly plan: RolesApplyPlan, readonly live: string[]) {
    super("statements differ from the plan");
  }
  asOpsError(): OpsError {
    const n = Math.max(this.live.length, this.plan.statements.length);
    const first = Array.from({ length: n }, (_, i) => i).find((i) =>
      this.live[i] !== this.plan.statements[i]
    )!;
    return new OpsError(
      "state_changed",
      `Not run: the statements roles apply would run on ${this.plan.target} now (${this.live.length}) are not ` +
        `the ${this.plan.statements.length} that were approved (first difference at statement ${
          first + 1
        }); ` +
        `nothing was changed. Run \`/bisman roles apply ${this.plan.target}\` again`,
    );
  }
}

/** The operation. */
export const rolesApply: Operation<RolesApplyArgs, RolesApplyPlan, RolesApplyResult> = {
  name: "roles_apply",
  destructive: true,
  args: rolesApplyArgs,
  plan: planRolesApply,
  async revalidate(plan, deps) {
    const now = await readRoleDrift({ target: plan.target }, deps);
    const sha = await contentHash(now.statements.join("\n"));
    if (sha === plan.fingerprint.statementsSha256) return undefined;
    return `Roles or privileges on ${plan.target} changed since the plan: it would now take ${now.statements.length} ` +
      `statement(s), not ${plan.fingerprint.count}. Run \`/bisman roles apply ${plan.target}\` again`;
  },
  async run(plan, deps) {
    const sec = targetSecurity(deps, plan.target);
    const m = deps.targets.member(plan.target, "primary");
    let applied: string[] = [];
    try {
      applied = await inTargetTransaction(deps, plan.target, async (tx) => {
        // Derived again from the live catalog in this transaction: the text that runs comes from this code
        // and the config, never from the stored plan, and must equal what the approver saw.
        const live = compareRoles(sec, await readRoleSnapshot(tx as unknown as Sql, sec.schema)).statements;
        const differs = live.length !== plan.statements.length ||
          live.some((l, i) => l !== plan.statements[i]);
        if (differs) throw new StaleStatements(plan, live);
        if (sec.grant_role) await tx`select set_config('role', ${sec.grant_role}, true)`;
        for (const s of live) await tx.unsafe(s);
        if (sec.grant_role) await tx`reset role`;
        return live;
      }, (live) => ({
        eventType: "grants_applied",
        severity: "warning",
        details: { statements: live, policy: "targets." + plan.target + ".security.roles" },
      }));
    } catch (err) {
      if (err instanceof StaleStatements) throw err.asOpsError();
      throw asTargetError(m, err, "apply the GRANT/REVOKE statements (nothing was changed)");
    }
    const sql = await deps.targets.pool(plan.target, "primary");
    const after = compareRoles(sec, await readRoleSnapshot(sql, sec.schema));
    return { target: plan.target, applied, after };
  },
  async reconcile(plan, deps): Promise<Reconciled<RolesApplyResult>> {
    const after = await readRoleDrift({ target: plan.target }, deps);
    const sha = await contentHash(after.statements.join("\n"));
    if (!after.statements.length) {
      return {
        status: "done",
        result: { target: plan.target, applied: plan.statements, after },
        note: "The database matches the policy: the transaction committed",
      };
    }
    if (sha === plan.fingerprint.statementsSha256) {
      return { status: "not_done", note: "The same drift is still there: the transaction did not commit" };
    }
    return {
      status: "needs_human",
      note: `Drift changed but is not gone (${after.statements.length} statement(s) left): run /bisman roles`,
    };
  },
  describeResult: (r) =>
    `${r.applied.length} statement(s) applied; ${
      r.after.drift.length ? `${r.after.drift.length} drift item(s) remain` : "no drift remains"
    }`,
};
