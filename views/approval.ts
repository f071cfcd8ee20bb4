/**
 * Block Kit for an approval request: the message in the ops channel (drawn again at every transition),
 * the deny-reason modal and the typed-confirmation modal. Within Slack's limits: 50 blocks, 3,000
 * characters a section, 75 a button.
 *
 * @module
 */

import type { ModalView } from "@slack/types";
import type { Block, Reply } from "./reply.ts";
import type { RequestCreated } from "../core/deps.ts";
import type { RequestView } from "../gate/gate.ts";
import type { RequestRow } from "../gate/store.ts";
import { formatTime } from "../gate/hooks.ts";
import {
  ACTIONS,
  actionsBlockId,
  encodeModalMetadata,
  encodeRequestButton,
  INPUTS,
  type ModalMetadata,
  VIEWS,
} from "./actions.ts";
import {
  chunkLines,
  context,
  escapeMrkdwn,
  fieldsSection,
  header,
  LIMITS,
  mrkdwnSection,
  truncate,
} from "./blocks.ts";

const stateHeader: Record<RequestRow["state"], string> = {
  pending: ":raised_hand: Approval needed",
  approved: ":white_check_mark: Approved",
  running: ":gear: Running",
  succeeded: ":white_check_mark: Succeeded",
  failed: ":x: Failed",
  denied: ":no_entry_sign: Denied",
  expired: ":alarm_clock: Expired",
  interrupted: ":rotating_light: Interrupted",
  cancelled: ":heavy_multiplication_x: Cancelled",
  stale: ":warning: Not run: state changed",
};

/** `<!date^...>` renders in each reader's time zone; the fallback is UTC. */
function slackDate(d: Date): string {
  return `<!date^${Math.floor(d.getTime() / 1000)}^{date_short_pretty} {time}|${formatTime(d)}>`;
}

function mention(id: string | null | undefined): string {
  if (!id) return "someone";
  return /^[UW][A-Z0-9]+$/.test(id) ? `<@${id}>` : escapeMrkdwn(id);
}

/** One line that says where the request stands (the part that changes at every transition). */
export function stateLine(v: RequestView): string {
  const r = v.request;
  const by = mention(r.decided_by);
  const approvers = v.approvals.map((a) => mention(a.approver)).join(", ");
  switch (r.state) {
    case "pending":
      return `*Waiting for approval*: ${v.approvals.length} of ${r.approvals_needed}` +
        (approvers ? ` (approved by ${approvers})` : "") + `. Expires ${slackDate(r.expires_at)}.`;
    case "approved":
    case "running": {
      const stopping = r.cancel_requested_at
        ? ` *Stopping*: asked by ${mention(r.cancel_requested_by)}.`
        : "";
      const progress = r.progress ? `\n${escapeMrkdwn(r.progress)}` : "";
      return `*Running*: approved by ${approvers || by}, started ${
        r.started_at ? slackDate(r.started_at) : "now"
      }.${stopping}${progress}`;
    }
    case "succeeded":
      // An operation that only handed work to a person did not do it: the card must not say it succeeded.
      return handedToPerson(r)
        ? `*Handed to a person*: ${escapeMrkdwn(r.summary ?? "")}. Approved by ${approvers || by}.`
        : `*Succeeded*: ${escapeMrkdwn(r.summary ?? "done")}. Approved by ${approvers || by}.`;
    case "failed":
      return `*Failed*: ${escapeMrkdwn(r.error ?? "unknown error")}. Approved by ${approvers || by}.`;
    case "denied":
      return `*Denied* by ${by}: ${escapeMrkdwn(r.deny_reason ?? "")}`;
    case "expired":
      return `*Expired* at ${
        slackDate(r.expires_at)
      } without enough approvals: request it again if still needed.`;
    case "cancelled":
      return r.started_at
        ? `*Stopped* while running: ${escapeMrkdwn(r.summary ?? r.error ?? "")}`
        : `*Cancelled* by ${by}.`;
    case "stale":
      return `*Not run*: ${
        escapeMrkdwn(r.error ?? "the state changed")
      }. Nothing was changed; a fresh request ` +
        `(and a fresh approval) is needed.`;
    case "interrupted": {
      const rec = r.reconcile
        ? ` Reconcile: *${r.reconcile.status.replace("_", " ")}*: ${escapeMrkdwn(r.reconcile.note)}`
        : " Reconcile is running\u2026";
      return `*Interrupted*: the bot stopped while this ran.${rec}`;
    }
  }
}

