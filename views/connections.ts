/**
 * Block Kit for `/bisman connections` (counts by user, application, client and state, and the
 * idle-in-transaction sessions of the leak check) and `/bisman slow-queries`.
 *
 * @module
 */

import type { Block, Reply } from "./reply.ts";
import type { Breakdown, ConnectionsReport, IdleSession } from "../ops/connections.ts";
import type { SlowQueriesReport } from "../ops/slow_queries.ts";
import { formatSeconds } from "../ops/replication_lag.ts";
import {
  capBlocks,
  chunkLines,
  context,
  escapeMrkdwn,
  fieldsSection,
  header,
  mrkdwnSection,
  statusMark,
  truncate,
} from "./blocks.ts";

function breakdownField(title: string, list: Breakdown[]): string {
  const lines = list.slice(0, 8).map((b) => `${b.count} ${escapeMrkdwn(truncate(b.value || "(none)", 40))}`);
  if (list.length > 8) lines.push(`\u2026 ${list.length - 8} more`);
  return `*${title}*\n${lines.join("\n") || "none"}`;
}

/** One line per idle-in-transaction session: the identity the terminate button acts on, and its age. */
export function sessionLine(s: IdleSession): string {
  return `pid ${s.pid} (started ${s.backendStart}) ${escapeMrkdwn(s.user ?? "?")}@${
    escapeMrkdwn(s.database ?? "?")
  }, ` +
    `app "${escapeMrkdwn(truncate(s.application || "(none)", 40))}", client ${
      escapeMrkdwn(s.clientAddr ?? "local socket")
    }, ` +
    `${s.state} for *${formatSeconds(s.idleSeconds)}*: \`${
      escapeMrkdwn(truncate(s.query.replace(/\s+/g, " "), 80))
    }\``;
}

/** `/bisman connections`. */
export function renderConnections(r: ConnectionsReport): Reply {
  const blocks: Block[] = [
    header(`Connections: ${r.target}`),
    mrkdwnSection(
      `${
        statusMark(r.severity)
      } *${r.total}* of max_connections *${r.maxConnections}* in use (${r.percent}%), ` +
        `${r.reservedForSuperuser} reserved for superusers` +
        (r.reasons.length ? `\n${r.reasons.map((x) => `\u2022 ${escapeMrkdwn(x)}`).join("\n")}` : ""),
    ),
    ...fieldsSection([
      breakdownField("By user", r.byUser),
      breakdownField("By application", r.byApplication),
      breakdownField("By client address", r.byClient),
      breakdownField("By state", r.byState),
    ]),
  ];
  const leakIds = new Set(r.leaks.map((s) => s.pid));
  if (r.idleInTransaction.length) {
    blocks.push(
      mrkdwnSection(
        `*Idle in transaction* (connection-leak check, limit ${r.leakMinutes} min): ${r.idleInTransaction.length} session(s), ${r.leaks.length} over the limit`,
      ),
    );
    const lines = r.idleInTransaction.map((s) =>
      `${leakIds.has(s.pid) ? ":warning: " : ""}${sessionLine(s)}`
    );
    for (const chunk of chunkLines(lines).slice(0, 10)) blocks.push(mrkdwnSection(chunk));
  } else {
    blocks.push(mrkdwnSection("*Idle in transaction*: none (no connection leak)"));
  }
  blocks.push(context(`Checked ${r.checkedAt}`));
  const text = [
    `${r.target}: ${r.total}/${r.maxConnections} connections (${r.percent}%), ${r.severity}`,
    ...r.reasons.map((x) => `  - ${x}`),
    ...r.idleInTransaction.map((s) =>
      `  idle in transaction: pid ${s.pid} started ${s.backendStart} ${s.user}@${s.database} app ${s.application} client ${s.clientAddr} for ${
        formatSeconds(s.idleSeconds)
      }`
    ),
  ].join("\n");
  return { text, blocks: capBlocks(blocks), visibility: "ephemeral" };
}

const ms = (v: number) => (v >= 1000 ? `${(v / 1000).toFixed(2)} s` : `${v.toFixed(1)} ms`);

/** `/bisman slow-queries`. */
export function renderSlowQueries(r: SlowQueriesReport): Reply {
  const blocks: Block[] = [
    header(`Slow queries: ${r.target}`),
    mrkdwnSection(
      `${statusMark(r.severity)} ${r.overThreshold} statement(s) with a mean over ${
        ms(r.thresholdMs)
      }; the ${r.queries.length} slowest by mean time:`,
    ),
  ];
  r.queries.forEach((q, i) => {
    blocks.push(
      mrkdwnSection(
        `${q.severity === "warning" ? ":warning: " : ""}*${i + 1}.* mean *${
          ms(q.meanMs)
        }*, ${q.calls} call(s), total ${ms(q.totalMs)}, ` +
          `${q.rows} row(s), ${escapeMrkdwn(q.user ?? "?")}@${escapeMrkdwn(q.database ?? "?")}\n\`\`\`${
            escapeMrkdwn(truncate(q.query.replace(/```/g, "'''"), 300))
          }\`\`\``,
      ),
    );
  });
  if (!r.queries.length) blocks.push(mrkdwnSection("_No statements recorded since the last reset._"));
  blocks.push(context(`Statistics since ${r.statsReset ?? "the server started"}. Checked ${r.checkedAt}`));
  const text = [
    `${r.target}: ${r.overThreshold} statement(s) with a mean over ${ms(r.thresholdMs)}`,
    ...r.queries.map((q, i) =>
      `  ${i + 1}. mean ${ms(q.meanMs)} calls ${q.calls} total ${ms(q.totalMs)}: ${
        q.query.replace(/\s+/g, " ").slice(0, 120)
      }`
    ),
  ].join("\n");
  return { text, blocks: capBlocks(blocks), visibility: "ephemeral" };
}
