/**
 * Block Kit for `/bisman checklist`: the seed's three lists, each item with its status, its evidence and
 * the command that shows more; attestation buttons where the database cannot tell, and the runbook's
 * buttons for incident response.
 *
 * @module
 */

import type { Button } from "@slack/types";
import type { Block, Reply } from "./reply.ts";
import type { Checklist, ChecklistItem, ItemGroup, ItemStatus } from "./checklist_model.ts";
import { BUTTONS } from "../core/runbook_buttons.ts";
import { checklistButtonId, encodeAttestButton, encodeRunbookButton, JOB_ACTIONS } from "./actions.ts";
import {
  capBlocks,
  context,
  escapeMrkdwn,
  header,
  LIMITS,
  mrkdwnSection,
  truncate,
  truncateMrkdwn,
} from "./blocks.ts";

const mark: Record<ItemStatus, string> = {
  pass: ":white_check_mark: pass",
  fail: ":x: fail",
  warning: ":warning: warning",
  not_configured: ":heavy_minus_sign: not configured",
  unknown: ":white_circle: could not check",
  attestation_needed: ":memo: could not check: attestation needed",
  runbook: ":blue_book:",
};

const groupTitle: Record<ItemGroup, string> = {
  pre_production: "Pre-production",
  ongoing: "Ongoing",
  incident_response: "Incident response",
};

function itemText(i: ChecklistItem): string {
  const lines = i.evidence.slice(0, 8).map((e) => `      ${escapeMrkdwn(truncate(e, 300))}`);
  if (i.evidence.length > 8) lines.push(`      \u2026${i.evidence.length - 8} more`);
  const more = i.command ? `\n      more: \`${i.command}\`` : "";
  const status = i.status === "runbook" ? mark.runbook : mark[i.status];
  return truncateMrkdwn(
    `${status} *${escapeMrkdwn(i.title)}*\n${lines.join("\n")}${more}`,
    LIMITS.sectionText,
  );
}

function button(
  text: string,
  actionId: string,
  value: string,
  style?: "primary" | "danger",
): Button {
  return {
    type: "button",
    text: { type: "plain_text", text: truncate(text, LIMITS.buttonText) },
    action_id: actionId,
    value,
    ...(style ? { style } : {}),
  };
}

/** Counts by status, in words ("11 pass, 2 fail, ..."). */
export function checklistCounts(c: Checklist): string {
  const counts = new Map<ItemStatus, number>();
  for (const i of c.items) if (i.status !== "runbook") counts.set(i.status, (counts.get(i.status) ?? 0) + 1);
  const words: [ItemStatus, string][] = [
    ["pass", "pass"],
    ["fail", "fail"],
    ["warning", "warning"],
    ["not_configured", "not configured"],
    ["unknown", "could not check"],
    ["attestation_needed", "attestation needed"],
  ];
  return words.filter(([s]) => counts.get(s)).map(([s, w]) => `${counts.get(s)} ${w}`).join(", ");
}

/** The checklist of one target. */
export function renderChecklist(c: Checklist): Reply {
  const blocks: Block[] = [
    header(`Checklist: ${c.target}`),
    context(
      `${checklistCounts(c)} · evaluated ${c.checkedAt.toISOString().slice(0, 16).replace("T", " ")} UTC`,
    ),
  ];
  for (const group of ["pre_production", "ongoing", "incident_response"] as const) {
    blocks.push(mrkdwnSection(`*${groupTitle[group]}*`));
    for (const i of c.items.filter((x) => x.group === group)) {
      blocks.push(mrkdwnSection(itemText(i)));
      if (i.attest && i.status !== "pass") {
        blocks.push({
          type: "actions",
          block_id: `checklist.${c.target}.${i.key}.attest`,
          elements: i.attest.mechanisms.slice(0, 5).map((m, n) =>
            button(
              i.attest!.item === "waf_rules" ? "Confirm: WAF rules deployed" : `Attest: ${m}`,
              checklistButtonId(JOB_ACTIONS.attest, n),
              encodeAttestButton({ target: c.target, item: i.attest!.item, mechanism: m }),
            )
          ),
        });
      }
      if (i.buttons?.length) {
        blocks.push({
          type: "actions",
          block_id: `checklist.${c.target}.${i.key}.runbook`,
          elements: i.buttons.slice(0, 5).map((k, n) =>
            button(
              BUTTONS[k].label,
              checklistButtonId(JOB_ACTIONS.runbook, n),
              encodeRunbookButton({ target: c.target, key: k }),
              BUTTONS[k].kind === "gated" ? "danger" : undefined,
            )
          ),
        });
      }
    }
  }
  blocks.push(context("Buttons that change state ask for approval first; attestations record who and when."));
  const text = [
    `Checklist ${c.target}: ${checklistCounts(c)}`,
    ...c.items.map((i) =>
      `  [${i.status}] ${i.title}${i.evidence.length ? `: ${i.evidence[0]}` : ""}${
        i.command ? ` (${i.command})` : ""
      }`
    ),
  ].join("\n");
  return { text: truncate(text, 3000), blocks: capBlocks(blocks), visibility: "ephemeral" };
}
