/**
 * Small Block Kit builders that keep within Slack's documented limits
 * (https://api.slack.com/reference/block-kit/blocks): section text 3,000 characters, header 150, field 2,000,
 * 10 fields a section, 50 blocks a message.
 *
 * @module
 */

import type { Block } from "./reply.ts";

export const LIMITS = {
  sectionText: 3000,
  headerText: 150,
  field: 2000,
  fields: 10,
  blocks: 50,
  buttonText: 75,
};

/** Cuts `s` to `max` characters, marking the cut. */
export function truncate(s: string, max: number): string {
  return s.length <= max ? s : `${s.slice(0, Math.max(0, max - 1))}…`;
}

/** Escapes the three characters Slack's mrkdwn treats as control characters. */
export function escapeMrkdwn(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

export function mrkdwnSection(text: string): Block {
  return { type: "section", text: { type: "mrkdwn", text: truncate(text, LIMITS.sectionText) } };
}

export function header(text: string): Block {
  return { type: "header", text: { type: "plain_text", text: truncate(text, LIMITS.headerText) } };
}

export function context(text: string): Block {
  return { type: "context", elements: [{ type: "mrkdwn", text: truncate(text, LIMITS.sectionText) }] };
}

export function fieldsSection(fields: string[]): Block[] {
  const out: Block[] = [];
  for (let i = 0; i < fields.length; i += LIMITS.fields) {
    out.push({
      type: "section",
      fields: fields.slice(i, i + LIMITS.fields).map((f) => ({
        type: "mrkdwn",
        text: truncate(f, LIMITS.field),
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
    const piece = truncate(l, max);
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
    context(`…${blocks.length - LIMITS.blocks + 1} more blocks: ${note}`),
  ];
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
