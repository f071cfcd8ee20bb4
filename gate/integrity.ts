/**
 * What the gate does when a request is not what the bot wrote: checks at every decision (the approval
 * click, the claim, the start of the run) that the row still matches its seal, that the stored plan still
 * hashes to the hash the approvers' clicks carried, that every counted approval carries the bot's seal, and
 * that the audit log (keyed, append-only) shows no earlier run of the request. A failure refuses the
 * request (`plan_tampered`), names what does not match, and is recorded where the state database's writer
 * cannot reach: the keyed audit chain, the target's `security_events`, and the ops channel.
 *
 * @module
 */

import { recordSecurityEvent } from "../core/target_audit.ts";
import type { IntegrityKeys } from "../core/keys.ts";
import type { AppDeps } from "../core/deps.ts";
import type { ApprovalRow, RequestRow } from "./store.ts";
import { checkApprovalSeal, checkRequestSeal, type RequestSeal } from "./seal.ts";
import { planHashOf } from "./hooks.ts";

/** The integrity key of a gate's process. @throws {Error} when the bot was started without one */
export function gateKeys(deps: Pick<AppDeps, "keys">): IntegrityKeys {
  if (!deps.keys) {
    throw new Error(
      "The approval gate needs BISMAN_SIGNING_KEY (a key kept outside the state database): none is set",
    );
  }
  return deps.keys;
}

/**
 * Checks a request row: its seal, and that its stored plan still hashes to its plan hash.
 * @returns undefined when it is the bot's, else what does not match, in words
 */
export async function requestProblem(keys: IntegrityKeys, row: RequestRow): Promise<string | undefined> {
  const seal = checkRequestSeal(keys, row);
  if (!seal.ok) return seal.problem;
  const hash = await planHashOf(row.plan);
  if (hash !== row.plan_hash) {
    return `its plan hashes to ${hash}, not to the ${row.plan_hash} it was approved as`;
  }
  return undefined;
}

/** The request's seal (call after {@link requestProblem} found none). */
export function sealOf(row: RequestRow): RequestSeal {
  return row.seal as RequestSeal;
}

/**
 * Whether an approval counts: sealed by the bot, for this plan, by someone other than the requester (call
 * after {@link requestProblem} found none).
 */
export function countsAsApproval(keys: IntegrityKeys, row: RequestRow, a: ApprovalRow): boolean {
  return a.approver !== row.requester_id && a.plan_hash === row.plan_hash &&
    checkApprovalSeal(keys, a, { id: row.id, seal: sealOf(row) });
}

/**
 * Checks that a request was approved as the bot recorded it: its own seal and plan hash, and at least its
 * approvals needed in approvals the bot sealed for this plan. Whatever acts on a request outside the
 * approval click (the reconcile of a request found `running`) asks this first, since `state` and `run_by`
 * are plain columns that whoever writes the state database can set.
 * @returns undefined when it was, else what does not match, in words
 */
export async function approvedProblem(
  keys: IntegrityKeys,
  row: RequestRow,
  approvals: ApprovalRow[],
): Promise<string | undefined> {
  const own = await requestProblem(keys, row);
  if (own) return own;
  const counted = approvals.filter((a) => countsAsApproval(keys, row, a));
  if (counted.length < row.approvals_needed) {
    return `it holds ${counted.length} approval(s) sealed by the bot for its plan, not the ${row.approvals_needed} needed, ` +
      "yet its state says it was claimed to run";
  }
  return undefined;
}

/** Audit actions after which a request never runs, in the words a refusal uses. */
const ENDED: Record<string, string> = {
  "op.started": "already started",
  "request.cancelled": "was cancelled",
  "request.denied": "was denied",
  "request.expired": "expired",
};

/**
 * Whether the audit log already shows request `id` started, cancelled, denied or expired: a row reset to
 * `pending` in the state database must not run a second time, nor run after its requester withdrew it or
 * an approver turned it down.
 * @returns the audit row's position and, in words, where that shows, or undefined
 */
