/**
 * Small Block Kit builders that keep within Slack's documented limits
 * (https://api.slack.com/reference/block-kit/blocks): section text 3,000 characters, header 150, field 2,000,
 * 10 fields a section, 50 blocks a message.
 *
 * @module
 */

import type { Block, Reply } from "./reply.ts";

export const LIMITS = {
  sectionText: 3000,
  headerText: 150,
  field: 2000,
  fields: 10,
  blocks: 50,
  buttonText: 75,
};

/** Cuts plain text `s` to `max` characters, marking the cut (never half an emoji's surrogate pair). */
export function truncate(s: string, max: number): string {
  if (s.length <= max) return s;
  let cut = s.slice(0, Math.max(0, max - 1));
  if (/[\uD800-\uDBFF]$/.test(cut)) cut = cut.slice(0, -1);
  return `${cut}\u2026`;
}

/**
 * Cuts mrkdwn `s` to `max` characters without breaking what Slack parses: a cut never lands inside a `<...>`
 * link, mention or date (the whole of it goes), inside an `&amp;`/`&lt;`/`&gt;` entity, or inside an emoji's
 * surrogate pair, and a ``` code block the cut leaves open is closed again.
 *
 * @example
 * truncateMrkdwn("see <https://example.com/a|the runbook> now", 12); // "see " and an ellipsis (U+2026)
 */
export function truncateMrkdwn(s: string, max: number): string {
  if (s.length <= max) return s;
  let room = Math.max(0, max - 1); // the ellipsis
  for (;;) {
    let cut = s.slice(0, room);
    const lt = cut.lastIndexOf("<");
    if (lt > cut.lastIndexOf(">")) cut = cut.slice(0, lt);
    const entity = /&[a-zA-Z#0-9]{0,6}$/.exec(cut);
    if (entity) cut = cut.slice(0, entity.index);
    if (/[\uD800-\uDBFF]$/.test(cut)) cut = cut.slice(0, -1);
    const open = (cut.match(/```/g) ?? []).length % 2 === 1;
    if (!open) return `${cut}\u2026`;
    if (cut.length + 4 <= max) return `${cut}\u2026\`\`\``;
    room = max - 4; // make room for the closing fence and cut again
  }
}

/** Escapes the three characters Slack's mrkdwn treats as control characters. */
export function escapeMrkdwn(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

export function mrkdwnSection(text: string): Block {
  return { type: "section", text: { type: "mrkdwn", text: truncateMrkdwn(text, LIMITS.sectionText) } };
}

export function header(text: string): Block {
  return { type: "header", text: { type: "plain_text", text: truncate(text, LIMITS.headerText) } };
}

export function context(text: string): Block {
  return { type: "context", elements: [{ type: "mrkdwn", text: truncateMrkdwn(text, LIMITS.sectionText) }] };
}

export function fieldsSection(fields: string[]): Block[] {
  const out: Block[] = [];
  for (let i = 0; i < fields.length; i += LIMITS.fields) {
    out.push({
      type: "section",
      fields: fields.slice(i, i + LIMITS.fields).map((f) => ({
        type: "mrkdwn",
        text: truncateMrkdwn(f, LIMITS.field),
      })),
    });
  }
  return out;
}

/** Groups lines into chunks of at most `max` characters (joined by newlines), for several sections. */
export function chunkLines(lines: string[], max = LIMITS.sectionText - 100): string[] {
  const chunks: string[] = [];
  let cur = "";
  for (const l of lines) {
    const piece = truncateMrkdwn(l, max);
    if (cur && cur.length + 1 + piece.length > max) {
      chunks.push(cur);
      cur = piece;
    } else cur = cur ? `${cur}\n${piece}` : piece;
  }
  if (cur) chunks.push(cur);
  return chunks;
}

/** Keeps a message within 50 blocks: the last kept block says how many were left out. */
export function capBlocks(blocks: Block[], note = "more in the thread or the CLI"): Block[] {
  if (blocks.length <= LIMITS.blocks) return blocks;
  return [
    ...blocks.slice(0, LIMITS.blocks - 1),
    context(`\u2026${blocks.length - LIMITS.blocks + 1} more blocks: ${note}`),
  ];
}

/** Most characters of a message's `text` the bot sends: chat.update and chat.postEphemeral refuse more than
 * 40,000 (msg_too_long), chat.postMessage truncates. */
export const SLACK_TEXT_MAX = 39_000;

/**
 * A reply as the bot sends it to Slack: its text within {@link SLACK_TEXT_MAX}, cut at a line where it can,
 * saying how much was left out (the CLI prints the whole text: replies keep it, only Slack's copy is cut).
 * Every path that sends a Reply to Slack goes through this.
 */
export function slackMessage(reply: Pick<Reply, "text" | "blocks">): { text: string; blocks?: Block[] } {
  return { text: slackText(reply.text), ...(reply.blocks ? { blocks: reply.blocks } : {}) };
}

/** `text` within {@link SLACK_TEXT_MAX}; see {@link slackMessage}. */
export function slackText(text: string): string {
  if (text.length <= SLACK_TEXT_MAX) return text;
  const note = (n: number) =>
    `\n\u2026 ${n} more characters not shown: narrow the request, or run it from the CLI`;
  const budget = SLACK_TEXT_MAX - note(text.length).length;
  const line = text.lastIndexOf("\n", budget);
  const head = line > budget / 2 ? text.slice(0, line) : truncateMrkdwn(text, budget);
  return `${head}${note(text.length - head.length)}`;
}

/** A status word with its emoji: ok / warning / critical / unknown. */
export function statusMark(s: "ok" | "warning" | "critical" | "unknown"): string {
  return {
    ok: ":large_green_circle: ok",
    warning: ":large_yellow_circle: warning",
    critical: ":red_circle: critical",
    unknown: ":white_circle: could not check",
  }[s];
}
