/**
 * The approval gate: no destructive operation runs without an eligible second person's click, and every
 * step is written to the audit log.
 *
 * Life cycle of a request (sql/0002_requests.sql):
 * `pending` → (`denied` | `cancelled` | `expired`) or → `running` → (`succeeded` | `failed` | `stale`),
 * and `running` → `interrupted` when the process running it died. `request()` plans and persists;
 * `approve()` records approvals and, once enough distinct eligible approvers agreed, claims the request with
 * one conditional UPDATE (exactly once across clicks, retries and replicas), re-validates the stored plan
 * against current state and runs that plan. The approval message is edited at every transition through an
 * {@link ApprovalNotifier}, so core never imports Slack.
 *
 * Liveness: each instance holds a session advisory lock on its own connection while it lives; a request left
 * `running` by an instance whose lock is gone is marked `interrupted` by {@link ApprovalGate.recoverInterrupted}
 * (at start-up and on every sweep), its operation's `reconcile()` runs, and the channel is told.
 *
 * @module
 */

import postgres, { type Sql } from "postgres";
import type { AppDeps, Gate, GateRequest } from "./deps.ts";
import type { Reply } from "./reply.ts";
import { actorOf, checkWorkspace, type Invoker, isMember, requireOperator } from "./access.ts";
import { asOpsError, type ErrorCode, InvalidInput, NotPermitted, OpsError, StepFailed } from "./errors.ts";
import { getOperation } from "../ops/registry.ts";
import type { OpDeps } from "../ops/types.ts";
import * as store from "./approval_store.ts";
import type {
  ApprovalRow,
  FreezeState,
  ReconcileVerdict,
  RequestRow,
  RequestState,
} from "./approval_store.ts";
import {
  checkPreconditions,
  closedMessage,
  collectPlanNotes,
  confirmTextOf,
  describeFreeze,
  formatTime,
  gatePolicy,
  planHashOf,
  toJsonValue,
} from "./approval_hooks.ts";

export { registerPlanNote, registerPrecondition } from "./approval_hooks.ts";
export type { GateContext, PlanNote, Precondition } from "./approval_hooks.ts";

/** Everything a renderer needs to draw the approval message in its current state. */
export interface RequestView {
  request: RequestRow;
  approvals: ApprovalRow[];
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
}

/** The outcome of a click: done, refused (shown to the clicker only), or "confirm" (ask for the typed name). */
export type Decision =
  | { status: "done"; message: string; state?: RequestState }
  | { status: "refused"; code: ErrorCode; message: string }
  | { status: "confirm"; expected: string; message: string };

/** Options of a gate. */
export interface GateOptions {
  /** This process's identity in `run_by` (default: a random UUID). */
  instanceId?: string;
  /** The state database URL for the liveness connection (default: `deps.env.databaseUrl`). */
  databaseUrl?: string;
  /** How often the liveness lock is re-asserted and running requests are heartbeated (ms). */
  heartbeatMs?: number;
}

/** The audit actor of the gate's own transitions (expiry sweeps, interruptions). */
const SYSTEM_ACTOR = "bisman-ops";

/** The approval gate of one bot process. */
export class ApprovalGate implements Gate {
  readonly instanceId: string;
  #lockSql?: Sql;
  #lockKey?: number;
  #timers: ReturnType<typeof setInterval>[] = [];
  #inflight = new Set<Promise<unknown>>();
  #edits = new Map<number, Promise<void>>();
  #stopped = false;

  constructor(
    private readonly deps: AppDeps,
    private readonly notifier: ApprovalNotifier,
    private readonly opts: GateOptions = {},
  ) {
    this.instanceId = opts.instanceId ?? crypto.randomUUID();
  }

