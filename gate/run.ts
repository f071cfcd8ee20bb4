/**
 * The gate's running half: what happens to a request once it is claimed (re-validate the stored plan,
 * run it, record the outcome) and to requests a dead process left `running` (mark them interrupted,
 * reconcile, tell the channel). Split from gate/gate.ts, which decides; this module carries out.
 *
 * @module
 */

import type { AppDeps } from "../core/deps.ts";
import { actorOf, type Invoker } from "../core/access.ts";
import { asOpsError, OpsError, StepFailed } from "../core/errors.ts";
import { getOperation } from "../ops/registry.ts";
import type { OpDeps } from "../ops/types.ts";
import * as store from "./store.ts";
import type { ApprovalRow, ReconcileVerdict, RequestRow } from "./store.ts";
import { checkPreconditions, toJsonValue } from "./hooks.ts";
import {
  approvedProblem,
  gateKeys,
  recordTampering,
  requestProblem,
  tamperedMessage,
  witnessRun,
} from "./integrity.ts";
import { backupFirstUnlessPrimaryDown } from "./backup_first.ts";

/** The audit actor of the gate's own transitions (expiry sweeps, interruptions). */
export const SYSTEM_ACTOR = "bisman-ops";

/** Everything a renderer needs to draw the approval message in its current state. */
export interface RequestView {
  request: RequestRow;
  approvals: ApprovalRow[];
  /** Whether its operation can stop safely once running (the message offers Stop, or says it cannot). */
  cancellable?: boolean;
  /** Why a pending request is not what the bot wrote (gate/integrity.ts): drawn as a warning, never as a plan. */
  tampered?: string;
}

/**
 * Where the approval message lives. The Slack implementation is slack/approval_messages.ts; the CLI may
 * print instead. Failures are logged by the gate and never change a request's state.
 */
export interface ApprovalNotifier {
  /** Posts the approval message; returns where it went. */
  post(
    view: RequestView,
    where: { channel: string; threadTs?: string },
  ): Promise<{ channel: string; ts: string }>;
  /** Redraws the message for the request's current state. */
  update(view: RequestView): Promise<void>;
  /** Tells the channel something that needs attention (an interruption and what reconcile found). */
  announce(view: RequestView, text: string): Promise<void>;
  /** The one reminder of a pending request, in its thread, mentioning its approvers again. */
  remind?(view: RequestView, minutesLeft: number): Promise<void>;
}

/** What the running half needs from the gate that owns it. */
export interface GateRuntime {
  deps: AppDeps;
  instanceId: string;
  notifier: ApprovalNotifier;
  /** Redraws request `id`'s message from its current row (edits of one request never overlap). */
  refresh(id: number): Promise<void>;
  view(id: number): Promise<RequestView | undefined>;
  /** Runs of this process that can be stopped, by request id. */
  running: Map<number, AbortController>;
}

/** Operations whose plans offer "take a backup first" (when the target has a backup source). */
export const BACKUP_FIRST_ACTIONS: ReadonlySet<string> = new Set(["promote_replica", "roles_apply"]);

/** Progress lines reach the message at most this often (each one is a chat.update). */
const PROGRESS_EVERY_MS = 3000;

/**
 * Re-validates, runs and records a claimed request, editing its message at each step. Never throws for
 * the operation's own failures: they end the request as `failed`.
 */
export async function executeClaimed(rt: GateRuntime, row: RequestRow, by: Invoker): Promise<void> {
  const stop = new AbortController();
  rt.running.set(row.id, stop);
  try {
    await runClaimed(rt, row, by, stop);
  } finally {
    rt.running.delete(row.id);
  }
}

