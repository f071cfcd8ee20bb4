/**
 * The approval gate: no destructive operation runs without an eligible second person's click, and every
 * step is written to the audit log.
 *
 * Life cycle of a request (sql/0002_requests.sql):
 * `pending` -> (`denied` | `cancelled` | `expired`) or -> `running` -> (`succeeded` | `failed` | `stale`),
 * and `running` -> `interrupted` when the process running it died. `request()` plans and persists;
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
import type { AppDeps, Gate, GateRequest, RequestCreated } from "../core/deps.ts";
import { actorOf, checkWorkspace, type Invoker, isMember, requireOperator } from "../core/access.ts";
import { asOpsError, type ErrorCode } from "../core/errors.ts";
import { getOperation } from "../ops/registry.ts";
import * as store from "./store.ts";
import type { ApprovalRow, FreezeState, RequestRow, RequestState } from "./store.ts";
import { closedMessage, confirmTextOf, formatTime, gatePolicy } from "./hooks.ts";
import { auditQuietly, createRequest, frozenError } from "./request.ts";
import { checkRequestSeal, sealApproval, sealRequest } from "./seal.ts";
import {
  countsAsApproval,
  earlierEnd,
  gateKeys,
  recordTampering,
  requestProblem,
  sealOf,
  tamperedMessage,
} from "./integrity.ts";
import type { IntegrityKeys } from "../core/keys.ts";
import { within } from "../core/within.ts";
import {
  type ApprovalNotifier,
  auditAfter,
  executeClaimed,
  type GateRuntime,
  recoverOrphans,
  type RequestView,
  SYSTEM_ACTOR,
} from "./run.ts";

export { registerPlanNote, registerPrecondition } from "./hooks.ts";
export type { ApprovalNotifier, RequestView } from "./run.ts";
export type { GateContext, PlanNote, Precondition } from "./hooks.ts";

/** The outcome of a click: done, refused (shown to the clicker only), or "confirm" (ask for the typed name). */
export type Decision =
  | { status: "done"; message: string; state?: RequestState }
  | { status: "refused"; code: ErrorCode; message: string }
  | { status: "confirm"; expected: string; message: string };

/** What an approval carries besides who approves (see {@link ApprovalGate.approve}). */
export interface ApproveOptions {
  typed?: string;
  planHash?: string;
  backupFirst?: boolean;
  notAsShown?: (view: RequestView) => string | undefined;
}

/** Options of a gate. */
export interface GateOptions {
  /** This process's identity in `run_by` (default: a random UUID). */
  instanceId?: string;
  /** The state database URL for the liveness connection (default: `deps.env.databaseUrl`). */
  databaseUrl?: string;
  /** How often the liveness lock is re-asserted and running requests are heartbeated (ms). */
  heartbeatMs?: number;
}

/** The approval gate of one bot process. */
export class ApprovalGate implements Gate {
  readonly instanceId: string;
  #lockSql?: Sql;
  #lockKey?: number;
  #timers: ReturnType<typeof setInterval>[] = [];
  #inflight = new Set<Promise<unknown>>();
  #edits = new Map<number, Promise<void>>();
  #stopped = false;
  readonly #runtime: GateRuntime;
  readonly #keys: IntegrityKeys;

  constructor(
    private readonly deps: AppDeps,
    private readonly notifier: ApprovalNotifier,
    private readonly opts: GateOptions = {},
  ) {
    this.instanceId = opts.instanceId ?? crypto.randomUUID();
    this.#keys = gateKeys(deps);
    this.#runtime = {
      deps,
      instanceId: this.instanceId,
      notifier,
      refresh: (id) => this.#refresh(id),
      view: (id) => this.#view(id),
      running: new Map(),
    };
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
      () => this.#track(this.sweep().then(() => this.remind()).then(() => this.recoverInterrupted())),
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

  /** Decisions and the operations they started still running (bot.ts' idle memory reclaim waits for none). */
  get running(): number {
    return this.#inflight.size;
  }

