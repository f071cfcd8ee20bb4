/**
 * Block Kit for `/bisman audit`: the matching audit_logs_dml rows as a compact monospace table, newest
 * first, within Slack's limits (3,000 characters a section, 50 blocks). Under each row its data as the
 * search returned it, already redacted (sensitive columns show the mark): the changed values of an UPDATE,
 * the row of an INSERT or DELETE. Rows that do not fit are counted, with a hint to narrow, and the whole
 * result can come as a CSV ({@link auditSearchCsv}).
 *
 * @module
 */

import type { Block, Reply } from "./reply.ts";
import type { AuditRowView, AuditSearchResult } from "../ops/audit_search.ts";
import { capBlocks, context, escapeMrkdwn, header, LIMITS, mrkdwnSection, truncate } from "./blocks.ts";
import { toCsv } from "./csv.ts";

/** Most table sections one message carries (each up to ~2,900 characters), leaving room for the rest. */
const MAX_TABLE_SECTIONS = 40;

/** Makes a database value safe inside a Slack code block: no backticks, no newlines, mrkdwn escaped. */
function cell(v: string | null | undefined, width: number): string {
  const s = (v ?? "-").replace(/`/g, "'").replace(/\s+/g, " ");
  return escapeMrkdwn(truncate(s, width)).padEnd(width);
}

/** One row of the table. */
export function auditRowLine(r: AuditRowView): string {
  const when = r.occurredAt.replace("T", " ").replace(/\.\d{3}Z$/, "");
  const what = `${r.table}${r.rowId ? `#${r.rowId}` : ""}`;
  const who = r.sessionUser !== r.dbUser ? `${r.dbUser}(${r.sessionUser})` : r.dbUser;
  const ctx = r.appUserId || r.serviceName ? `${r.appUserId ?? "-"}/${r.serviceName ?? "-"}` : "NO CONTEXT";
  const changed = r.changed.length ? ` [${truncate(r.changed.join(","), 40)}]` : "";
  return `${when} ${cell(r.action, 6)} ${cell(what, 26)} ${cell(who, 16)} ${cell(ctx, 22)} ${
    cell(r.clientAddr, 15)
  }${escapeMrkdwn(changed.replace(/`/g, "'"))}`;
}

/** A value in a data line: JSON, cut short. */
function short(v: unknown): string {
  const s = typeof v === "string" ? v : JSON.stringify(v);
  return truncate(s ?? "null", 40);
}

/** The row data under a row: `col: old -> new` for an UPDATE, `+{...}`/`-{...}` for an INSERT/DELETE. */
export function auditDataLine(r: AuditRowView): string | undefined {
  let text: string | undefined;
  if (r.action === "UPDATE" && (r.oldData || r.newData)) {
    const cols = [...new Set([...Object.keys(r.oldData ?? {}), ...Object.keys(r.newData ?? {})])];
    if (cols.length) {
      text = cols.map((c) => `${c}: ${short(r.oldData?.[c])} \u2192 ${short(r.newData?.[c])}`).join("; ");
    }
  } else if (r.action === "INSERT" && r.newData) {
    text = `+${Object.entries(r.newData).map(([k, v]) => `${k}=${short(v)}`).join(", ")}`;
  } else if (r.action === "DELETE" && r.oldData) {
    text = `-${Object.entries(r.oldData).map(([k, v]) => `${k}=${short(v)}`).join(", ")}`;
  }
  if (!text) return undefined;
  return `    ${escapeMrkdwn(truncate(text.replace(/`/g, "'").replace(/\s+/g, " "), 220))}`;
}

/** The whole search result as CSV, row data (redacted) as JSON columns. */
export function auditSearchCsv(r: AuditSearchResult): string {
  return toCsv(
    [
      "id",
      "occurred_at",
      "table",
      "action",
      "row_id",
      "db_user",
      "session_user",
      "app_user_id",
      "service_name",
      "client_addr",
      "application_name",
      "changed",
      "old_data",
      "new_data",
      "query",
    ],
    r.rows.map((x) => [
      x.id,
      x.occurredAt,
      x.table,
      x.action,
      x.rowId,
      x.dbUser,
      x.sessionUser,
      x.appUserId,
      x.serviceName,
      x.clientAddr,
      x.applicationName,
      x.changed.join(" "),
      x.oldData,
      x.newData,
      x.query,
    ]),
  );
}

const HEAD = `${"time (UTC)".padEnd(19)} ${"action".padEnd(6)} ${"table#row".padEnd(26)} ${
  "db user".padEnd(16)
} ${"app user/service".padEnd(22)} ${"client".padEnd(15)}`;

function filtersLine(r: AuditSearchResult): string {
  const f = Object.entries(r.filters).map(([k, v]) => `${k}=${v}`);
  return [...f, `since ${r.since}`, ...(r.until ? [`until ${r.until}`] : [])].join(", ");
}

/** `/bisman audit`. `opts.file` says where the whole result went as CSV. */
export function renderAuditSearch(r: AuditSearchResult, opts: { file?: string } = {}): Reply {
  const blocks: Block[] = [
    header(`Audit: ${r.target}`),
    mrkdwnSection(
      `*${r.rows.length}* row(s) from audit_logs_dml on *${escapeMrkdwn(r.member)}* (${
        escapeMrkdwn(filtersLine(r))
      }), ${r.ms} ms` + (r.note ? `\n:warning: ${escapeMrkdwn(r.note)}` : ""),
    ),
  ];
  const lines = r.rows.map((x) => {
    const data = auditDataLine(x);
    return data ? `${auditRowLine(x)}\n${data}` : auditRowLine(x);
  });
  const budget = LIMITS.sectionText - 10; // the code fences
  const sections: string[][] = [];
  let cur: string[] = [HEAD];
  let size = HEAD.length;
  let shown = 0;
  for (const l of lines) {
    if (size + l.length + 1 > budget) {
      if (sections.length + 1 >= MAX_TABLE_SECTIONS) break;
      sections.push(cur);
      cur = [];
      size = 0;
    }
    cur.push(l);
    size += l.length + 1;
    shown++;
  }
  if (cur.length) sections.push(cur);
  if (r.rows.length) {
    for (const s of sections) blocks.push(mrkdwnSection("```" + s.join("\n") + "```"));
  } else blocks.push(mrkdwnSection("No rows match."));
  const notShown = r.rows.length - shown + r.more;
  if (notShown > 0) {
    blocks.push(
      context(
        `${notShown}${
          r.moreCapped ? "+" : ""
        } more row(s); narrow the search (table=, user=, app_user=, service=, ` +
          `action=, address=, since=) or raise limit= (at most 200)`,
      ),
    );
  }
  if (opts.file) {
    blocks.push(context(`All ${r.rows.length} row(s) with their data are in ${escapeMrkdwn(opts.file)}`));
  }
  const text = [
    `audit ${r.target} (${r.member}; ${filtersLine(r)}): ${r.rows.length} row(s)`,
    HEAD,
    ...r.rows.slice(0, shown).map((x) =>
      [auditRowLine(x), auditDataLine(x)].filter(Boolean).join("\n").replace(/&lt;/g, "<").replace(
        /&gt;/g,
        ">",
      )
        .replace(/&amp;/g, "&")
    ),
    ...(notShown > 0 ? [`${notShown}${r.moreCapped ? "+" : ""} more rows; narrow the search`] : []),
  ].join("\n");
  return { text: truncate(text, 38_000), blocks: capBlocks(blocks), visibility: "ephemeral" };
}