async function runClaimed(
  rt: GateRuntime,
  row: RequestRow,
  by: Invoker,
  stop: AbortController,
): Promise<void> {
  const { deps } = rt;
  const op = getOperation(row.action);
  const base = {
    actor: actorOf(by),
    actorName: by.userName,
    target: row.target ?? undefined,
    requestId: row.id,
  };
  let lastProgress = 0;
  const opDeps: OpDeps = {
    ...deps,
    actor: row.requester_id,
    requestId: row.id,
    signal: stop.signal,
    progress: (line) => {
      // Throttled: a long run reports often, and each shown line is a message edit.
      if (Date.now() - lastProgress < PROGRESS_EVERY_MS) return;
      lastProgress = Date.now();
      void store.setProgress(deps.state, row.id, deps.secrets.scrub(line)).then(() => rt.refresh(row.id))
        .catch((err) => deps.log.warn("could not record progress", { request: row.id, error: err }));
    },
  };
  const plan = row.plan;
  await rt.refresh(row.id);
  // The claimed row as the database returned it: checked again, since it could have been changed between
  // the approval and the claim. What runs from here on is this checked, in-memory row.
  const problem = await requestProblem(gateKeys(deps), row);
  if (problem) {
    await recordTampering(deps, row, problem, { actor: SYSTEM_ACTOR, phase: "run" });
    await finish(rt, row, { state: "failed", error: tamperedMessage(row, problem) });
    const view = await rt.view(row.id);
    if (view) {
      await rt.notifier.announce(view, `:rotating_light: ${tamperedMessage(row, problem)}`).catch((err) =>
        deps.log.warn("could not announce a tampered request", { request: row.id, error: err })
      );
    }
    return;
  }
  if (!op) {
    await finish(rt, row, {
      state: "failed",
      error: `Operation ${row.action} is not part of this build`,
    });
    return;
  }
  const refusal = await checkPreconditions({
    action: row.action,
    args: row.args,
    plan,
    target: row.target ?? undefined,
    phase: "run",
    deps: opDeps,
  });
  let changed: string | undefined = refusal ? `Not run: ${refusal}` : undefined;
  if (!changed && row.pre_backup) {
    const failed = await backupFirstUnlessPrimaryDown(
      deps,
      opDeps,
      row.target,
      base,
      () => backupFirst(rt, row, opDeps, base),
    );
    if (failed) {
      await finish(rt, row, {
        state: "failed",
        error: `The backup taken first failed, so ${row.action} was not run: ${failed}`,
      });
      return;
    }
  }
  if (!changed && op.revalidate) {
    try {
      const what = await op.revalidate(plan, opDeps);
      if (what) changed = `The state changed since the plan was made: ${what}`;
    } catch (err) {
      changed = `Could not re-check the plan's state: ${userError(rt.deps, err).userMessage}`;
    }
  }
  if (changed) {
    await deps.audit.append({ ...base, action: "op.stale", outcome: "refused", details: { changed } });
    await finish(rt, row, { state: "stale", error: changed });
    return;
  }
  const approvers = (await store.listApprovals(deps.state, row.id)).map((a) => a.approver);
  const startedRow = await deps.audit.append({
    ...base,
    action: "op.started",
    outcome: "started",
    details: { operation: row.action, plan_hash: row.plan_hash, approvers, instance: rt.instanceId },
  });
  await witnessRun(deps, row.id, startedRow);
  const started = performance.now();
  let result: unknown;
  let failure: OpsError | undefined;
  try {
    result = await op.run(plan, opDeps);
  } catch (err) {
    failure = userError(rt.deps, err);
  }
  const durationMs = Math.round(performance.now() - started);
  deps.metrics.observe(
    "bisman_operation_seconds",
    { action: row.action },
    durationMs / 1000,
    "Destructive operation run time",
  );
  if (stop.signal.aborted && op.cancellable) {
    const fresh = await store.getRequest(deps.state, row.id);
    const how = result !== undefined ? safeDescribe(rt, op, result) : failure?.userMessage;
    const text = `Stopped by ${fresh?.cancel_requested_by_name ?? fresh?.cancel_requested_by ?? "someone"}${
      how ? `: ${how}` : ""
    }`;
    await auditAfter(rt.deps, {
      ...base,
      action: "op.cancelled",
      outcome: "cancelled",
      details: { duration_ms: durationMs, stopped_by: fresh?.cancel_requested_by, result: how },
    });
    await finish(rt, row, {
      state: "cancelled",
      result: result === undefined
        ? undefined
        : JSON.parse(deps.secrets.scrub(JSON.stringify(toJsonValue(result)))),
      summary: `${text} (${durationMs} ms)`,
      error: text,
    });
    return;
  }
  if (failure) {
    const step = failure instanceof StepFailed ? failure.step : undefined;
    await auditAfter(rt.deps, {
      ...base,
      action: "op.failed",
      outcome: "failed",
      details: { duration_ms: durationMs, code: failure.code, error: failure.userMessage, step },
    });
    await finish(rt, row, { state: "failed", error: failure.userMessage });
    return;
  }
  const safe = JSON.parse(deps.secrets.scrub(JSON.stringify(toJsonValue(result) ?? null)));
  const summary = safeDescribe(rt, op, result);
  await auditAfter(rt.deps, {
    ...base,
    action: "op.succeeded",
    outcome: "succeeded",
    details: { duration_ms: durationMs, summary },
  });
  await finish(rt, row, { state: "succeeded", result: safe, summary: `${summary} (${durationMs} ms)` });
}

