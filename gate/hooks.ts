/**
 * Hooks other features plug into the approval gate, and the small pure helpers the gate shares with its
 * renderers: preconditions (checked at request time and again just before running), plan notes (extra
 * lines on every plan), the effective policy of an action, the plan hash and the freeze wording.
 *
 * @module
 */

import { type Config, type EffectivePolicy, policyFor } from "../core/config.ts";
import { canonicalJson } from "../core/audit.ts";
import type { OpDeps } from "../ops/types.ts";
import type { RequestRow, StoredPlan } from "./store.ts";
import { describeFreeze, formatTime, who } from "../core/freeze.ts";

export { describeFreeze, formatTime, who };

/** What a precondition or a plan note is told about the request. */
export interface GateContext {
  /** The operation's name, e.g. `promote`. */
  action: string;
  /** Arguments after the operation's zod schema accepted them. */
  args: unknown;
  plan: StoredPlan;
  target?: string;
  /** `request` when the request is made, `run` just before the approved plan runs. */
  phase: "request" | "run";
  deps: OpDeps;
}

/**
 * A check that may refuse a destructive request: returns a refusal reason (shown to the asker, or on
 * the approval message when it refuses at run time), or undefined to let it through. A precondition that
 * throws refuses too (fail closed).
 */
export type Precondition = (ctx: GateContext) => Promise<string | undefined> | string | undefined;

/** Extra lines shown on every plan (e.g. "last proven restore: 3 days ago"); errors are logged, not shown. */
export type PlanNote = (
  ctx: Omit<GateContext, "phase">,
) => Promise<string | string[] | undefined> | string | string[] | undefined;

const preconditions: Precondition[] = [];
const planNotes: PlanNote[] = [];

/**
 * Registers a precondition for every destructive request (filter on `ctx.action` inside).
 * @returns a function that removes it again (tests)
 * @example
 * registerPrecondition(async ({ action, target, deps }) =>
 *   action === "promote" && !(await restoreTestedWithin(deps, target, 7))
 *     ? "no passing restore test within 7 days: run /bisman restore-test first"
 *     : undefined
 * );
 */
export function registerPrecondition(fn: Precondition): () => void {
  preconditions.push(fn);
  return () => void preconditions.splice(preconditions.indexOf(fn) >>> 0, 1);
}

/**
 * Registers a plan note shown on every plan.
 * @returns a function that removes it again (tests)
 */
export function registerPlanNote(fn: PlanNote): () => void {
  planNotes.push(fn);
  return () => void planNotes.splice(planNotes.indexOf(fn) >>> 0, 1);
}

/** Runs every precondition; the first refusal wins. A throwing check refuses, naming the failure. */
export async function checkPreconditions(ctx: GateContext): Promise<string | undefined> {
  for (const check of [...preconditions]) {
    try {
      const reason = await check(ctx);
      if (reason) return reason;
    } catch (err) {
      ctx.deps.log.warn("precondition check failed", { action: ctx.action, error: err });
      return `a precondition could not be checked (${err instanceof Error ? err.message : String(err)})`;
    }
  }
  return undefined;
}

/** Collects every plan note's lines; a failing note is logged and left out. */
export async function collectPlanNotes(ctx: Omit<GateContext, "phase">): Promise<string[]> {
  const out: string[] = [];
  for (const note of [...planNotes]) {
    try {
      const lines = await note(ctx);
      if (typeof lines === "string") out.push(lines);
      else if (Array.isArray(lines)) out.push(...lines.filter((l) => typeof l === "string" && l));
    } catch (err) {
      ctx.deps.log.warn("plan note failed", { action: ctx.action, error: err });
    }
  }
  return out.map((l) => l.slice(0, 500));
}

/** Actions that must work during a freeze whatever the config says: lifting it. */
const FREEZE_EXEMPT = new Set(["unfreeze"]);

/** The policy of `action` as the gate applies it (config, built-in defaults, and `unfreeze` always allowed). */
export function gatePolicy(config: Config, action: string): EffectivePolicy {
  const p = policyFor(config, action);
  return FREEZE_EXEMPT.has(action) ? { ...p, allowed_during_freeze: true } : p;
}

/**
 * The short plan hash shown on the message and carried by the Approve button: the first 12 hex digits of
 * sha256 over the canonical JSON of the plan.
 */
export async function planHashOf(plan: unknown): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(canonicalJson(plan)));
  return Array.from(new Uint8Array(digest).slice(0, 6), (b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * A JSON-safe deep copy (bigint as number or string, Date as ISO), so what is stored, hashed and shown
 * is exactly what will be read back.
 */
export function toJsonValue<T>(value: T): T {
  const text = JSON.stringify(value ?? null, (_k, v) => {
    if (typeof v === "bigint") return Number.isSafeInteger(Number(v)) ? Number(v) : v.toString();
    return v;
  });
  return JSON.parse(text) as T;
}

/** What an approver must type when the policy demands typed confirmation. */
export function confirmTextOf(r: Pick<RequestRow, "plan" | "target" | "action">): string {
  return r.plan.confirmText ?? r.target ?? r.action;
}

/** Why a request can no longer be approved, in words. */
export function closedMessage(r: RequestRow): string {
  const by = r.decided_by ? ` by ${who(r.decided_by, r.decided_by_name)}` : "";
  switch (r.state) {
    case "running":
      return `Request #${r.id} is already running (approved${by}): nothing left to approve`;
    case "approved":
      return `Request #${r.id} is already approved${by}: nothing left to approve`;
    case "succeeded":
    case "failed":
      return `Request #${r.id} already ran and ${r.state}: request it again if it is still needed`;
    case "denied":
      return `Request #${r.id} was denied${by}: ${r.deny_reason ?? ""}`.replace(/: $/, "");
    case "expired":
      return `Request #${r.id} expired at ${formatTime(r.expires_at)}: request it again for a fresh plan`;
    case "cancelled":
      return `Request #${r.id} was cancelled${by}`;
    case "stale":
      return `Request #${r.id} did not run because its state changed: request it again for a fresh plan`;
    case "interrupted":
      return `Request #${r.id} was interrupted when the bot stopped: see its thread for what reconcile found`;
    default:
      return `Request #${r.id} is ${r.state}`;
  }
}
