/**
 * The contract of an operation: plain modules that know PostgreSQL, Vault and the backup tools, and
 * nothing of Slack. Destructive ones are reached only through the approval gate.
 *
 * @module
 */

import type { z } from "zod";
import type { AppDeps } from "../core/deps.ts";
import type { Metrics } from "../core/metrics.ts";

/** Dependencies an operation may use; a subset of the app's, so the CLI and tests can build them. */
export type OpDeps =
  & Pick<AppDeps, "config" | "targets" | "log" | "now" | "secrets" | "state" | "audit" | "vault" | "keys">
  & {
    /** Who asked, for `app.user_id` on target connections and for security_events rows. */
    actor?: string;
    /** The approval request being run (or reconciled), for the target's security_events rows. */
    requestId?: number;
    /**
     * Aborted when someone stops a running request. Only operations marked `cancellable` look at it; they
     * stop at a safe point, clean up, and return (or throw) as usual.
     */
    signal?: AbortSignal;
    /** Reports progress of a long run (the gate shows the latest line on the approval message). */
    progress?: (line: string) => void;
    /**
     * The process's metrics: checks set the runbook's gauges when they run (ops/_runbook_metrics.ts).
     * Absent where nothing is exported (the CLI's one-shot runs, some tests).
     */
    metrics?: Metrics;
  };

/** What reconcile() found after a crash. */
export type Reconciled<R> =
  | { status: "done"; result: R; note: string }
  | { status: "not_done"; note: string }
  | { status: "needs_human"; note: string };

/** A plan: serialisable, shown to the approver, stored with the request, re-validated before running. */
export interface PlanBase {
  /** One line: what will happen. */
  summary: string;
  target?: string;
  /** The steps in order, as the approver will read them. */
  steps: string[];
  /** State the plan was made from; run() refuses when it no longer holds. */
  fingerprint: Record<string, unknown>;
  /** Things the approver must know (split brain, sessions that will be cut, ...). */
  warnings?: string[];
}

/** One operation. */
export interface Operation<A, P extends PlanBase, R> {
  /** Same as the file name. */
  readonly name: string;
  readonly destructive: boolean;
  /**
   * True when run() can stop safely mid-way when `deps.signal` aborts (a restore test: stop pg_restore,
   * drop its scratch database). Operations without it are shown as unable to stop once running.
   */
  readonly cancellable?: boolean;
  readonly args: z.ZodType<A>;
  /** Reads state only and describes exactly what run() would do. */
  plan(args: A, deps: OpDeps): Promise<P>;
  /**
   * Re-reads the fingerprinted state; returns a description of what changed, or undefined when the
   * plan still holds. Destructive operations implement it.
   */
  revalidate?(plan: P, deps: OpDeps): Promise<string | undefined>;
  /** Carries out the plan in the stated order. */
  run(plan: P, deps: OpDeps): Promise<R>;
  /** After a crash mid-run: inspects real state and reports, never reruns blindly. */
  reconcile?(plan: P, deps: OpDeps): Promise<Reconciled<R>>;
  /** One line summarising a result, for the approval message's final state and the audit log. */
  describeResult?(result: R): string;
}