function safeDescribe(
  rt: GateRuntime,
  op: NonNullable<ReturnType<typeof getOperation>>,
  result: unknown,
): string {
  try {
    return op.describeResult?.(result as never) ?? "done";
  } catch (err) {
    rt.deps.log.warn("describeResult failed", { action: op.name, error: err });
    return "done";
  }
}

/**
 * The "take a backup first" step: plans and runs `backup_now` of the request's target with the request's
 * own dependencies, audited as its own step. @returns why it failed, or undefined when the backup is done
 */
async function backupFirst(
  rt: GateRuntime,
  row: RequestRow,
  opDeps: OpDeps,
  base: { actor: string; actorName?: string; target?: string; requestId: number },
): Promise<string | undefined> {
  const backup = getOperation("backup_now");
  if (!backup || !row.target) return "backup_now is not available for this request";
  const started = performance.now();
  try {
    const plan = await backup.plan(backup.args.parse({ target: row.target }), opDeps);
    await rt.deps.audit.append({
      ...base,
      action: "op.backup_first",
      outcome: "started",
      details: { plan: plan.summary },
    });
    const result = await backup.run(plan, opDeps);
    await auditAfter(rt.deps, {
      ...base,
      action: "op.backup_first",
      outcome: "succeeded",
      details: {
        summary: backup.describeResult?.(result) ?? "done",
        duration_ms: Math.round(performance.now() - started),
      },
    });
    return undefined;
  } catch (err) {
    const e = userError(rt.deps, err);
    await auditAfter(rt.deps, {
      ...base,
      action: "op.backup_first",
      outcome: "failed",
      details: { error: e.userMessage, duration_ms: Math.round(performance.now() - started) },
    });
    return e.userMessage;
  }
}

async function finish(
  rt: GateRuntime,
  row: RequestRow,
  end: {
    state: "succeeded" | "failed" | "stale" | "cancelled";
    result?: unknown;
    summary?: string;
    error?: string;
  },
): Promise<void> {
  const done = await store.finishRequest(rt.deps.state, row.id, rt.instanceId, {
    ...end,
    error: end.error ? rt.deps.secrets.scrub(end.error) : undefined,
    now: rt.deps.now(),
  });
  if (!done) {
    rt.deps.log.error("could not record the end of a run", { request: row.id, state: end.state });
  }
  rt.deps.metrics.inc(
    "bisman_request_runs_total",
    { action: row.action, outcome: end.state },
    1,
    "Claimed requests by outcome",
  );
  await rt.refresh(row.id);
}

