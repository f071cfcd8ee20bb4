/**
 * `backup_status`: do the backups of a target exist, are they fresh, and do they really restore? Reads every
 * configured source (a dump folder, a pgBackRest stanza, pg_stat_archiver on the primary) and the restore
 * test history, and judges each finding ok / warning / critical against the target's policy. Read-only;
 * a missing tool, folder or server is a finding, never a crash.
 *
 * @module
 */

import { z } from "zod";
import { unreachable } from "../core/targets.ts";
import type { OpDeps, Operation, PlanBase } from "./types.ts";
import { checkDumpFolder, type DumpFolderReport } from "./_dump_folder.ts";
import { checkPgBackRest, type PgBackRestReport } from "./_pgbackrest.ts";
import { type ArchiverReport, checkArchiver } from "./_archiver.ts";
import { type Finding, humanAge, judgeAge, type Severity, worst } from "./_findings.ts";
import {
  lastProvenRestore,
  type ProvenRestore,
  recentRestoreTests,
  type RestoreTestRecord,
} from "./restore_history.ts";
import { recordBackupTime, RUNBOOK_SERIES, seconds } from "./_runbook_metrics.ts";
import type { Metrics } from "../core/metrics.ts";
import { own } from "../core/lookup.ts";

export const backupStatusArgs = z.strictObject({ target: z.string().regex(/^[a-z_][a-z0-9_]{0,62}$/) });
export type BackupStatusArgs = z.infer<typeof backupStatusArgs>;

/** The plan of a status read: which sources will be asked. */
export interface BackupStatusPlan extends PlanBase {
  target: string;
  sources: string[];
}

/** Everything `/bisman backups` shows for one target. */
export interface BackupStatusReport {
  target: string;
  checkedAt: string;
  dumpFolder?: DumpFolderReport;
  pgbackrest?: PgBackRestReport;
  archiver?: ArchiverReport;
  lastProvenRestore?: ProvenRestore;
  lastRestoreTest?: RestoreTestRecord;
  /** Every finding of every source, in source order. */
  findings: Finding[];
  severity: Severity;
}

function sourcesOf(deps: Pick<OpDeps, "config">, target: string): string[] {
  const t = own(deps.config.targets, target);
  const b = t?.backups;
  return [
    ...(b?.dump_folder ? [`dump folder ${b.dump_folder.path}`] : []),
    ...(b?.pgbackrest ? [`pgBackRest stanza ${b.pgbackrest.stanza}`] : []),
    ...(b?.wal_archiving ? ["pg_stat_archiver on the primary"] : []),
    ...(t?.restore_test ? ["restore test history"] : []),
  ];
}

/**
 * Reads and judges every backup source of `target`.
 * @throws {NotConfigured} for an unknown target (nothing else: sources fail as findings)
 */
export async function readBackupStatus(target: string, deps: OpDeps): Promise<BackupStatusReport> {
  deps.targets.members(target); // throws NotConfigured for an unknown target
  const t = own(deps.config.targets, target)!; // members() above refused any other name
  const b = t.backups;
  const now = deps.now();
  const report: BackupStatusReport = { target, checkedAt: now.toISOString(), findings: [], severity: "ok" };

  const [dump, pgbr, arch] = await Promise.all([
    b?.dump_folder ? checkDumpFolder(b.dump_folder, b.tools.pg_restore, now, deps.secrets) : undefined,
    b?.pgbackrest ? checkPgBackRest(b.pgbackrest, b.tools.pgbackrest, now, deps.secrets) : undefined,
    b?.wal_archiving ? archiverOf(target, b.wal_archiving.max_age_minutes, now, deps) : undefined,
  ]);
  report.dumpFolder = dump;
  report.pgbackrest = pgbr;
  report.archiver = arch;
  report.findings.push(...(dump?.findings ?? []), ...(pgbr?.findings ?? []), ...(arch?.findings ?? []));

  if (!b?.dump_folder && !b?.pgbackrest && !b?.wal_archiving) {
    report.findings.push({
      source: "config",
      severity: "warning",
      check: "backup sources",
      reason: `no backup source is configured for ${target}: add targets.${target}.backups`,
    });
  }
  if (t.restore_test) {
    report.findings.push(...await restoreFindings(target, t.restore_test.max_age_days, now, deps, report));
  }
  report.severity = worst(report.findings);
  recordBackupStatus(deps.metrics, report);
  return report;
}

