/**
 * Block Kit for `/bisman backups`: one section per backup source, each finding with its ok / warning /
 * critical mark and reason, and the last proven restore.
 *
 * @module
 */

import type { Block, Reply } from "./reply.ts";
import type { BackupStatusReport } from "../ops/backup_status.ts";
import type { BackupSource, Finding } from "../ops/_findings.ts";
import { humanBytes } from "../ops/_findings.ts";
import { describeProven } from "../ops/restore_history.ts";
import { capBlocks, chunkLines, context, escapeMrkdwn, header, mrkdwnSection, statusMark } from "./blocks.ts";

const titles: Record<BackupSource, string> = {
  dump_folder: "Dump folder",
  pgbackrest: "pgBackRest",
  wal_archiving: "WAL archiving (pg_stat_archiver)",
  restore_test: "Restore tests",
  config: "Configuration",
};

function sourceTitle(r: BackupStatusReport, s: BackupSource): string {
  if (s === "dump_folder" && r.dumpFolder) {
    return `${titles[s]} \`${r.dumpFolder.path}\` (${r.dumpFolder.files} files, ${
      humanBytes(r.dumpFolder.totalBytes)
    })`;
  }
  if (s === "pgbackrest" && r.pgbackrest) return `${titles[s]} stanza \`${r.pgbackrest.stanza}\``;
  return titles[s];
}

function line(f: Finding): string {
  return `${statusMark(f.severity)}  *${escapeMrkdwn(f.check)}*: ${escapeMrkdwn(f.reason)}`;
}

/** Groups findings by source, keeping the order they were found in. */
function bySource(findings: Finding[]): Map<BackupSource, Finding[]> {
  const out = new Map<BackupSource, Finding[]>();
  for (const f of findings) out.set(f.source, [...(out.get(f.source) ?? []), f]);
  return out;
}

/** One or more targets' backup status. */
export function renderBackups(reports: BackupStatusReport[], now: Date = new Date()): Reply {
  const blocks: Block[] = [];
  const text: string[] = [];
  for (const r of reports) {
    blocks.push(header(`Backups of ${r.target}: ${r.severity}`));
    text.push(`Backups of ${r.target}: ${r.severity.toUpperCase()}`);
    for (const [source, list] of bySource(r.findings)) {
      const title = sourceTitle(r, source);
      for (const chunk of chunkLines([`*${title}*`, ...list.map(line)])) blocks.push(mrkdwnSection(chunk));
      text.push(`  ${title.replace(/`/g, "")}`);
      for (const f of list) text.push(`    [${f.severity}] ${f.check}: ${f.reason}`);
    }
    const proven = r.lastProvenRestore
      ? `Last proven restore: ${describeProven(r.lastProvenRestore, now)}`
      : "Last proven restore: none on record";
    blocks.push(context(escapeMrkdwn(proven)));
    text.push(`  ${proven}`);
  }
  blocks.push(context(`Checked ${reports[0]?.checkedAt ?? now.toISOString()}`));
  return { text: text.join("\n"), blocks: capBlocks(blocks), visibility: "ephemeral" };
}