  /** Resolves when background work (recovery, sweeps, message edits) has finished, or after `timeoutMs`. */
  async idle(timeoutMs = 30_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while ((this.#inflight.size || this.#edits.size) && Date.now() < deadline) {
      await within(Promise.allSettled([...this.#inflight, ...this.#edits.values()]), deadline - Date.now());
    }
  }

  /**
   * Runs a decision (and the operation it may start) as work in flight, so stop() and idle() wait for it
   * and a test that saw the state change also sees the message edit that follows.
   */
  async #busy<T>(fn: () => Promise<T>): Promise<T> {
    const p = fn();
    this.#inflight.add(p);
    try {
      return await p;
    } finally {
      this.#inflight.delete(p);
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
    // A stop asked for on another replica reaches the run here.
    if (this.#runtime.running.size) {
      for (const id of await store.stopsRequested(this.deps.state, this.instanceId)) {
        this.#runtime.running.get(id)?.abort();
      }
    }
  }

  /** Creates a request: checks, plan, persist, post the approval message; returns the asker's answer. */
  async request(req: GateRequest): Promise<RequestCreated> {
    return await createRequest(this.#runtime, req);
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
   * @param opts.backupFirst the backup step as the clicked message showed it; a mismatch is refused
   * @param opts.notAsShown checks what the approver was shown against the request's current view (the Slack
   *   click handler: the clicked message must be the bot's drawing of it); what it returns is refused
   */
  approve(id: number, inv: Invoker, opts: ApproveOptions = {}): Promise<Decision> {
    return this.#busy(() => this.#approve(id, inv, opts));
  }

  async #approve(id: number, inv: Invoker, opts: ApproveOptions): Promise<Decision> {
    const { deps } = this;
    const pre = await this.#precheck(id, inv, "approve");
    if ("refused" in pre) return pre.refused;
    const { row } = pre;
    if (!opts.planHash) {
      return await this.#refuse(
        row,
        inv,
        "invalid_input",
        `This approval of #${id} names no plan: approve from the request's message, or with the plan hash you read`,
      );
    }
    if (opts.planHash !== row.plan_hash) {
      return await this.#refuse(
        row,
        inv,
        "state_changed",
        `This button belongs to another plan than request #${id}'s`,
      );
    }
    if (opts.backupFirst !== undefined && row.pre_backup !== null && opts.backupFirst !== row.pre_backup) {
      return await this.#refuse(
        row,
        inv,
        "state_changed",
        `The backup step of request #${id} was ${
          row.pre_backup ? "kept" : "dropped"
        } since you looked: look at the message again and approve`,
      );
    }
    if (opts.notAsShown) {
      const view = await this.#view(id);
      const differs = view ? opts.notAsShown(view) : undefined;
      if (differs) {
        return await this.#refuse(
          row,
          inv,
          "state_changed",
          `Not approved: the message you clicked does not show request #${id} as the bot drew it (${differs}). ` +
            "Nothing changed; someone holding the bot's Slack token may have edited or copied it. Approve from " +
            `the request's own message, or read it with \`deno task ops approve ${id}\``,
        );
      }
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
    const now = new Date(Math.floor(deps.now().getTime()));
    const added = await store.addApproval(deps.state, id, {
      id: inv.userId,
      name: inv.userName,
      planHash: opts.planHash,
      seal: sealApproval(this.#keys, {
        requestId: id,
        approver: inv.userId,
        at: now,
        planHash: opts.planHash,
        requestMac: sealOf(row).mac,
      }),
    }, now);
    if (added === "closed") {
      const fresh = (await store.getRequest(deps.state, id))!;
      return await this.#refuse(fresh, inv, "approval_closed", closedMessage(fresh));
    }
    const approvals = await store.listApprovals(deps.state, id);
    // Only approvals the bot sealed, for this plan, by someone other than the requester, count.
    const counted = approvals.filter((a) => this.#counts(row, a));
    const forged = approvals.filter((a) => !counted.includes(a));
    if (forged.length) {
      return await this.#tampered(
        row,
        inv,
        `approval(s) by ${
          forged.map((a) => a.approver).join(", ")
        } were not recorded by the bot for this plan`,
        "approve",
      );
    }
    if (added === "added") {
      await deps.audit.append({
        actor: actorOf(inv),
        actorName: inv.userName,
        action: "request.approved",
        target: row.target ?? undefined,
        requestId: id,
        outcome: "ok",
        details: {
          approvals: counted.length,
          needed: row.approvals_needed,
          typed_confirmation: !!opts.typed,
          plan_hash: opts.planHash,
        },
      });
    }
    if (counted.length >= row.approvals_needed) {
      const ended = await earlierEnd(deps, id);
      if (ended) {
        return await this.#tampered(
          row,
          inv,
          `${ended.why}, yet its state says ${row.state}`,
          "claim",
        );
      }
      const claimed = await store.claimRequest(deps.state, id, {
        instance: this.instanceId,
        by: inv.userId,
        byName: inv.userName,
        now: deps.now(),
        approvers: counted.map((a) => a.approver),
        needed: row.approvals_needed,
      });
      if (claimed) {
        await executeClaimed(this.#runtime, claimed, inv);
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
      message: `Approval recorded for #${id}: ${counted.length} of ${row.approvals_needed}`,
      state: "pending",
    };
  }

  /** Denies request `id` with a reason (eligible approvers only). */
  deny(id: number, inv: Invoker, reason: string): Promise<Decision> {
    return this.#busy(() => this.#deny(id, inv, reason));
  }

  async #deny(id: number, inv: Invoker, reason: string): Promise<Decision> {
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

  /**
   * Withdraws a pending request, or asks a running one to stop when its operation stops safely (its
   * requester, or any operator).
   */
  cancel(id: number, inv: Invoker): Promise<Decision> {
    return this.#busy(() => this.#cancel(id, inv));
  }

  async #cancel(id: number, inv: Invoker): Promise<Decision> {
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
    if (row.state === "running") return await this.#stop(row, inv);
    const closed = await store.closePending(deps.state, id, {
      state: "cancelled",
      now: deps.now(),
      by: inv.userId,
      byName: inv.userName,
    });
    if (!closed) {
      const fresh = (await store.getRequest(deps.state, id))!;
      if (fresh.state === "running") return await this.#stop(fresh, inv);
      return await this.#refuse(fresh, inv, "approval_closed", closedMessage(fresh));
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

  /**
   * Asks a running request to stop. Only operations that stop safely (`cancellable`) accept it: the
   * instance running it aborts the run's signal (at once when that is this process, else on its next
   * heartbeat), the operation cleans up, and the request ends `cancelled` with how far it got. Others say
   * why they cannot stop.
   */
  async #stop(row: RequestRow, inv: Invoker): Promise<Decision> {
    const { deps } = this;
    const op = getOperation(row.action);
    if (!op?.cancellable) {
      return await this.#refuse(
        row,
        inv,
        "conflict",
        `Request #${row.id} (${row.action}) is running and cannot stop safely mid-way: it runs to its end`,
      );
    }
    const asked = await store.requestStop(deps.state, row.id, {
      id: inv.userId,
      name: inv.userName,
      now: deps.now(),
    });
    if (!asked) {
      const fresh = (await store.getRequest(deps.state, row.id))!;
      const msg = fresh.state === "running"
        ? `Request #${row.id} is already stopping (asked by ${
          fresh.cancel_requested_by_name ?? fresh.cancel_requested_by
        })`
        : closedMessage(fresh);
      return await this.#refuse(fresh, inv, "approval_closed", msg);
    }
    await deps.audit.append({
      actor: actorOf(inv),
      actorName: inv.userName,
      action: "request.stop_requested",
      target: row.target ?? undefined,
      requestId: row.id,
      outcome: "ok",
      details: { action: row.action, run_by: row.run_by },
    });
    this.#runtime.running.get(row.id)?.abort();
    await this.#refresh(row.id);
    return { status: "done", message: `Request #${row.id} is stopping`, state: "running" };
  }

  /**
   * Keeps or drops the "take a backup first" step of a pending request (its requester or an eligible
   * approver). Audited; the message is redrawn, and an Approve click made on the old drawing is refused.
   */
  setBackupFirst(id: number, inv: Invoker, keep: boolean): Promise<Decision> {
    return this.#busy(async () => {
      const { deps } = this;
      const row = await store.getRequest(deps.state, id);
      if (!row) return await this.#refuse(undefined, inv, "invalid_input", `There is no request #${id}`, id);
      try {
        checkWorkspace(deps.config, inv);
        if (inv.userId !== row.requester_id) {
          const policy = gatePolicy(deps.config, row.action);
          if (!(await isMember(policy.approvers, inv.userId, deps.groupMembers))) {
            return await this.#refuse(
              row,
              inv,
              "not_permitted",
              `Only the requester or an approver of ${row.action} may change its backup step`,
            );
          }
        }
      } catch (err) {
        return await this.#refuse(row, inv, asOpsError(err).code, asOpsError(err).userMessage);
      }
      let problem: string | undefined;
      const changed = await store.setPreBackup(deps.state, id, keep, (current) => {
        const check = checkRequestSeal(this.#keys, current);
        if (!check.ok) {
          problem = check.problem;
          throw new Error(check.problem);
        }
        return sealRequest(this.#keys, { ...current, pre_backup: keep });
      }).catch((err) => {
        if (problem) return undefined;
        throw err;
      });
      if (problem) return await this.#tampered(row, inv, problem, "approve");
      if (!changed) {
        const fresh = (await store.getRequest(deps.state, id))!;
        return await this.#refuse(
          fresh,
          inv,
          "approval_closed",
          fresh.state === "pending" ? `Request #${id} offers no backup step` : closedMessage(fresh),
        );
      }
      await deps.audit.append({
        actor: actorOf(inv),
        actorName: inv.userName,
        action: keep ? "request.backup_first_kept" : "request.backup_first_dropped",
        target: row.target ?? undefined,
        requestId: id,
        outcome: "ok",
      });
      await this.#refresh(id);
      return {
        status: "done",
        message: `Request #${id}: the backup step is ${keep ? "kept" : "dropped"}`,
        state: "pending",
      };
    });
  }

  /**
   * Sends the one reminder of every pending request past two thirds of its time to expiry, in its thread
   * (mentioning its approvers again). Claimed with a conditional UPDATE, so several replicas sweeping at
   * once still send each reminder once. Returns how many this call sent.
   */
  async remind(): Promise<number> {
    const due = await store.claimReminders(this.deps.state, this.deps.now());
    for (const r of due) {
      const view = await this.#view(r.id);
      if (!view?.request.message_ts) continue;
      const left = Math.max(1, Math.round((r.expires_at.getTime() - this.deps.now().getTime()) / 60_000));
      try {
        await this.notifier.remind?.(view, left);
      } catch (err) {
        this.deps.log.warn("could not post an approval reminder", { request: r.id, error: err });
      }
      await auditQuietly(this.deps, {
        actor: SYSTEM_ACTOR,
        action: "request.reminded",
        target: r.target ?? undefined,
        requestId: r.id,
        outcome: "ok",
        details: { minutes_left: left },
      });
    }
    return due.length;
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
    return await recoverOrphans(this.#runtime);
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
    const approvals = await store.listApprovals(this.deps.state, id);
    return {
      request,
      approvals,
      cancellable: getOperation(request.action)?.cancellable === true,
      // A row that is not the bot's is never drawn as a plan to approve.
      tampered: request.state === "pending" ? await this.#problemOf(request, approvals) : undefined,
    };
  }

  /** What makes a pending request not the bot's: its own seal, or an approval the bot did not seal. */
  async #problemOf(request: RequestRow, approvals: ApprovalRow[]): Promise<string | undefined> {
    const own = await requestProblem(this.#keys, request);
    if (own) return own;
    const forged = approvals.filter((a) => !this.#counts(request, a));
    return forged.length
      ? `approval(s) by ${
        forged.map((a) => a.approver).join(", ")
      } were not recorded by the bot for this plan`
      : undefined;
  }

  /** Whether an approval counts: sealed by the bot, for this plan, by someone other than the requester. */
  #counts(row: RequestRow, a: ApprovalRow): boolean {
    return countsAsApproval(this.#keys, row, a);
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
    const sealed = checkRequestSeal(this.#keys, row);
    if (!sealed.ok && sealed.retired) {
      // Made before the signing key was rotated (or re-sealed with the old key): refused, not alarmed.
      return await refused(
        row,
        "approval_closed",
        `Request #${id} was sealed with a signing key that has been retired since: ${sealed.problem}. Request it again`,
      );
    }
    const problem = await requestProblem(this.#keys, row);
    if (problem) return { refused: await this.#tampered(row, inv, problem, kind) };
    // `state` is a plain column: a request set back to pending is named here, before anything else.
    const ended = await earlierEnd(deps, id);
    if (ended) {
      const why = `${ended.why}, yet its state says ${row.state}`;
      return { refused: await this.#tampered(row, inv, why, kind) };
    }
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
    await auditQuietly(this.deps, {
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

  /**
   * Refuses a request that is not what the bot wrote: records `plan_tampered` (audit log, the target's
   * security_events), tells the channel once, and answers the clicker.
   */
  async #tampered(
    row: RequestRow,
    inv: Invoker,
    problem: string,
    phase: "approve" | "deny" | "claim",
  ): Promise<Decision> {
    await recordTampering(this.deps, row, problem, { actor: actorOf(inv), actorName: inv.userName, phase });
    const message = tamperedMessage(row, problem);
    const view = await this.#view(row.id);
    if (view?.request.message_ts) {
      await this.notifier.announce(view, `:rotating_light: ${message}`).catch((err) =>
        this.deps.log.warn("could not announce a tampered request", { request: row.id, error: err })
      );
    }
    await this.#refresh(row.id);
    return { status: "refused", code: "plan_tampered", message };
  }

  async #expired(r: RequestRow): Promise<void> {
    await auditAfter(this.deps, {
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
}
