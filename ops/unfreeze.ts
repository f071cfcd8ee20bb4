/**
 * Lifts the freeze on destructive actions. Destructive itself (it re-opens every destructive action), so
 * it goes through the approval gate, which lets it through during a freeze whatever the config says.
 *
 * The plan is bound to the freeze it lifts: if someone lifted it and another freeze was set since, the
 * approval no longer applies and nothing runs.
 *
 * @module
 */

import { z } from "zod";
import type { Operation, PlanBase, Reconciled } from "./types.ts";
import { clearFreeze, describeFreeze, readFreeze } from "../core/freeze.ts";
import { InvalidInput, StepFailed } from "../core/errors.ts";

export const unfreezeArgs = z.strictObject({});
export type UnfreezeArgs = z.infer<typeof unfreezeArgs>;

/** The stored plan: which freeze is lifted. */
export interface UnfreezePlan extends PlanBase {
  fingerprint: { frozenAt: string | null; frozenBy: string | null };
}

/** What run() did. */
export interface UnfreezeResult {
  lifted: boolean;
  frozenAt: string | null;
}

/**
 * `unfreeze`: destructive.
 * @throws {InvalidInput} when nothing is frozen
 */
export const unfreeze: Operation<UnfreezeArgs, UnfreezePlan, UnfreezeResult> = {
  name: "unfreeze",
  destructive: true,
  args: unfreezeArgs,

  async plan(_args, deps) {
    const f = await readFreeze(deps.state);
    if (!f.frozen) throw new InvalidInput("Nothing to unfreeze: destructive actions are not frozen");
    return {
      summary: `Lift the freeze: ${describeFreeze(f)}`,
      steps: [
        "Clear the freeze in the bot's state database (only this freeze: a newer one stays)",
        "Destructive requests are accepted and pending ones can be approved again",
      ],
      fingerprint: { frozenAt: f.at?.toISOString() ?? null, frozenBy: f.by ?? null },
      warnings: ["Make sure the incident that caused the freeze is over"],
    };
  },

  async revalidate(plan, deps) {
    const f = await readFreeze(deps.state);
    if (!f.frozen) return "the freeze was already lifted";
    if ((f.at?.toISOString() ?? null) !== plan.fingerprint.frozenAt) {
      return `a different freeze is in force now (${describeFreeze(f)})`;
    }
    return undefined;
  },

  async run(plan, deps) {
    const at = plan.fingerprint.frozenAt ? new Date(plan.fingerprint.frozenAt) : undefined;
    const lifted = await clearFreeze(deps.state, at);
    if (!lifted) throw new StepFailed("unfreeze", "The freeze changed while lifting it: request again");
    await deps.audit.append({
      actor: deps.actor ?? "bisman-ops",
      action: "freeze.lifted",
      outcome: "ok",
      details: { frozen_at: plan.fingerprint.frozenAt, frozen_by: plan.fingerprint.frozenBy },
    });
    return { lifted, frozenAt: plan.fingerprint.frozenAt };
  },

  async reconcile(plan, deps): Promise<Reconciled<UnfreezeResult>> {
    const f = await readFreeze(deps.state);
    if (f.frozen && (f.at?.toISOString() ?? null) === plan.fingerprint.frozenAt) {
      return { status: "not_done", note: "the freeze is still in force" };
    }
    return {
      status: "done",
      note: "the freeze this request was about is no longer in force",
      result: { lifted: true, frozenAt: plan.fingerprint.frozenAt },
    };
  },

  describeResult(r) {
    return r.lifted ? "freeze lifted: destructive actions are allowed again" : "nothing was frozen";
  },
};