/**
 * The eligible approvers of a request as Slack mentions (`<@U...>`, `<!subteam^S...>`), the requester left
 * out: the approval message pings them once when posted, and the one reminder once more.
 */
export function approverMentions(r: RequestRow): string {
  const p = r.policy.approvers ?? { users: [], groups: [] };
  const users = (p.users ?? []).filter((u) => u !== r.requester_id && /^[UW][A-Z0-9]+$/.test(u));
  const groups = (p.groups ?? []).filter((g) => /^S[A-Z0-9]+$/.test(g));
  return [...users.map((u) => `<@${u}>`), ...groups.map((g) => `<!subteam^${g}>`)].join(" ");
}

/** The reminder posted in a request's thread when two thirds of its time to expiry have passed. */
export function renderReminder(v: RequestView, minutesLeft: number): { text: string; blocks: Block[] } {
  const r = v.request;
  const who = approverMentions(r);
  const text = `:bell: ${who ? `${who}: ` : ""}request #${r.id} (${r.action}${
    r.target ? ` on ${r.target}` : ""
  }) still needs ${
    r.approvals_needed - v.approvals.length
  } approval(s); it expires in about ${minutesLeft} min`;
  return { text, blocks: [mrkdwnSection(text)] };
}

/** The plain-text fallback (notifications, screen readers, the CLI): complete on its own. */
export function approvalText(v: RequestView): string {
  const r = v.request;
  const on = r.target ? ` on ${r.target}` : "";
  const stateWord: Record<RequestRow["state"], string> = {
    pending: `waiting for approval (${v.approvals.length} of ${r.approvals_needed})`,
    approved: "approved",
    running: "running",
    succeeded: handedToPerson(r)
      ? `handed to a person: ${r.summary ?? ""}`
      : `succeeded: ${r.summary ?? "done"}`,
    failed: `failed: ${r.error ?? ""}`,
    denied: `denied by ${r.decided_by_name ?? r.decided_by}: ${r.deny_reason ?? ""}`,
    expired: "expired",
    cancelled: r.started_at ? `stopped while running: ${r.summary ?? r.error ?? ""}` : "cancelled",
    stale: `not run: ${r.error ?? "the state changed"}`,
    interrupted: `interrupted${r.reconcile ? `; reconcile: ${r.reconcile.status}: ${r.reconcile.note}` : ""}`,
  };
  return truncate(`Request #${r.id} (${r.action}${on}) ${stateWord[r.state]}. Plan: ${r.plan.summary}`, 3000);
}

/** True when a run ended by handing its work to a person (its result says `outcome: "handed_to_person"`). */
function handedToPerson(r: RequestRow): boolean {
  return r.state === "succeeded" &&
    (r.result as { outcome?: unknown } | null)?.outcome === "handed_to_person";
}