export async function earlierEnd(
  deps: Pick<AppDeps, "audit" | "witness" | "log">,
  id: number,
): Promise<{ seq: number; why: string } | undefined> {
  const rows = await deps.audit.rows({ requestId: id });
  const r = rows.find((r) => Object.hasOwn(ENDED, r.action));
  if (r) return { seq: r.seq, why: `the audit log shows it ${ENDED[r.action]} (row ${r.seq})` };
  // Deleting the newest audit rows leaves a valid chain: the witness keeps every run outside the database.
  // An unreachable witness proves nothing either way and blocks nothing (logged).
  if (!deps.witness) return undefined;
  try {
    const run = await deps.witness.runOf(id);
    if (run) {
      return {
        seq: run.seq,
        why:
          `the witness (${deps.witness.where}) holds its run, started at audit row ${run.seq} on ${run.at}, ` +
          "which the audit log no longer shows",
      };
    }
  } catch (err) {
    deps.log.warn("could not read the witness's run record", { request: id, error: err });
  }
  return undefined;
}

/**
 * Records in the witness that request `id` started at audit row `started` (best effort: a witness that is
 * down must not stop an approved run; logged). Never throws.
 */
export async function witnessRun(
  deps: Pick<AppDeps, "witness" | "log" | "now">,
  id: number,
  started: { seq: number; hash: string },
): Promise<void> {
  if (!deps.witness) return;
  try {
    await deps.witness.recordRun(id, { ...started, at: deps.now().toISOString() });
  } catch (err) {
    deps.log.warn("could not record the run in the witness", { request: id, error: err });
  }
}

/**
 * The target the request was made for, as the keyed audit log recorded it at `request.created` (the row's
 * own `target` column may be what was altered). Falls back to the row's target when it names a configured
 * target.
 */
async function recordedTarget(deps: AppDeps, row: RequestRow): Promise<string | undefined> {
  const created = (await deps.audit.rows({ requestId: row.id })).find((r) => r.action === "request.created");
  const target = created?.target ?? row.target ?? undefined;
  return target && Object.hasOwn(deps.config.targets, target) ? target : undefined;
}

/**
 * Records a tampered request: `plan_tampered` in the audit log, a critical `plan_tampered` security event on
 * the target it was made for (best effort: the target may be down), and the metric. Never throws.
 */
export async function recordTampering(
  deps: AppDeps,
  row: RequestRow,
  problem: string,
  by: { actor: string; actorName?: string; phase: "approve" | "deny" | "claim" | "run" | "reconcile" },
): Promise<void> {
  const details = { problem, phase: by.phase, action: row.action, state: row.state };
  try {
    await deps.audit.append({
      actor: by.actor,
      actorName: by.actorName,
      action: "plan_tampered",
      target: row.target ?? undefined,
      requestId: row.id,
      outcome: "refused",
      details,
    });
  } catch (err) {
    deps.log.error("audit append failed", { action: "plan_tampered", error: err });
  }
  deps.metrics.inc("bisman_plan_tampered_total", {}, 1, "Requests refused because they were altered");
  deps.log.error("request altered in the state database", { request: row.id, problem });
  try {
    const target = await recordedTarget(deps, row);
    if (!target) return;
    const sql = await deps.targets.pool(target, "primary");
    await recordSecurityEvent(sql, {
      eventType: "plan_tampered",
      severity: "critical",
      actor: by.actor,
      requestId: row.id,
      details,
    });
  } catch (err) {
    deps.log.warn("could not record plan_tampered on the target", { request: row.id, error: err });
  }
}

/** The words the channel and the clicker read. */
export function tamperedMessage(row: RequestRow, problem: string): string {
  return `Request #${row.id} (${row.action}) was altered in the state database after the bot made it: ` +
    `${problem}. It will not run; request it again, and find out who can write the state database`;
}