async function archiverOf(target: string, maxAge: number, now: Date, deps: OpDeps): Promise<ArchiverReport> {
  try {
    return await checkArchiver(await deps.targets.pool(target, "primary"), maxAge, now);
  } catch (err) {
    const m = deps.targets.member(target, "primary");
    return {
      findings: [{
        source: "wal_archiving",
        severity: "critical",
        check: "pg_stat_archiver",
        reason: `cannot read pg_stat_archiver: ${deps.secrets.scrub(unreachable(m, err).userMessage)}`,
      }],
    };
  }
}

async function restoreFindings(
  target: string,
  maxAgeDays: number,
  now: Date,
  deps: OpDeps,
  report: BackupStatusReport,
): Promise<Finding[]> {
  const out: Finding[] = [];
  try {
    report.lastProvenRestore = await lastProvenRestore(deps.state, target);
    report.lastRestoreTest = (await recentRestoreTests(deps.state, target, 1))[0];
  } catch (err) {
    deps.log.warn("restore history unreadable", { error: err });
    return [{
      source: "restore_test",
      severity: "warning",
      check: "last proven restore",
      reason: "the restore test history cannot be read",
    }];
  }
  const proven = report.lastProvenRestore;
  if (!proven) {
    out.push({
      source: "restore_test",
      severity: "warning",
      check: "last proven restore",
      reason: `no restore test of ${target} has passed yet: run \`/bisman restore-test ${target}\``,
    });
  } else {
    const age = now.getTime() - proven.at.getTime();
    out.push({
      source: "restore_test",
      severity: judgeAge(age, maxAgeDays * 86_400_000),
      check: "last proven restore",
      reason: `${humanAge(age)} ago from ${proven.backupFile}: restored in ${humanAge(proven.restoreMs)}${
        proven.dataAgeMs !== undefined ? `, data ${humanAge(proven.dataAgeMs)} old` : ""
      } (policy: within ${maxAgeDays} days)`,
    });
  }
  const last = report.lastRestoreTest;
  if (last && last.status === "failed" && last.id !== proven?.id) {
    out.push({
      source: "restore_test",
      severity: "warning",
      check: "last restore test",
      reason: `run ${last.id} (${last.backupFile}, ${
        humanAge(now.getTime() - last.startedAt.getTime())
      } ago) failed: ${last.error ?? "see its report"}`,
    });
  }
  return out;
}

/** The operation: plan() names the sources; run() reads them. */
export const backupStatus: Operation<BackupStatusArgs, BackupStatusPlan, BackupStatusReport> = {
  name: "backup_status",
  destructive: false,
  args: backupStatusArgs,
  plan: (args, deps) => {
    deps.targets.members(args.target);
    const sources = sourcesOf(deps, args.target);
    return Promise.resolve({
      summary: `Check the backups of ${args.target}: ${
        sources.length ? sources.join(", ") : "no source configured"
      }`,
      target: args.target,
      steps: sources.map((s) => `Read ${s} and judge it against the policy`),
      fingerprint: {},
      sources,
    });
  },
  run: (plan, deps) => readBackupStatus(plan.target, deps),
  describeResult: (r) => `backups of ${r.target}: ${r.severity} (${r.findings.length} findings)`,
};

/** After a backup check: the newest backup of each configured source, and when the check ran. */
export function recordBackupStatus(metrics: Metrics | undefined, r: BackupStatusReport): void {
  if (!metrics) return;
  if (r.dumpFolder) {
    const n = r.dumpFolder.newest;
    recordBackupTime(metrics, r.target, "dump_folder", n ? n.createdAt ?? n.mtime : undefined);
  }
  if (r.pgbackrest) {
    const n = r.pgbackrest.newest;
    recordBackupTime(metrics, r.target, "pgbackrest", n && !n.error ? n.stop : undefined);
  }
  if (r.archiver) recordBackupTime(metrics, r.target, "wal_archiving", r.archiver.lastArchivedAt);
  metrics.set(
    RUNBOOK_SERIES.backupChecked,
    { target: r.target },
    seconds(new Date(r.checkedAt)),
    "When the bot last checked a target's backups (Unix time)",
  );
}