async function reconcileRequest(rt: GateRuntime, r: RequestRow): Promise<ReconcileVerdict> {
  const op = getOperation(r.action);
  if (!op?.reconcile) {
    return {
      status: "needs_human",
      note: `${r.action} has no automatic reconcile: check ${
        r.target ?? "the target"
      } by hand before requesting it again`,
    };
  }
  try {
    const v = await op.reconcile(r.plan, { ...rt.deps, actor: r.requester_id, requestId: r.id });
    return { status: v.status, note: rt.deps.secrets.scrub(v.note) };
  } catch (err) {
    return { status: "needs_human", note: `reconcile failed: ${userError(rt.deps, err).userMessage}` };
  }
}

/**
 * Finds requests left `running` by a dead instance, marks each `interrupted` (once, even with several
 * replicas recovering), runs the operation's `reconcile()` where it exists, records and posts its
 * verdict. Returns how many requests this call recovered.
 */
export async function recoverOrphans(rt: GateRuntime): Promise<number> {
  const { deps } = rt;
  const orphans = await store.orphanedRunning(deps.state);
  let n = 0;
  for (const o of orphans) {
    const r = await store.markInterrupted(deps.state, o.id, o.run_by!, deps.now());
    if (!r) continue;
    n++;
    await deps.audit.append({
      actor: SYSTEM_ACTOR,
      action: "request.interrupted",
      target: r.target ?? undefined,
      requestId: r.id,
      outcome: "interrupted",
      details: { run_by: o.run_by, started_at: o.started_at?.toISOString(), recovered_by: rt.instanceId },
    });
    await rt.refresh(r.id);
    // `running` and `run_by` are plain columns: a request set to running by hand (never approved, or with
    // its plan edited) must not reach reconcile(), which acts (a rotation's sets a role's password).
    const problem = await approvedProblem(gateKeys(deps), r, await store.listApprovals(deps.state, r.id));
    if (problem) await recordTampering(deps, r, problem, { actor: SYSTEM_ACTOR, phase: "reconcile" });
    const verdict: ReconcileVerdict = problem
      ? { status: "needs_human", note: `not reconciled: ${tamperedMessage(r, problem)}` }
      : await reconcileRequest(rt, r);
    await store.recordReconcile(deps.state, r.id, verdict);
    await deps.audit.append({
      actor: SYSTEM_ACTOR,
      action: "op.reconciled",
      target: r.target ?? undefined,
      requestId: r.id,
      outcome: verdict.status,
      details: { note: verdict.note },
    });
    await rt.refresh(r.id);
    const view = await rt.view(r.id);
    if (view) {
      await rt.notifier.announce(
        view,
        `:rotating_light: Request #${r.id} (${r.action}${
          r.target ? ` on ${r.target}` : ""
        }) was interrupted: ` +
          `the bot stopped while it ran. Reconcile: ${verdictWords[verdict.status]}: ${verdict.note}`,
      ).catch((err) => deps.log.error("could not announce an interruption", { request: r.id, error: err }));
    }
  }
  if (orphans.length) await store.pruneInstances(deps.state).catch(() => undefined);
  return n;
}

/** An OpsError for anything thrown; unknown errors are logged with a reference the message shows. */
export function userError(deps: Pick<AppDeps, "log">, err: unknown): OpsError {
  if (err instanceof OpsError) return err;
  const ref = crypto.randomUUID().slice(0, 8);
  deps.log.error("operation failed unexpectedly", { reference: ref, error: err });
  return asOpsError(err, ref);
}

/** Appends to the audit log, retrying: after an operation ran, its outcome must be recorded. */
export async function auditAfter(
  deps: Pick<AppDeps, "audit" | "log">,
  entry: Parameters<AppDeps["audit"]["append"]>[0],
): Promise<void> {
  for (let attempt = 1;; attempt++) {
    try {
      await deps.audit.append(entry);
      return;
    } catch (err) {
      if (attempt >= 3) {
        deps.log.error("audit append failed", { action: entry.action, error: err });
        return;
      }
      await new Promise((r) => setTimeout(r, 200 * attempt));
    }
  }
}

const verdictWords: Record<ReconcileVerdict["status"], string> = {
  done: "it had completed",
  not_done: "it had not taken effect",
  needs_human: "a person must check",
};