/** The approval message for the request's current state; buttons only while it is pending. */
export function renderApproval(v: RequestView): { text: string; blocks: Block[] } {
  if (v.tampered) return renderTampered(v, v.tampered);
  const r = v.request;
  const p = r.plan;
  const head: Block[] = [
    header(
      `${handedToPerson(r) ? ":raising_hand: Handed to a person" : stateHeader[r.state]}: ${r.action}${
        r.target ? ` on ${r.target}` : ""
      }`,
    ),
    mrkdwnSection(`*${escapeMrkdwn(p.summary)}*`),
    ...fieldsSection([
      `*Requester*\n${mention(r.requester_id)}`,
      `*Target*\n${escapeMrkdwn(r.target ?? "(none)")}`,
      `*Request*\n#${r.id} · plan \`${r.plan_hash}\``,
      `*Approvals*\n${v.approvals.length} of ${r.approvals_needed}`,
    ]),
  ];
  // Warnings come before the steps: an approver must not miss them in a long plan.
  const warnings = chunkLines((p.warnings ?? []).map((w) => `:warning: ${escapeMrkdwn(w)}`)).slice(0, 3)
    .map(mrkdwnSection);
  const extras: Block[] = [];
  if (p.verify?.length) {
    extras.push(
      mrkdwnSection(`*Verified afterwards*\n${p.verify.map((s) => `\u2022 ${escapeMrkdwn(s)}`).join("\n")}`),
    );
  }
  if (p.undo?.length) {
    extras.push(
      mrkdwnSection(`*If a step fails*\n${p.undo.map((s) => `\u2022 ${escapeMrkdwn(s)}`).join("\n")}`),
    );
  }
  if (r.notes.length) extras.push(context(r.notes.map(escapeMrkdwn).join("\n")));
  const numbered = p.steps.map((s, i) => `${i + 1}. ${escapeMrkdwn(s)}`);
  const steps = chunkLines(numbered).map((chunk, i) =>
    mrkdwnSection(`${i === 0 ? "*Steps*\n" : ""}${chunk}`)
  );
  const blocks: Block[] = [...head, ...warnings];
  const tail: Block[] = [];
  if (r.pre_backup !== null && r.pre_backup !== undefined) tail.push(...backupFirstBlocks(r));
  tail.push(mrkdwnSection(stateLine(v)));
  if (r.state === "pending") {
    const mentions = approverMentions(r);
    if (mentions) tail.push(context(`Approvers: ${mentions}`));
  }
  if (r.state === "running" && !r.cancel_requested_at) {
    const value = encodeRequestButton({ request: r.id, plan: r.plan_hash });
    tail.push(
      v.cancellable
        ? {
          type: "actions",
          block_id: actionsBlockId(r.id),
          elements: [{
            type: "button",
            action_id: ACTIONS.cancel,
            text: { type: "plain_text", text: "Stop" },
            style: "danger",
            value,
            confirm: {
              title: { type: "plain_text", text: "Stop this run?" },
              text: {
                type: "plain_text",
                text: `${r.action} stops at a safe point and cleans up after itself.`,
              },
              confirm: { type: "plain_text", text: "Stop" },
              deny: { type: "plain_text", text: "Back" },
            },
          }],
        }
        : context(`${escapeMrkdwn(r.action)} cannot stop safely mid-way: it runs to its end.`),
    );
  }
  if (r.state === "pending") {
    const value = encodeRequestButton({
      request: r.id,
      plan: r.plan_hash,
      ...(r.pre_backup === null || r.pre_backup === undefined ? {} : { backup: r.pre_backup }),
    });
    const typed = r.policy.typed_confirmation;
    tail.push({
      type: "actions",
      block_id: actionsBlockId(r.id),
      elements: [
        {
          type: "button",
          action_id: ACTIONS.approve,
          text: { type: "plain_text", text: "Approve" },
          style: "primary",
          value,
          confirm: {
            title: { type: "plain_text", text: "Approve this plan?" },
            text: {
              type: "plain_text",
              text: truncate(
                `${r.action}${r.target ? ` on ${r.target}` : ""} (plan ${r.plan_hash}) runs as soon as ` +
                  `${r.approvals_needed === 1 ? "you approve" : "enough approvers agree"}.` +
                  (typed ? ` You will type ${r.target ?? r.action} to confirm.` : ""),
                300,
              ),
            },
            confirm: { type: "plain_text", text: "Approve" },
            deny: { type: "plain_text", text: "Back" },
          },
        },
        {
          type: "button",
          action_id: ACTIONS.deny,
          text: { type: "plain_text", text: "Deny" },
          style: "danger",
          value,
        },
        {
          type: "button",
          action_id: ACTIONS.cancel,
          text: { type: "plain_text", text: "Cancel request" },
          value,
        },
      ],
    });
  }
  const extra = [
    `Requested ${slackDate(r.created_at)} via ${r.via}${r.asked_in ? ` in <#${r.asked_in}>` : ""}`,
    r.policy.typed_confirmation ? "typed confirmation required" : undefined,
    r.policy.allowed_during_freeze ? "allowed during a freeze" : undefined,
  ].filter(Boolean).join(" · ");
  tail.push(context(extra));
  // Only the steps give way when the message would pass 50 blocks; state and buttons always stay.
  const budget = LIMITS.blocks - blocks.length - extras.length - tail.length;
  const shown = steps.length <= budget ? steps : [
    ...steps.slice(0, Math.max(0, budget - 1)),
    context(`\u2026${steps.length - budget + 1} more sections of steps: the whole plan is in the audit log`),
  ];
  return { text: approvalText(v), blocks: [...blocks, ...shown, ...extras, ...tail] };
}