  /**
   * Registers this instance, takes its liveness lock, recovers requests a dead process left running (in
   * the background: it may post to Slack), and sweeps expired requests every `sweepIntervalMs`.
   */
  async start(opts: { sweepIntervalMs?: number; sweep?: boolean } = {}): Promise<void> {
    const { state } = this.deps;
    this.#lockKey = await store.registerInstance(state, {
      id: this.instanceId,
      host: Deno.hostname(),
      pid: Deno.pid,
      now: this.deps.now(),
    });
    // A dedicated connection with no idle or lifetime limit: the lock lives exactly as long as it does.
    this.#lockSql = postgres(this.opts.databaseUrl ?? this.deps.env.databaseUrl, {
      max: 1,
      idle_timeout: 0,
      max_lifetime: 0,
      connect_timeout: 5,
      onnotice: () => {},
      connection: { application_name: "bisman-ops-liveness" },
    });
    await this.#assertLock();
    const beat = setInterval(() => this.#track(this.#heartbeat()), this.opts.heartbeatMs ?? 5_000);
    // `sweep: false` when the scheduler's approval_expiry job sweeps instead (once per slot across replicas).
    const sweep = opts.sweep === false ? undefined : setInterval(
      () => this.#track(this.sweep().then(() => this.recoverInterrupted())),
      opts.sweepIntervalMs ?? 30_000,
    );
    for (const t of sweep ? [beat, sweep] : [beat]) {
      Deno.unrefTimer(t);
      this.#timers.push(t);
    }
    this.#track(this.recoverInterrupted());
  }

  /** Stops the timers, waits (bounded) for work in flight, and releases the liveness lock. */
  async stop(timeoutMs = 10_000): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    for (const t of this.#timers) clearInterval(t);
    await this.idle(timeoutMs);
    await this.#lockSql?.end({ timeout: 2 }).catch(() => undefined);
  }

  /** Resolves when background work (recovery, sweeps, message edits) has finished, or after `timeoutMs`. */
  async idle(timeoutMs = 30_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while ((this.#inflight.size || this.#edits.size) && Date.now() < deadline) {
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([
        Promise.allSettled([...this.#inflight, ...this.#edits.values()]),
        new Promise((r) => (timer = setTimeout(r, Math.max(0, deadline - Date.now())))),
      ]);
      clearTimeout(timer);
    }
  }

  #track(p: Promise<unknown>): void {
    const tracked = p.catch((err) =>
      this.deps.log.error("approval gate background work failed", { error: err })
    )
      .finally(() => this.#inflight.delete(tracked));
    this.#inflight.add(tracked);
  }

  async #assertLock(): Promise<void> {
    // Re-entrant for the session that holds it; re-acquires it if the connection was replaced.
    const [row] = await this.#lockSql!<{ ok: boolean }[]>`
      select pg_try_advisory_lock(${store.INSTANCE_LOCK_NS}::int, ${this.#lockKey!}::int) as ok`;
    if (!row.ok) throw new Error(`Liveness lock of instance ${this.instanceId} is held by another session`);
  }

  async #heartbeat(): Promise<void> {
    await this.#assertLock();
    await store.heartbeat(this.deps.state, this.instanceId, this.deps.now());
  }

  /** Creates a request: checks, plan, persist, post the approval message; returns the asker's answer. */
  async request(req: GateRequest): Promise<Reply> {
    const { deps } = this;
    const inv = req.invoker;
    try {
      const op = getOperation(req.action);
      if (!op) throw new InvalidInput(`Unknown operation "${req.action}"`);
      if (!op.destructive) throw new Error(`Operation ${op.name} is not destructive: call it directly`);
      checkWorkspace(deps.config, inv);
      await requireOperator(deps.config, inv, deps.groupMembers, `Requesting ${op.name}`);
      const policy = gatePolicy(deps.config, op.name);
      if (inv.via === "slack" && policy.channels && !policy.channels.includes(inv.channelId ?? "")) {
        throw new NotPermitted(
          `${op.name} may only be requested in ${
            policy.channels.map((c) => `<#${c}>`).join(", ")
          }: ask there`,
        );
      }
      const parsed = op.args.safeParse(req.args);
      if (!parsed.success) {
        const issue = parsed.error.issues[0];
        throw new InvalidInput(
          `Bad arguments for ${op.name}: ${issue.path.join(".") || "arguments"}: ${issue.message}`,
        );
      }
      const freeze = await store.readFreeze(deps.state);
      if (freeze.frozen && !policy.allowed_during_freeze) throw frozenError(freeze, op.name);

      const opDeps: OpDeps = { ...deps, actor: actorOf(inv) };
      const plan = toJsonValue(await op.plan(parsed.data, opDeps)) as store.StoredPlan;
      const target = plan.target ?? (parsed.data as { target?: string })?.target;
      const ctx = { action: op.name, args: parsed.data, plan, target, deps: opDeps };
      const refusal = await checkPreconditions({ ...ctx, phase: "request" });
      if (refusal) throw new OpsError("conflict", `Cannot request ${op.name}: ${refusal}`);
      const notes = await collectPlanNotes(ctx);

      const now = deps.now();
      const row = await store.insertRequest(deps.state, {
        action: op.name,
        target,
        args: toJsonValue(parsed.data),
        plan,
        planHash: await planHashOf(plan),
        notes,
        requesterId: inv.userId,
        requesterName: inv.userName,
        via: inv.via,
        askedIn: inv.channelId,
        approvalsNeeded: policy.approvals,
        policy,
        createdAt: now,
        expiresAt: new Date(now.getTime() + policy.expiry_minutes * 60_000),
      });
      const base = { actor: actorOf(inv), actorName: inv.userName, target, requestId: row.id };
      await deps.audit.append({
        ...base,
        action: "request.created",
        outcome: "ok",
        details: {
          action: op.name,
          args: row.args,
          via: inv.via,
          channel: inv.channelId,
          approvals_needed: row.approvals_needed,
          expires_at: row.expires_at.toISOString(),
        },
      });
      await deps.audit.append({
        ...base,
        action: "request.planned",
        outcome: "ok",
        details: { plan_hash: row.plan_hash, plan, notes },
      });
      deps.metrics.inc("bisman_requests_total", { action: op.name }, 1, "Destructive requests created");

      const where = req.thread
        ? { channel: req.thread.channel, threadTs: req.thread.ts }
        : { channel: deps.config.slack.ops_channel };
      try {
        const posted = await this.notifier.post({ request: row, approvals: [] }, where);
        await store.setMessage(deps.state, row.id, { ...posted, threadTs: where.threadTs });
      } catch (err) {
        deps.log.error("could not post the approval message", { request: row.id, error: err });
        return reply(
          `:warning: Request #${row.id} (${plan.summary}) was recorded, but its approval message could not be ` +
            `posted, so nobody can approve it from Slack; it expires at ${formatTime(row.expires_at)}`,
        );
      }
      const needs = row.approvals_needed === 1 ? "an approver" : `${row.approvals_needed} approvers`;
      return reply(
        `:memo: Request #${row.id} waits for ${needs} in <#${where.channel}>: ${plan.summary} ` +
          `(plan ${row.plan_hash}, expires ${formatTime(row.expires_at)})`,
      );
    } catch (err) {
      if (err instanceof OpsError) {
        await this.#audit({
          actor: actorOf(inv),
          actorName: inv.userName,
          action: "request.refused",
          outcome: "refused",
          details: { action: req.action, code: err.code, reason: err.userMessage },
        });
      }
      throw err;
    }
  }

  /**
   * Checks whether `inv` may decide (approve or deny) request `id` right now, without recording anything.
   * Used before opening a modal. Refusals are audited.
   */
  async checkDecider(id: number, inv: Invoker, kind: "approve" | "deny"): Promise<Decision> {
    const r = await this.#precheck(id, inv, kind);
    return "refused" in r ? r.refused : { status: "done", message: "ok", state: r.row.state };
  }

  /**
   * Records `inv`'s approval of request `id`; when the policy's number of distinct approvals is reached,
   * claims the request (one conditional UPDATE) and runs its stored plan after re-validating it. Resolves
   * when the run has ended.
   * @param opts.typed what the approver typed, when the policy demands typed confirmation
   * @param opts.planHash the plan hash the clicked button carried; a mismatch is refused
   */
  async approve(
    id: number,
    inv: Invoker,
    opts: { typed?: string; planHash?: string } = {},
  ): Promise<Decision> {
    const { deps } = this;
    const pre = await this.#precheck(id, inv, "approve");
    if ("refused" in pre) return pre.refused;
    const { row } = pre;
    if (opts.planHash && opts.planHash !== row.plan_hash) {
      return await this.#refuse(
        row,
        inv,
        "state_changed",
        `This button belongs to another plan than request #${id}'s`,
      );
    }
    if (row.policy.typed_confirmation) {
      const expected = confirmTextOf(row);
      if (opts.typed === undefined) {
        return { status: "confirm", expected, message: `Type ${expected} to approve request #${id}` };
      }
      if (opts.typed.trim() !== expected) {
        return await this.#refuse(
          row,
          inv,
          "invalid_input",
          `Not approved: type ${expected} exactly to approve #${id}`,
        );
      }
    }
    const now = deps.now();
    const added = await store.addApproval(deps.state, id, { id: inv.userId, name: inv.userName }, now);
    if (added === "closed") {
      const fresh = (await store.getRequest(deps.state, id))!;
      return await this.#refuse(fresh, inv, "approval_closed", closedMessage(fresh));
    }
    const approvals = await store.listApprovals(deps.state, id);
    if (added === "added") {
      await deps.audit.append({
        actor: actorOf(inv),
        actorName: inv.userName,
        action: "request.approved",
        target: row.target ?? undefined,
        requestId: id,
        outcome: "ok",
        details: {
          approvals: approvals.length,
          needed: row.approvals_needed,
          typed_confirmation: !!opts.typed,
        },
      });
    }
    if (approvals.length >= row.approvals_needed) {
      const claimed = await store.claimRequest(deps.state, id, {
        instance: this.instanceId,
        by: inv.userId,
        byName: inv.userName,
        now: deps.now(),
      });
      if (claimed) {
        await this.#execute(claimed, inv);
        const final = await store.getRequest(deps.state, id);
        return { status: "done", message: `Request #${id} ${final?.state ?? "ran"}`, state: final?.state };
      }
    }
    if (added === "duplicate") {
      const fresh = (await store.getRequest(deps.state, id))!;
      const msg = fresh.state === "pending"
        ? `You already approved request #${id}: it needs ${
          fresh.approvals_needed - approvals.length
        } more approver(s)`
        : closedMessage(fresh);
      return await this.#refuse(fresh, inv, "conflict", msg);
    }
    await this.#refresh(id);
    return {
      status: "done",
      message: `Approval recorded for #${id}: ${approvals.length} of ${row.approvals_needed}`,
      state: "pending",
    };
  }

  /** Denies request `id` with a reason (eligible approvers only). */
  async deny(id: number, inv: Invoker, reason: string): Promise<Decision> {
    const text = reason.trim().slice(0, 500);
    const pre = await this.#precheck(id, inv, "deny");
    if ("refused" in pre) return pre.refused;
    if (!text) return await this.#refuse(pre.row, inv, "invalid_input", "A denial needs a reason");
    const closed = await store.closePending(this.deps.state, id, {
      state: "denied",
      now: this.deps.now(),
      by: inv.userId,
      byName: inv.userName,
      reason: text,
    });
    if (!closed) {
      const fresh = (await store.getRequest(this.deps.state, id))!;
      return await this.#refuse(fresh, inv, "approval_closed", closedMessage(fresh));
    }
    await this.deps.audit.append({
      actor: actorOf(inv),
      actorName: inv.userName,
      action: "request.denied",
      target: closed.target ?? undefined,
      requestId: id,
      outcome: "denied",
      details: { reason: text },
    });
    await this.#refresh(id);
    return { status: "done", message: `Request #${id} denied`, state: "denied" };
  }

  /** Withdraws a pending request (its requester, or any operator). */
  async cancel(id: number, inv: Invoker): Promise<Decision> {
    const { deps } = this;
    const row = await store.getRequest(deps.state, id);
    if (!row) return await this.#refuse(undefined, inv, "invalid_input", `There is no request #${id}`, id);
    try {
      checkWorkspace(deps.config, inv);
      if (inv.userId !== row.requester_id) {
        await requireOperator(deps.config, inv, deps.groupMembers, `Cancelling someone else's request`);
      }
    } catch (err) {
      return await this.#refuse(row, inv, asOpsError(err).code, asOpsError(err).userMessage);
    }
    const closed = await store.closePending(deps.state, id, {
      state: "cancelled",
      now: deps.now(),
      by: inv.userId,
      byName: inv.userName,
    });
    if (!closed) {
      return await this.#refuse(
        row,
        inv,
        "approval_closed",
        closedMessage((await store.getRequest(deps.state, id))!),
      );
    }
    await deps.audit.append({
      actor: actorOf(inv),
      actorName: inv.userName,
      action: "request.cancelled",
      target: row.target ?? undefined,
      requestId: id,
      outcome: "cancelled",
    });
    await this.#refresh(id);
    return { status: "done", message: `Request #${id} cancelled`, state: "cancelled" };
  }

  /** Marks every pending request past its expiry `expired` and edits its message; returns how many. */
  async sweep(): Promise<number> {
    const expired = await store.expireDue(this.deps.state, this.deps.now());
    for (const r of expired) await this.#expired(r);
    return expired.length;
  }

  /**
   * Finds requests left `running` by a dead instance, marks each `interrupted` (once, even with several
   * replicas recovering), runs the operation's `reconcile()` where it exists, records and posts its
   * verdict. Returns how many requests this call recovered.
   */
  async recoverInterrupted(): Promise<number> {
    const { deps } = this;
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
        details: { run_by: o.run_by, started_at: o.started_at?.toISOString(), recovered_by: this.instanceId },
      });
      await this.#refresh(r.id);
      const verdict = await this.#reconcile(r);
      await store.recordReconcile(deps.state, r.id, verdict);
      await deps.audit.append({
        actor: SYSTEM_ACTOR,
        action: "op.reconciled",
        target: r.target ?? undefined,
        requestId: r.id,
        outcome: verdict.status,
        details: { note: verdict.note },
      });
      await this.#refresh(r.id);
      const view = await this.#view(r.id);
      if (view) {
        await this.notifier.announce(
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

  /** Freezes destructive work (operators). Immediate and audited; an existing freeze is kept. */
  async freeze(inv: Invoker, reason: string): Promise<{ changed: boolean; state: FreezeState }> {
    checkWorkspace(this.deps.config, inv);
    await requireOperator(this.deps.config, inv, this.deps.groupMembers, "Freezing destructive actions");
    const result = await store.setFreeze(this.deps.state, {
      reason: reason.trim().slice(0, 500),
      by: actorOf(inv),
      byName: inv.userName,
      now: this.deps.now(),
    });
    await this.deps.audit.append({
      actor: actorOf(inv),
      actorName: inv.userName,
      action: "freeze.set",
      outcome: result.changed ? "ok" : "unchanged",
      details: {
        reason: result.state.reason,
        frozen_by: result.state.by,
        frozen_at: result.state.at?.toISOString(),
      },
    });
    return result;
  }

  /** The freeze in force. */
  readFreeze(): Promise<FreezeState> {
    return store.readFreeze(this.deps.state);
  }

  /** The current view of request `id` (for renderers and tests). */
  async view(id: number): Promise<RequestView | undefined> {
    return await this.#view(id);
  }

  async #view(id: number): Promise<RequestView | undefined> {
    const request = await store.getRequest(this.deps.state, id);
    if (!request) return undefined;
    return { request, approvals: await store.listApprovals(this.deps.state, id) };
  }

  /** The checks shared by approve, deny and the pre-modal check; refusals are audited. */
  async #precheck(
    id: number,
    inv: Invoker,
    kind: "approve" | "deny",
  ): Promise<{ row: RequestRow } | { refused: Decision }> {
    const { deps } = this;
    const refused = async (row: RequestRow | undefined, code: ErrorCode, message: string) => ({
      refused: await this.#refuse(row, inv, code, message, id),
    });
    try {
      checkWorkspace(deps.config, inv);
    } catch (err) {
      return await refused(undefined, "not_permitted", asOpsError(err).userMessage);
    }
    const row = await store.getRequest(deps.state, id);
    if (!row) return await refused(undefined, "invalid_input", `There is no request #${id}`);
    if (row.state !== "pending") return await refused(row, "approval_closed", closedMessage(row));
    if (row.expires_at.getTime() <= deps.now().getTime()) {
      const closed = await store.closePending(deps.state, id, { state: "expired", now: deps.now() });
      if (closed) await this.#expired(closed);
      return await refused(
        row,
        "approval_closed",
        `Request #${id} expired at ${
          formatTime(row.expires_at)
        }: it can no longer be ${kind}d; request it again`,
      );
    }
    if (inv.userId === row.requester_id) {
      return await refused(
        row,
        "not_permitted",
        kind === "approve"
          ? `You requested #${id}, so your approval does not count: another approver must approve it`
          : `You requested #${id}: cancel it instead of denying it`,
      );
    }
    const policy = gatePolicy(deps.config, row.action);
    let eligible = false;
    try {
      eligible = await isMember(policy.approvers, inv.userId, deps.groupMembers);
    } catch (err) {
      deps.log.warn("approver group lookup failed", { error: err });
      return await refused(
        row,
        "unreachable",
        `Could not check whether you may ${kind} #${id}: Slack user groups did not answer; try again`,
      );
    }
    if (!eligible) {
      return await refused(
        row,
        "not_permitted",
        `You are not an approver for ${row.action}: nothing changed. Approvers are set in policies.${row.action}.approvers or access.approvers`,
      );
    }
    if (kind === "approve") {
      const freeze = await store.readFreeze(deps.state);
      if (freeze.frozen && !row.policy.allowed_during_freeze) {
        return await refused(row, "frozen", frozenError(freeze, row.action).userMessage);
      }
    }
    return { row };
  }

  async #refuse(
    row: RequestRow | undefined,
    inv: Invoker,
    code: ErrorCode,
    message: string,
    id?: number,
  ): Promise<Decision> {
    await this.#audit({
      actor: actorOf(inv),
      actorName: inv.userName,
      action: "approval.refused",
      target: row?.target ?? undefined,
      requestId: row?.id ?? id,
      outcome: "refused",
      details: { code, reason: message, team_id: inv.teamId },
    });
    return { status: "refused", code, message };
  }

  /** Re-validates, runs and records a claimed request. Never throws for the operation's own failures. */
  async #execute(row: RequestRow, by: Invoker): Promise<void> {
    const { deps } = this;
    const op = getOperation(row.action);
    const base = {
      actor: actorOf(by),
      actorName: by.userName,
      target: row.target ?? undefined,
      requestId: row.id,
    };
    const opDeps: OpDeps = { ...deps, actor: row.requester_id };
    const plan = row.plan;
    await this.#refresh(row.id);
    if (!op) {
      await this.#finish(row, {
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
    if (!changed && op.revalidate) {
      try {
        const what = await op.revalidate(plan, opDeps);
        if (what) changed = `The state changed since the plan was made: ${what}`;
      } catch (err) {
        changed = `Could not re-check the plan's state: ${this.#userError(err).userMessage}`;
      }
    }
    if (changed) {
      await deps.audit.append({ ...base, action: "op.stale", outcome: "refused", details: { changed } });
      await this.#finish(row, { state: "stale", error: changed });
      return;
    }
    const approvers = (await store.listApprovals(deps.state, row.id)).map((a) => a.approver);
    await deps.audit.append({
      ...base,
      action: "op.started",
      outcome: "started",
      details: { operation: row.action, plan_hash: row.plan_hash, approvers, instance: this.instanceId },
    });
    const started = performance.now();
    let result: unknown;
    let failure: OpsError | undefined;
    try {
      result = await op.run(plan, opDeps);
    } catch (err) {
      failure = this.#userError(err);
    }
    const durationMs = Math.round(performance.now() - started);
    deps.metrics.observe(
      "bisman_operation_seconds",
      { action: row.action },
      durationMs / 1000,
      "Destructive operation run time",
    );
    if (failure) {
      const step = failure instanceof StepFailed ? failure.step : undefined;
      await this.#auditAfter({
        ...base,
        action: "op.failed",
        outcome: "failed",
        details: { duration_ms: durationMs, code: failure.code, error: failure.userMessage, step },
      });
      await this.#finish(row, { state: "failed", error: failure.userMessage });
      return;
    }
    const safe = JSON.parse(deps.secrets.scrub(JSON.stringify(toJsonValue(result) ?? null)));
    let summary = "done";
    try {
      summary = op.describeResult?.(result as never) ?? "done";
    } catch (err) {
      deps.log.warn("describeResult failed", { action: row.action, error: err });
    }
    await this.#auditAfter({
      ...base,
      action: "op.succeeded",
      outcome: "succeeded",
      details: { duration_ms: durationMs, summary },
    });
    await this.#finish(row, { state: "succeeded", result: safe, summary: `${summary} (${durationMs} ms)` });
  }

  async #finish(
    row: RequestRow,
    end: { state: "succeeded" | "failed" | "stale"; result?: unknown; summary?: string; error?: string },
  ): Promise<void> {
    const done = await store.finishRequest(this.deps.state, row.id, this.instanceId, {
      ...end,
      error: end.error ? this.deps.secrets.scrub(end.error) : undefined,
      now: this.deps.now(),
    });
    if (!done) {
      this.deps.log.error("could not record the end of a run", { request: row.id, state: end.state });
    }
    this.deps.metrics.inc(
      "bisman_request_runs_total",
      { action: row.action, outcome: end.state },
      1,
      "Claimed requests by outcome",
    );
    await this.#refresh(row.id);
  }

  async #reconcile(r: RequestRow): Promise<ReconcileVerdict> {
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
      const v = await op.reconcile(r.plan, { ...this.deps, actor: r.requester_id });
      return { status: v.status, note: this.deps.secrets.scrub(v.note) };
    } catch (err) {
      return { status: "needs_human", note: `reconcile failed: ${this.#userError(err).userMessage}` };
    }
  }

  async #expired(r: RequestRow): Promise<void> {
    await this.#auditAfter({
      actor: SYSTEM_ACTOR,
      action: "request.expired",
      target: r.target ?? undefined,
      requestId: r.id,
      outcome: "expired",
      details: { expires_at: r.expires_at.toISOString() },
    });
    await this.#refresh(r.id);
  }

  /** Redraws request `id`'s message from its current row; edits of one request never overlap. */
  #refresh(id: number): Promise<void> {
    const prev = this.#edits.get(id) ?? Promise.resolve();
    const next = prev.then(async () => {
      const view = await this.#view(id);
      if (!view?.request.message_ts) return;
      await this.notifier.update(view);
    }).catch((err) =>
      this.deps.log.warn("could not update an approval message", { request: id, error: err })
    );
    this.#edits.set(id, next);
    void next.finally(() => {
      if (this.#edits.get(id) === next) this.#edits.delete(id);
    });
    return next;
  }

  #userError(err: unknown): OpsError {
    if (err instanceof OpsError) return err;
    const ref = crypto.randomUUID().slice(0, 8);
    this.deps.log.error("operation failed unexpectedly", { reference: ref, error: err });
    return asOpsError(err, ref);
  }

  /** Appends to the audit log; a failure is logged (used where the flow must go on). */
  async #audit(entry: Parameters<AppDeps["audit"]["append"]>[0]): Promise<void> {
    try {
      await this.deps.audit.append(entry);
    } catch (err) {
      this.deps.log.error("audit append failed", { action: entry.action, error: err });
    }
  }

  /** After an operation ran, its outcome must be recorded even if the first attempt fails. */
  async #auditAfter(entry: Parameters<AppDeps["audit"]["append"]>[0]): Promise<void> {
    for (let attempt = 1;; attempt++) {
      try {
        await this.deps.audit.append(entry);
        return;
      } catch (err) {
        if (attempt >= 3) {
          this.deps.log.error("audit append failed", { action: entry.action, error: err });
          return;
        }
        await new Promise((r) => setTimeout(r, 200 * attempt));
      }
    }
  }
}

const verdictWords: Record<ReconcileVerdict["status"], string> = {
  done: "it had completed",
  not_done: "it had not taken effect",
  needs_human: "a person must check",
};

function frozenError(f: FreezeState, action: string): OpsError {
  return new OpsError(
    "frozen",
    `Refused: ${
      describeFreeze(f)
    }. ${action} is not allowed during a freeze; \`/bisman unfreeze\` lifts it (needs approval)`,
  );
}

function reply(text: string): Reply {
  return { text, blocks: [{ type: "section", text: { type: "mrkdwn", text } }], visibility: "ephemeral" };
}
