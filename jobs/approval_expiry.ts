/**
 * The approval gate's housekeeping on the schedule: expire pending requests past their deadline (editing
 * their messages), send the one reminder of pending requests past two thirds of their expiry, and recover
 * requests a dead replica left running. Scheduled once per slot across replicas
 * instead of a timer in every replica; the gate's own conditional updates make each expiry happen once.
 *
 * @module
 */

import type { AppDeps } from "../core/deps.ts";
import type { JobDefinition } from "./types.ts";

/** The part of the gate this job uses (gate/gate.ts `ApprovalGate`). */
interface GateHousekeeping {
  sweep(): Promise<number>;
  recoverInterrupted(): Promise<number>;
  /** The one reminder of pending requests past two thirds of their expiry (issue 11); older gates lack it. */
  remind?(): Promise<number>;
}

/** The gate's housekeeping methods, when this process has the gate. */
export function gateHousekeeping(deps: Pick<AppDeps, "gate">): GateHousekeeping | undefined {
  const g = deps.gate as Partial<GateHousekeeping> | undefined;
  return g && typeof g.sweep === "function" && typeof g.recoverInterrupted === "function"
    ? g as GateHousekeeping
    : undefined;
}

export const approvalExpiryJob: JobDefinition = {
  name: "approval_expiry",
  summary: "Expires approval requests past their deadline and recovers runs a dead replica left",
  defaultCron: "* * * * *",
  destructive: false,
  unavailable: (deps) => gateHousekeeping(deps) ? undefined : "this process has no approval gate",
  run: async (ctx) => {
    const gate = gateHousekeeping(ctx.deps)!;
    const expired = await gate.sweep();
    const reminded = (await gate.remind?.()) ?? 0;
    const recovered = await gate.recoverInterrupted();
    return {
      summary:
        `${expired} request(s) expired, ${reminded} reminded, ${recovered} interrupted run(s) recovered`,
      details: { expired, reminded, recovered },
    };
  },
};