/**
 * The texts a message shows, in order: headers, sections (text and fields), context elements and the confirm
 * dialogs of buttons. What an approver reads before clicking, taken from a message as Slack hands it back in
 * a click's payload. Pure; anything that is not a block list gives none.
 */
export function blockTexts(blocks: unknown): string[] {
  if (!Array.isArray(blocks)) return [];
  const out: string[] = [];
  const add = (t: unknown) => {
    const text = (t as { text?: unknown } | null | undefined)?.text;
    if (typeof text === "string") out.push(text);
  };
  const list = (v: unknown): unknown[] => Array.isArray(v) ? v : [];
  for (
    const b of blocks as ({ type?: unknown; text?: unknown; fields?: unknown; elements?: unknown } | null)[]
  ) {
    if (!b || typeof b !== "object") continue;
    add(b.text);
    for (const f of list(b.fields)) add(f);
    for (const e of list(b.elements) as ({ confirm?: { title?: unknown; text?: unknown } } | null)[]) {
      if (b.type === "context") add(e);
      if (e?.confirm) {
        add(e.confirm.title);
        add(e.confirm.text);
      }
    }
  }
  return out;
}

/**
 * The texts of a pending request's approval message that say what would run (header, summary, target,
 * request and plan hash, warnings, steps, checks, undo, notes, backup step, the Approve dialog), leaving out
 * those that change while it waits (approvals so far, the state line, the approvers' mentions). A click on a
 * message that lacks any of them was made on something other than the bot's drawing of this request.
 */
export function approvalPlanTexts(v: RequestView): string[] {
  const waiting = stateLine(v);
  return blockTexts(renderApproval(v).blocks).filter((t) =>
    t !== waiting && !t.startsWith("*Approvals*\n") && !t.startsWith("Approvers: ")
  );
}

/** The offered "take a backup first" step: kept or dropped, with its toggle while the request is pending. */
function backupFirstBlocks(r: RequestRow): Block[] {
  const kept = r.pre_backup === true;
  const line = kept
    ? `*Step 0, take a backup first*: kept. A \`backup_now\` of ${
      escapeMrkdwn(r.target ?? "the target")
    } runs before the steps below; if it fails, nothing else runs. If the primary no longer answers ` +
      `as a writable primary by then, the step is skipped and the reason recorded.`
    : `*Step 0, take a backup first*: dropped; the steps below run without a fresh backup.`;
  if (r.state !== "pending") return [context(line)];
  return [mrkdwnSection(line), {
    type: "actions",
    block_id: `${actionsBlockId(r.id)}.backup`,
    elements: [{
      type: "button",
      action_id: ACTIONS.backupFirst,
      text: { type: "plain_text", text: kept ? "Drop the backup step" : "Keep the backup step" },
      value: encodeRequestButton({ request: r.id, plan: r.plan_hash, backup: !kept }),
    }],
  }];
}

