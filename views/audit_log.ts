/**
 * Block Kit for `/bisman audit-log`: search results of the bot's own audit log (one line per row, newest
 * first), the CSV of a result too long for a message, and the anchor line the anchor job posts.
 *
 * @module
 */

import type { Block, Reply } from "./reply.ts";
import { type Anchor, AUDIT_COLUMNS, type AuditRow } from "../core/audit.ts";
import { toCsv } from "./csv.ts";
import { context, escapeMrkdwn, header, LIMITS, mrkdwnSection, truncate } from "./blocks.ts";

/** Rows shown in the message itself; more go to the CSV. */
export const AUDIT_LOG_ROWS_SHOWN = 40;

/** One row as a line of plain text. */
export function auditLogLine(r: AuditRow): string {
  const at = r.at.replace("T", " ").replace(/\.\d{3}Z$/, "Z");
  const details = JSON.stringify(r.details ?? {});
  return `#${r.seq} ${at} ${r.actor}${r.actor_name ? ` (${r.actor_name})` : ""} ${r.action}${
    r.target ? ` ${r.target}` : ""
  }${r.request_id !== null ? ` req#${r.request_id}` : ""} ${r.outcome} ${truncate(details, 160)}`;
}

/** The search result as CSV: every column, details as JSON. */
export function auditLogCsv(rows: AuditRow[]): string {
  return toCsv([...AUDIT_COLUMNS], rows.map((r) => AUDIT_COLUMNS.map((c) => r[c])));
}

/** `/bisman audit-log` search. `file` says where the full result went when it did not fit. */
export function renderAuditLogSearch(
  rows: AuditRow[],
  filters: string,
  opts: { limit: number; file?: string; all?: boolean },
): Reply {
  const shown = opts.all ? rows : rows.slice(0, AUDIT_LOG_ROWS_SHOWN);
  const blocks: Block[] = [
    header("bisman-ops audit log"),
    mrkdwnSection(`*${rows.length}* row(s), newest first${filters ? ` (${escapeMrkdwn(filters)})` : ""}`),
  ];
  let chunk: string[] = [];
  let size = 0;
  const flush = () => {
    if (chunk.length) blocks.push(mrkdwnSection("```" + chunk.join("\n") + "```"));
    chunk = [];
    size = 0;
  };
  for (const r of shown) {
    const l = escapeMrkdwn(auditLogLine(r).replace(/`/g, "'"));
    if (size + l.length + 1 > LIMITS.sectionText - 10) flush();
    chunk.push(l);
    size += l.length + 1;
    if (blocks.length >= 45) break;
  }
  flush();
  if (!rows.length) blocks.push(mrkdwnSection("No rows match."));
  if (rows.length > shown.length) {
    blocks.push(
      context(
        opts.file
          ? `${rows.length - shown.length} more row(s): all ${rows.length} are in ${escapeMrkdwn(opts.file)}`
          : `${
            rows.length - shown.length
          } more row(s): narrow the search (actor=, action=, target=, request=, since=)`,
      ),
    );
  }
  if (rows.length >= opts.limit) {
    blocks.push(context(`Stopped at limit=${opts.limit}: narrow the search or raise limit= (at most 5000)`));
  }
  const text = [
    `audit log: ${rows.length} row(s)${filters ? ` (${filters})` : ""}`,
    ...shown.map(auditLogLine),
    ...(rows.length > shown.length
      ? [`${rows.length - shown.length} more: ${opts.file ?? "narrow the search"}`]
      : []),
  ].join("\n");
  return { text: truncate(text, 38_000), blocks, visibility: "ephemeral" };
}

/** The anchor message: the chain's head, to be kept where the database's superusers cannot edit it. */
export function renderAnchor(head: Anchor | undefined, at: Date): Reply {
  if (!head) {
    const text = ":anchor: Audit log anchor: the log is empty";
    return { text, blocks: [mrkdwnSection(text)] };
  }
  const text =
    `:anchor: Audit log anchor ${at.toISOString().slice(0, 16).replace("T", " ")} UTC: row ${head.seq}, ` +
    `hash ${head.hash}. Check it later with \`/bisman audit-log verify anchor=${head.seq}:${head.hash}\``;
  return {
    text,
    blocks: [
      mrkdwnSection(`:anchor: *Audit log anchor*: row *${head.seq}*, hash \`${head.hash}\``),
      context(
        `If rows up to ${head.seq} are ever deleted or rewritten, \`/bisman audit-log verify anchor=${head.seq}:${head.hash}\` ` +
          `(or \`deno task ops audit-log verify --anchor ${head.seq}:${head.hash}\`) says so.`,
      ),
    ],
  };
}
