/**
 * Creating a request: the checks (workspace, operator, channel, arguments, freeze, preconditions), the
 * operation's plan, the stored row, its audit entries and the approval message. The asker gets a Reply.
 *
 * @module
 */

import type { AppDeps, GateRequest, RequestCreated } from "../core/deps.ts";
import { actorOf, checkWorkspace, requireOperator } from "../core/access.ts";
import { InvalidInput, NotPermitted, OpsError } from "../core/errors.ts";
import { getOperation } from "../ops/registry.ts";
import type { OpDeps } from "../ops/types.ts";
import * as store from "./store.ts";
import type { FreezeState } from "./store.ts";
import {
  checkPreconditions,
  collectPlanNotes,
  describeFreeze,
  gatePolicy,
  planHashOf,
  toJsonValue,
} from "./hooks.ts";
import { BACKUP_FIRST_ACTIONS, type GateRuntime } from "./run.ts";
import { sealRequest } from "./seal.ts";
import { gateKeys } from "./integrity.ts";
import { backupFirstNotes, planBackupFirst, recordBackupFirstPlan } from "./backup_first.ts";
import { own } from "../core/lookup.ts";

/**
 * Plans and persists a destructive request and posts its approval message.
 * @throws {OpsError} (audited as `request.refused`) when a check refuses or the plan cannot be made
 */
export async function createRequest(rt: GateRuntime, req: GateRequest): Promise<RequestCreated> {
  const { deps } = rt;
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
        `${op.name} may only be requested in ${policy.channels.map((c) => `<#${c}>`).join(", ")}: ask there`,
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
    const backupFirst = await planBackupFirst(opDeps, offersBackupFirst(deps, op.name, target), target);
    const notes = [...await collectPlanNotes(ctx), ...backupFirstNotes(backupFirst)];

    const now = deps.now();
    const keys = gateKeys(deps);
    const fields = {
      id: await store.nextRequestId(deps.state),
      action: op.name,
      target: target ?? null,
      args: toJsonValue(parsed.data) as Record<string, unknown>,
      plan,
      plan_hash: await planHashOf(plan),
      notes,
      approvals_needed: policy.approvals,
      policy,
      requester_id: inv.userId,
      via: inv.via,
      // Millisecond precision, as the row will hand them back.
      created_at: new Date(Math.floor(now.getTime())),
      expires_at: new Date(Math.floor(now.getTime()) + policy.expiry_minutes * 60_000),
      pre_backup: backupFirst.preBackup ?? null,
    };
    const row = await store.insertRequest(deps.state, {
      id: fields.id,
      action: fields.action,
      target,
      args: fields.args,
      plan,
      planHash: fields.plan_hash,
      notes,
      requesterId: inv.userId,
      requesterName: inv.userName,
      via: inv.via,
      askedIn: inv.channelId,
      approvalsNeeded: fields.approvals_needed,
      policy,
      createdAt: fields.created_at,
      expiresAt: fields.expires_at,
      preBackup: fields.pre_backup ?? undefined,
      seal: sealRequest(keys, fields),
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
    await recordBackupFirstPlan(deps, base, backupFirst);
    deps.metrics.inc("bisman_requests_total", { action: op.name }, 1, "Destructive requests created");

    const where = req.thread
      ? { channel: req.thread.channel, threadTs: req.thread.ts }
      : { channel: deps.config.slack.ops_channel };
    const created: RequestCreated = {
      id: row.id,
      summary: plan.summary,
      planHash: row.plan_hash,
      expiresAt: row.expires_at,
      approvalsNeeded: row.approvals_needed,
    };
    try {
      const posted = await rt.notifier.post({ request: row, approvals: [] }, where);
      await store.setMessage(deps.state, row.id, { ...posted, threadTs: where.threadTs });
    } catch (err) {
      deps.log.error("could not post the approval message", { request: row.id, error: err });
      return created;
    }
    return { ...created, postedIn: where.channel };
  } catch (err) {
    if (err instanceof OpsError) {
      await auditQuietly(deps, {
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
 * Whether a request's plan offers "take a backup first": promote and roles apply do, when the target has a
 * backup source and this build has backup_now. The approver keeps or drops the step before approving.
 */
export function offersBackupFirst(deps: Pick<AppDeps, "config">, action: string, target?: string): boolean {
  if (!BACKUP_FIRST_ACTIONS.has(action) || !target || !getOperation("backup_now")) return false;
  const b = own(deps.config.targets, target)?.backups;
  return !!(b?.pgbackrest || b?.dump_folder);
}

export function frozenError(f: FreezeState, action: string): OpsError {
  return new OpsError(
    "frozen",
    `Refused: ${
      describeFreeze(f)
    }. ${action} is not allowed during a freeze; \`/bisman unfreeze\` lifts it (needs approval)`,
  );
}

/** Appends to the audit log; a failure is logged, not thrown (a refusal must still reach the asker). */
export async function auditQuietly(
  deps: Pick<AppDeps, "audit" | "log">,
  entry: Parameters<AppDeps["audit"]["append"]>[0],
): Promise<void> {
  try {
    await deps.audit.append(entry);
  } catch (err) {
    deps.log.error("audit append failed", { action: entry.action, error: err });
  }
}