/**
 * A modal's title: Slack allows 24 characters (https://docs.slack.dev/reference/views/modal-views), which
 * "Approve request #" and a large request id pass; the shorter form is used then.
 */
function modalTitle(verb: "Approve" | "Deny", id: number): string {
  const long = `${verb} request #${id}`;
  return long.length <= 24 ? long : truncate(`${verb} #${id}`, 24);
}

/** The modal that asks a denier for the reason. */
export function renderDenyModal(meta: ModalMetadata, v: RequestView): ModalView {
  const r = v.request;
  return {
    type: "modal",
    callback_id: VIEWS.denyReason,
    private_metadata: encodeModalMetadata(meta),
    title: { type: "plain_text", text: modalTitle("Deny", r.id) },
    submit: { type: "plain_text", text: "Deny" },
    close: { type: "plain_text", text: "Back" },
    blocks: [
      mrkdwnSection(`*${escapeMrkdwn(r.plan.summary)}*\nRequested by ${mention(r.requester_id)}`),
      {
        type: "input",
        block_id: INPUTS.reason.block,
        label: { type: "plain_text", text: "Why is it denied?" },
        element: {
          type: "plain_text_input",
          action_id: INPUTS.reason.action,
          multiline: true,
          min_length: 3,
          max_length: 500,
        },
      },
    ],
  };
}

/** The modal where an approver types the target's name before the approval counts. */
export function renderTypedConfirmationModal(meta: ModalMetadata, v: RequestView): ModalView {
  const r = v.request;
  const expected = meta.expected ?? r.target ?? r.action;
  return {
    type: "modal",
    callback_id: VIEWS.typedConfirmation,
    private_metadata: encodeModalMetadata(meta),
    title: { type: "plain_text", text: modalTitle("Approve", r.id) },
    submit: { type: "plain_text", text: "Approve" },
    close: { type: "plain_text", text: "Back" },
    blocks: [
      mrkdwnSection(
        `*${escapeMrkdwn(r.plan.summary)}*\nPlan \`${r.plan_hash}\`, requested by ${
          mention(r.requester_id)
        }.\n` +
          `Type *${escapeMrkdwn(expected)}* to approve.`,
      ),
      {
        type: "input",
        block_id: INPUTS.typed.block,
        label: { type: "plain_text", text: `Type ${truncate(expected, 100)} to confirm` },
        element: { type: "plain_text_input", action_id: INPUTS.typed.action, max_length: 200 },
      },
    ],
  };
}

/**
 * The asker's answer once a request is recorded: where it waits and for how many approvers, or that its
 * approval message could not be posted (so nobody can approve it from Slack).
 */
export function renderRequestCreated(r: RequestCreated): Reply {
  const text = r.postedIn
    ? `:memo: Request #${r.id} waits for ${
      r.approvalsNeeded === 1 ? "an approver" : `${r.approvalsNeeded} approvers`
    } in <#${r.postedIn}>: ${r.summary} (plan ${r.planHash}, expires ${formatTime(r.expiresAt)})`
    : `:warning: Request #${r.id} (${r.summary}) was recorded, but its approval message could not be ` +
      `posted, so nobody can approve it from Slack; it expires at ${formatTime(r.expiresAt)}`;
  return { text, blocks: [mrkdwnSection(text)], visibility: "ephemeral" };
}

/**
 * A pending request whose row is not what the bot wrote: never drawn as a plan to approve (its plan, target
 * and summary may be the forger's), no buttons; only its number and what does not match.
 */
function renderTampered(v: RequestView, problem: string): { text: string; blocks: Block[] } {
  const text =
    `:rotating_light: Request #${v.request.id} was altered in the state database after the bot made ` +
    `it: ${problem}. It will not run; request it again`;
  return {
    text,
    blocks: [header(`Altered: request #${v.request.id}`), mrkdwnSection(escapeMrkdwn(text))],
  };
}
