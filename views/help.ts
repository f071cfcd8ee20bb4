/**
 * Block Kit for help text.
 *
 * @module
 */

import type { Block, Reply } from "./reply.ts";
import { capBlocks, chunkLines, mrkdwnSection } from "./blocks.ts";

/** What help shows of a subcommand (commands/types.ts `Subcommand` has these fields). */
export interface HelpEntry {
  readonly usage: string;
  readonly summary: string;
  readonly examples: readonly string[];
  readonly access: "anyone" | "operator";
  readonly destructive?: boolean;
}

function line(s: HelpEntry): string {
  const tag = s.destructive ? " _(needs approval)_" : s.access === "operator" ? " _(operators)_" : "";
  return `\`${s.usage}\`: ${s.summary}${tag}\n      e.g. \`${s.examples[0]}\``;
}

/** Every subcommand, in sections that respect Slack's 3,000-character limit. */
export function renderHelp(all: readonly HelpEntry[]): Reply {
  const lines = all.map(line);
  const blocks: Block[] = capBlocks([
    { type: "header", text: { type: "plain_text", text: "bisman-ops: PostgreSQL runbook commands" } },
    ...chunkLines(lines, 2800).map(mrkdwnSection),
    {
      type: "context",
      elements: [{ type: "mrkdwn", text: "`/bisman help <subcommand>` shows one in detail." }],
    },
  ], "`/bisman help <subcommand>` shows each one");
  const text = [
    "bisman-ops subcommands:",
    ...all.map((s) => `  ${s.usage}  ${s.summary}  (e.g. ${s.examples[0]})`),
  ]
    .join("\n");
  return { text, blocks, visibility: "ephemeral" };
}

/** One subcommand with all its examples. */
export function renderHelpOne(s: HelpEntry): Reply {
  const access = s.destructive
    ? "Destructive: creates an approval request; runs after an eligible second person approves."
    : s.access === "operator"
    ? "Operators only."
    : "Anyone in the ops channels.";
  const text = [`${s.usage}`, s.summary, access, "Examples:", ...s.examples.map((e) => `  ${e}`)].join("\n");
  return {
    text,
    blocks: [
      mrkdwnSection(`*\`${s.usage}\`*\n${s.summary}\n_${access}_`),
      mrkdwnSection(`*Examples*\n${s.examples.map((e) => `\`${e}\``).join("\n")}`),
    ],
    visibility: "ephemeral",
  };
}
