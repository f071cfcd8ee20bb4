/**
 * Block Kit for `/bisman requests`: one line per request with its state, action, target, requester,
 * approvals so far, age and a link to its approval message.
 *
 * @module
 */

import type { Block, Reply } from "./reply.ts";
import type { RequestRow } from "../gate/store.ts";
import { humanAge } from "../ops/_findings.ts";
import { chunkLines, context, escapeMrkdwn, header, mrkdwnSection, truncate } from "./blocks.ts";

/** One request as the list shows it. */
export interface RequestListItem {
  request: RequestRow;
  approvals: number;
  permalink?: string;
}

const stateMark: Record<RequestRow["state"], string> = {
  pending: ":raised_hand:",
  approved: ":white_check_mark:",
  running: ":gear:",
  succeeded: ":white_check_mark:",
  failed: ":x:",
  denied: ":no_entry_sign:",
  expired: ":alarm_clock:",
  interrupted: ":rotating_light:",
  cancelled: ":heavy_multiplication_x:",
  stale: ":warning:",
};

function mention(id: string): string {
  return /^[UW][A-Z0-9]+$/.test(id) ? `<@${id}>` : escapeMrkdwn(id);
}

/** One line of the list (mrkdwn). */
export function requestLine(i: RequestListItem, now: Date): string {
  const r = i.request;
  const age = humanAge(now.getTime() - new Date(r.created_at).getTime());
  const link = i.permalink ? ` · <${i.permalink}|message>` : "";
  return `${stateMark[r.state]} *#${r.id}* ${r.state} · \`${escapeMrkdwn(r.action)}\`${
    r.target ? ` on ${escapeMrkdwn(r.target)}` : ""
  } · by ${
    mention(r.requester_id)
  } · ${i.approvals} of ${r.approvals_needed} approval(s) · ${age} old${link}\n` +
    `      ${escapeMrkdwn(truncate(r.plan.summary ?? "", 200))}`;
}

/** `/bisman requests`. */
export function renderRequestList(
  items: RequestListItem[],
  what: { scope: "pending" | "mine" | "all"; since: Date; limit: number },
  now: Date,
): Reply {
  const title = { pending: "Pending requests", mine: "Your requests", all: "All requests" }[what.scope];
  const blocks: Block[] = [
    header(`${title} since ${what.since.toISOString().slice(0, 16).replace("T", " ")} UTC`),
  ];
  if (!items.length) blocks.push(mrkdwnSection("None."));
  for (const chunk of chunkLines(items.map((i) => requestLine(i, now))).slice(0, 45)) {
    blocks.push(mrkdwnSection(chunk));
  }
  if (items.length >= what.limit) {
    blocks.push(context(`Showing the newest ${what.limit}: narrow with since=, or use limit= (at most 100)`));
  }
  const text = [
    `${title}: ${items.length}`,
    ...items.map((i) => {
      const r = i.request;
      return `#${r.id} ${r.state} ${r.action}${
        r.target ? ` on ${r.target}` : ""
      } by ${r.requester_id}, ${i.approvals}/${r.approvals_needed} approvals, ${
        humanAge(now.getTime() - new Date(r.created_at).getTime())
      } old${i.permalink ? ` ${i.permalink}` : ""}`;
    }),
  ].join("\n");
  return { text: truncate(text, 38_000), blocks, visibility: "ephemeral" };
}
