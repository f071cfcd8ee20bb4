/**
 * Terminates every session coming from one client address or network, on every server of the target, and
 * records `sessions_terminated` in security_events. The alert thread's "unexpected DB user / suspicious
 * queries" button maps to this operation (args `{ address, target }`). Blocking the address for good is
 * `block_address`.
 *
 * Safety: destructive, through the approval gate. The bot's own connections are never terminated, and an
 * address range that contains the bot's own client address is refused.
 *
 * @module
 */

import { z } from "zod";
import { InvalidInput } from "../core/errors.ts";
import type { OpDeps, Operation, PlanBase, Reconciled } from "./types.ts";
import {
  clientAddress,
  describeSession,
  primaryPool,
  recordSecurityEvent,
  type SessionInfo,
  targetName,
  type TerminateOutcome,
} from "./_security.ts";
import { sessionsOnTarget, terminateOnTarget } from "./_security.ts";

/** Arguments: target and client address or network (the alert buttons' `{ address, target }`). */
export const terminateClientArgs = z.strictObject({ target: targetName, address: clientAddress });
/** Validated arguments. */
export type TerminateClientArgs = z.infer<typeof terminateClientArgs>;

/** The plan: the address and the sessions seen when planning. */
export interface TerminateClientPlan extends PlanBase {
  target: string;
  address: string;
  sessions: SessionInfo[];
  fingerprint: { address: string };
}

/** What the run terminated, and what is still open. */
export interface TerminateClientResult {
  target: string;
  address: string;
  terminated: TerminateOutcome;
  remaining: SessionInfo[];
}

/** @throws {InvalidInput} when `address` contains the address the bot itself connects from */
export async function refuseOwnAddress(
  deps: OpDeps,
  target: string,
  address: string,
  what: string,
): Promise<void> {
  const sql = await primaryPool(deps, target);
  const [{ own, covered }] = await sql<{ own: string | null; covered: boolean | null }[]>`
    select host(inet_client_addr()) as own, inet_client_addr() <<= ${address}::inet as covered`;
  if (covered) {
    throw new InvalidInput(
      `Cannot ${what} ${address}: the bot itself connects to ${target} from ${own}, which it contains`,
    );
  }
}

async function planTerminate(input: TerminateClientArgs, deps: OpDeps): Promise<TerminateClientPlan> {
  const args = terminateClientArgs.parse(input);
  await refuseOwnAddress(deps, args.target, args.address, "terminate the sessions of");
  const sessions = await sessionsOnTarget(deps, args.target, { address: args.address });
  if (!sessions.length) {
    throw new InvalidInput(`No session on ${args.target} comes from ${args.address}: nothing to terminate`);
  }
  const users = [...new Set(sessions.map((s) => s.user ?? "?"))];
  return {
    summary: `Terminate ${sessions.length} session(s) from ${args.address} on ${args.target} (${
      users.join(", ")
    })`,
    target: args.target,
    address: args.address,
    sessions,
    steps: [
      `pg_terminate_backend() for every session from ${args.address} (now: ${
        sessions.slice(0, 8).map(describeSession).join("; ")
      }${sessions.length > 8 ? `; and ${sessions.length - 8} more` : ""})`,
      "Record sessions_terminated in security_events",
    ],
    fingerprint: { address: args.address },
    warnings: [
      "The client can reconnect at once: `/bisman block` keeps it out, `/bisman lock-role` stops its role",
    ],
  };
}

/** The operation. */
export const terminateClient: Operation<TerminateClientArgs, TerminateClientPlan, TerminateClientResult> = {
  name: "terminate_client",
  destructive: true,
  args: terminateClientArgs,
  plan: planTerminate,
  // Sessions come and go; the plan is "every session from this address", which still holds.
  revalidate: () => Promise.resolve(undefined),
  async run(plan, deps) {
    const terminated = await terminateOnTarget(
      deps,
      plan.target,
      await sessionsOnTarget(deps, plan.target, { address: plan.address }),
    );
    const remaining = await sessionsOnTarget(deps, plan.target, { address: plan.address });
    await recordSecurityEvent(await primaryPool(deps, plan.target), deps, {
      eventType: "sessions_terminated",
      severity: "warning",
      targetAddress: plan.address,
      details: { terminated: terminated.terminated, failed: terminated.failed, remaining: remaining.length },
    });
    return { target: plan.target, address: plan.address, terminated, remaining };
  },
  async reconcile(plan, deps): Promise<Reconciled<TerminateClientResult>> {
    const remaining = await sessionsOnTarget(deps, plan.target, { address: plan.address });
    if (remaining.length) {
      return {
        status: "not_done",
        note: `${remaining.length} session(s) from ${plan.address} are still open`,
      };
    }
    return {
      status: "done",
      result: {
        target: plan.target,
        address: plan.address,
        terminated: { terminated: [], failed: [] },
        remaining,
      },
      note: `No session from ${plan.address} is open`,
    };
  },
  describeResult: (r) =>
    `${r.terminated.terminated.length} session(s) from ${r.address} terminated${
      r.terminated.failed.length ? `, ${r.terminated.failed.length} could not be` : ""
    }${r.remaining.length ? `; ${r.remaining.length} open again or still open` : ""}`,
};
