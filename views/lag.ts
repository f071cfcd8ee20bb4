/**
 * Block Kit for `/bisman lag`: per replica, the judged lag in bytes and seconds, the walsender's and the
 * replica's own view, and why it is ok, a warning or critical.
 *
 * @module
 */

import type { Block, Reply } from "./reply.ts";
import { formatBytes, formatSeconds, type LagReport, type ReplicaLag } from "../ops/replication_lag.ts";
import { capBlocks, context, escapeMrkdwn, header, mrkdwnSection, statusMark } from "./blocks.ts";

function replicaText(r: ReplicaLag): string {
  const lines = [
    `${statusMark(r.severity)} *${escapeMrkdwn(r.replica)}* (${escapeMrkdwn(r.address)}): ` +
    `*${formatBytes(r.lagBytes)}* and *${formatSeconds(r.lagSeconds)}* behind`,
  ];
  const s = r.sender;
  if (s) {
    lines.push(
      `primary sees: ${escapeMrkdwn(s.state ?? "?")}, ${escapeMrkdwn(s.syncState ?? "?")}, sent ${
        s.sentLsn ?? "?"
      }, ` +
        `write ${s.writeLsn ?? "?"}, flush ${s.flushLsn ?? "?"}, replay ${s.replayLsn ?? "?"}; lag write ${
          formatSeconds(s.writeLagSeconds)
        } / flush ${formatSeconds(s.flushLagSeconds)} / replay ${formatSeconds(s.replayLagSeconds)}`,
    );
  }
  const v = r.view;
  if (v.reachable) {
    lines.push(
      `replica sees: received ${v.receiveLsn ?? "?"}, replayed ${
        v.replayLsn ?? "?"
      }, last replayed transaction ${
        v.lastReplayAt ? `${formatSeconds(v.secondsSinceLastReplay)} ago` : "none since start"
      }, WAL receiver ${escapeMrkdwn(v.receiver?.status ?? "not running")}`,
    );
  }
  for (const reason of r.reasons) lines.push(`\u2022 ${escapeMrkdwn(reason)}`);
  for (const note of r.notes) lines.push(`_${escapeMrkdwn(note)}_`);
  return lines.join("\n");
}

/** Plain text of one report, for the CLI and notification fallbacks. */
export function lagText(r: LagReport): string {
  const lines = [`${r.target}: ${r.severity}`];
  if (!r.primary.reachable) lines.push(`  primary ${r.primary.address} DOES NOT ANSWER: ${r.primary.error}`);
  for (const x of r.replicas) {
    lines.push(
      `  ${x.replica} ${x.address}: ${x.severity}, ${formatBytes(x.lagBytes)} / ${
        formatSeconds(x.lagSeconds)
      } behind`,
    );
    for (const reason of x.reasons) lines.push(`    - ${reason}`);
    for (const note of x.notes) lines.push(`    (${note})`);
  }
  if (!r.replicas.length) lines.push("  no replicas configured");
  return lines.join("\n");
}

/** `/bisman lag`: one section per replica, grouped by target. */
export function renderLag(reports: LagReport[]): Reply {
  const blocks: Block[] = [header("Replication lag")];
  for (const r of reports) {
    const t = r.thresholds;
    blocks.push(mrkdwnSection(`*${escapeMrkdwn(r.target)}*: ${statusMark(r.severity)}`));
    if (!r.primary.reachable) {
      blocks.push(
        mrkdwnSection(
          `:red_circle: primary ${escapeMrkdwn(r.primary.address)} does not answer: ${
            escapeMrkdwn(r.primary.error ?? "")
          }`,
        ),
      );
    } else if (r.primary.inRecovery) {
      blocks.push(
        mrkdwnSection(
          `:red_circle: the configured primary ${escapeMrkdwn(r.primary.address)} is in recovery (a standby)`,
        ),
      );
    }
    if (!r.replicas.length) blocks.push(mrkdwnSection("_No replicas configured._"));
    for (const x of r.replicas) blocks.push(mrkdwnSection(replicaText(x)));
    for (const s of r.primary.unknownSenders) {
      blocks.push(
        context(
          `Walsender "${escapeMrkdwn(s.applicationName)}" from ${
            escapeMrkdwn(s.clientAddr ?? "local")
          } matches no configured replica`,
        ),
      );
    }
    blocks.push(
      context(
        `Thresholds: warning ${formatBytes(t.bytes_warning)} or ${
          formatSeconds(t.seconds_warning)
        }, critical ${formatBytes(t.bytes_critical)} or ${
          formatSeconds(t.seconds_critical)
        }. Checked ${r.checkedAt}`,
      ),
    );
  }
  return { text: reports.map(lagText).join("\n"), blocks: capBlocks(blocks), visibility: "ephemeral" };
}
