/**
 * The WAL-archiving source of `/bisman backups`: `pg_stat_archiver` on the target's primary. A failing
 * archive_command is critical (WAL piles up in pg_wal until the disk fills, and point-in-time recovery
 * stops at the last archived segment); so is a backlog that nothing has archived for too long.
 *
 * @module
 */

import type { Sql } from "postgres";
import { type Finding, humanAge } from "./_findings.ts";

/** What pg_stat_archiver says. */
export interface ArchiverReport {
  archiveMode?: string;
  archivedCount?: number;
  lastArchivedWal?: string;
  lastArchivedAt?: Date;
  failedCount?: number;
  lastFailedWal?: string;
  lastFailedAt?: Date;
  /** Segments waiting to be archived (`.ready` files), when the bot's role may list them (pg_monitor). */
  ready?: number;
  findings: Finding[];
}

interface ArchiverRow {
  archive_mode: string;
  in_recovery: boolean;
  archived_count: string;
  last_archived_wal: string | null;
  last_archived_time: Date | null;
  failed_count: string;
  last_failed_wal: string | null;
  last_failed_time: Date | null;
}

/**
 * Reads and judges pg_stat_archiver on `sql` (the primary).
 * @param maxAgeMinutes a backlog with no archive success for this long is critical
 * @throws the driver's error when the primary does not answer (the caller turns it into a finding)
 */
export async function checkArchiver(
  sql: Sql,
  maxAgeMinutes: number,
  now: Date,
): Promise<ArchiverReport> {
  const report: ArchiverReport = { findings: [] };
  const add = (severity: Finding["severity"], check: string, reason: string) =>
    report.findings.push({ source: "wal_archiving", severity, check, reason });

  const [row] = await sql<ArchiverRow[]>`
    select current_setting('archive_mode') as archive_mode, pg_is_in_recovery() as in_recovery,
           archived_count, last_archived_wal, last_archived_time,
           failed_count, last_failed_wal, last_failed_time
      from pg_stat_archiver`;
  report.archiveMode = row.archive_mode;
  report.archivedCount = Number(row.archived_count);
  report.lastArchivedWal = row.last_archived_wal ?? undefined;
  report.lastArchivedAt = row.last_archived_time ?? undefined;
  report.failedCount = Number(row.failed_count);
  report.lastFailedWal = row.last_failed_wal ?? undefined;
  report.lastFailedAt = row.last_failed_time ?? undefined;
  try {
    const [r] = await sql<{ n: number }[]>`
      select count(*)::int as n from pg_ls_archive_statusdir() where name like '%.ready'`;
    report.ready = r.n;
  } catch {
    // Listing pg_wal/archive_status needs pg_monitor; without it the backlog is unknown, not an error.
  }

  if (row.in_recovery) {
    add(
      "warning",
      "archiving",
      "the configured primary is in recovery: check pg_stat_archiver on the new primary",
    );
    return report;
  }
  if (row.archive_mode === "off") {
    add("critical", "archive_mode", "archive_mode is off on the primary: no WAL is archived");
    return report;
  }

  const lastOk = report.lastArchivedAt?.getTime();
  const lastFail = report.lastFailedAt?.getTime();
  const since = (t?: number) => (t === undefined ? "never" : `${humanAge(now.getTime() - t)} ago`);
  if (lastFail !== undefined && (lastOk === undefined || lastFail > lastOk)) {
    add(
      "critical",
      "archive_command",
      `archiving is failing: ${report.lastFailedWal} failed ${
        since(lastFail)
      } (${report.failedCount} failures since stats reset); last success ${since(lastOk)}${
        report.ready !== undefined ? `; ${report.ready} segments waiting` : ""
      }: check archive_command and the server log`,
    );
    return report;
  }
  const stale = lastOk === undefined || now.getTime() - lastOk > maxAgeMinutes * 60_000;
  if (report.ready !== undefined && report.ready > 0 && stale) {
    add(
      "critical",
      "archive backlog",
      `${report.ready} WAL segments wait to be archived and the last success was ${
        since(lastOk)
      } (policy: ${maxAgeMinutes} min)`,
    );
    return report;
  }
  add(
    "ok",
    "archive_command",
    lastOk === undefined
      ? "no segment archived yet and none waiting"
      : `last archived ${report.lastArchivedWal} ${since(lastOk)}${
        report.ready !== undefined ? `, ${report.ready} waiting` : ""
      }${report.failedCount ? ` (${report.failedCount} earlier failures, none since)` : ""}`,
  );
  return report;
}
