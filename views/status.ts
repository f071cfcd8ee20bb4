/**
 * Block Kit for `/bisman status`.
 *
 * @module
 */

import type { Block, Reply } from "./reply.ts";
import type { MemberStatus } from "../ops/server_status.ts";
import { capBlocks, context, escapeMrkdwn, header, mrkdwnSection } from "./blocks.ts";

function memberLine(s: MemberStatus): string {
  if (!s.reachable) {
    return `:red_circle: *${s.member}* (${s.address}): does not answer: ${escapeMrkdwn(s.error ?? "")}`;
  }
  const mismatch = (s.configuredRole === "primary") !== (s.actualRole === "primary");
  const mark = mismatch ? ":large_yellow_circle:" : ":large_green_circle:";
  const note = mismatch ? ` _(configured as ${s.configuredRole})_` : "";
  return `${mark} *${s.member}* (${s.address}): ${s.actualRole}${note}, PostgreSQL ${s.serverVersion}, ${s.latencyMs} ms`;
}

/** One section per target. `extra` lines (freeze, Vault) come first. */
export function renderStatus(statuses: MemberStatus[], extra: string[] = []): Reply {
  const byTarget = new Map<string, MemberStatus[]>();
  for (const s of statuses) byTarget.set(s.target, [...(byTarget.get(s.target) ?? []), s]);
  const blocks: Block[] = [header("bisman-ops status")];
  if (extra.length) blocks.push(mrkdwnSection(extra.join("\n")));
  const text: string[] = [...extra];
  for (const [target, list] of byTarget) {
    blocks.push(mrkdwnSection(`*${target}*\n${list.map(memberLine).join("\n")}`));
    text.push(`${target}:`);
    for (const s of list) {
      text.push(
        s.reachable
          ? `  ${s.member} ${s.address} ${s.actualRole} PostgreSQL ${s.serverVersion}`
          : `  ${s.member} ${s.address} DOES NOT ANSWER: ${s.error}`,
      );
    }
  }
  blocks.push(context(`Checked ${new Date().toISOString()}`));
  return { text: text.join("\n"), blocks: capBlocks(blocks), visibility: "ephemeral" };
}
