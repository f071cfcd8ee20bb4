/**
 * The pgBackRest source of `/bisman backups`: `pgbackrest info --output=json` for one stanza, judged
 * against the policy (stanza status, newest full and newest backup of any type, retention, WAL archive).
 *
 * @module
 */

import { z } from "zod";
import type { BackupsConfig } from "../core/config.ts";
import { exec } from "../core/exec.ts";
import type { Secrets } from "../core/log.ts";
import { type Finding, humanAge, humanBytes, judgeAge } from "./_findings.ts";
import { programExists, toolError } from "./_pg_tools.ts";

type PgBackRestConfig = NonNullable<BackupsConfig["pgbackrest"]>;

/** One backup set as the report shows it. */
export interface BackupSet {
  label: string;
  type: "full" | "diff" | "incr";
  start: Date;
  stop: Date;
  /** Database size the backup covers, and what it takes in the repository. */
  size: number;
  repoSize?: number;
  error: boolean;
}

/** What the pgBackRest check found. */
export interface PgBackRestReport {
  stanza: string;
  status?: { code: number; message: string; backupRunning: boolean };
  newestFull?: BackupSet;
  newest?: BackupSet;
  oldest?: BackupSet;
  backups: number;
  /** Oldest and newest WAL segment in the archive. */
  walMin?: string;
  walMax?: string;
  findings: Finding[];
}

// Only the fields read here; pgBackRest adds others between versions.
const infoSchema = z.array(z.object({
  name: z.string(),
  status: z.object({
    code: z.number(),
    message: z.string(),
    lock: z.object({ backup: z.object({ held: z.boolean() }).optional() }).optional(),
  }),
  repo: z.array(z.object({ key: z.number(), status: z.object({ code: z.number(), message: z.string() }) }))
    .optional(),
  archive: z.array(z.object({ id: z.string(), min: z.string().nullable(), max: z.string().nullable() }))
    .default(
      [],
    ),
  backup: z.array(z.object({
    label: z.string(),
    type: z.enum(["full", "diff", "incr"]),
    error: z.boolean().optional(),
    timestamp: z.object({ start: z.number(), stop: z.number() }),
    info: z.object({
      size: z.number(),
      repository: z.object({ size: z.number().optional(), delta: z.number().optional() }).optional(),
    }),
  })).default([]),
}));

const HOUR = 3600_000;
const DAY = 24 * HOUR;

/** The argv of `pgbackrest info` for a configured stanza. */
export function pgbackrestInfoArgv(binary: string, cfg: PgBackRestConfig): string[] {
  return [
    binary,
    ...(cfg.config_file ? [`--config=${cfg.config_file}`] : []),
    `--stanza=${cfg.stanza}`,
    "--output=json",
    "info",
  ];
}

/** Checks one pgBackRest stanza against its policy. Never throws: a missing tool is a finding. */
export async function checkPgBackRest(
  cfg: PgBackRestConfig,
  binary: string,
  now: Date,
  secrets: Secrets,
): Promise<PgBackRestReport> {
  const report: PgBackRestReport = { stanza: cfg.stanza, backups: 0, findings: [] };
  const add = (severity: Finding["severity"], check: string, reason: string) =>
    report.findings.push({ source: "pgbackrest", severity, check, reason });

  if (!(await programExists(binary))) {
    add(
      "critical",
      "pgbackrest info",
      `${binary} is not installed on the bot's host (set backups.tools.pgbackrest)`,
    );
    return report;
  }
  const res = await exec(pgbackrestInfoArgv(binary, cfg), { asUser: cfg.run_as, timeoutMs: 60_000 });
  if (res.code !== 0) {
    add(
      "critical",
      "pgbackrest info",
      `pgbackrest info failed (exit ${res.code}): ${toolError(res.stderr || res.stdout, secrets)}`,
    );
    return report;
  }
  let parsed: z.infer<typeof infoSchema>;
  try {
    parsed = infoSchema.parse(JSON.parse(res.stdout));
  } catch {
    add("critical", "pgbackrest info", "pgbackrest info printed something that is not its JSON report");
    return report;
  }
  const stanza = parsed.find((s) => s.name === cfg.stanza);
  if (!stanza) {
    add("critical", "stanza status", `pgbackrest knows no stanza ${cfg.stanza}`);
    return report;
  }
  report.status = {
    code: stanza.status.code,
    message: stanza.status.message,
    backupRunning: stanza.status.lock?.backup?.held ?? false,
  };
  // Code 2 ("no valid backups") is judged below with the backups themselves.
  if (stanza.status.code !== 0 && stanza.status.code !== 2) {
    add(
      "critical",
      "stanza status",
      `stanza ${cfg.stanza}: ${stanza.status.message} (code ${stanza.status.code})`,
    );
  } else {
    add(
      stanza.status.code === 0 ? "ok" : "critical",
      "stanza status",
      `stanza ${cfg.stanza}: ${stanza.status.message}${
        report.status.backupRunning ? " (a backup is running)" : ""
      }`,
    );
  }
  for (const r of stanza.repo ?? []) {
    if (r.status.code !== 0 && r.status.code !== 2) {
      add("critical", "repository status", `repo${r.key}: ${r.status.message} (code ${r.status.code})`);
    }
  }

  const sets: BackupSet[] = stanza.backup.map((b) => ({
    label: b.label,
    type: b.type,
    start: new Date(b.timestamp.start * 1000),
    stop: new Date(b.timestamp.stop * 1000),
    size: b.info.size,
    repoSize: b.info.repository?.size,
    error: b.error ?? false,
  })).sort((a, b) => a.stop.getTime() - b.stop.getTime());
  report.backups = sets.length;
  report.oldest = sets[0];
  report.newest = sets.at(-1);
  report.newestFull = sets.filter((s) => s.type === "full").at(-1);

  if (!report.newestFull) {
    add("critical", "newest full backup", `stanza ${cfg.stanza} has no full backup`);
  } else {
    const age = now.getTime() - report.newestFull.stop.getTime();
    const sev = judgeAge(age, cfg.full_max_age_days * DAY);
    add(
      sev,
      "newest full backup",
      `${report.newestFull.label} finished ${humanAge(age)} ago (${
        humanBytes(report.newestFull.size)
      }; policy: at most ${cfg.full_max_age_days} days)`,
    );
  }
  if (report.newest) {
    const age = now.getTime() - report.newest.stop.getTime();
    add(
      judgeAge(age, cfg.backup_max_age_hours * HOUR),
      "newest backup",
      `${report.newest.label} (${report.newest.type}) finished ${
        humanAge(age)
      } ago (policy: at most ${cfg.backup_max_age_hours} h)`,
    );
  }
  const withErrors = sets.filter((s) => s.error);
  if (withErrors.length) {
    add(
      "warning",
      "backup errors",
      `${withErrors.map((s) => s.label).join(", ")} recorded page or checksum errors: run pgbackrest verify`,
    );
  }
  if (cfg.retention_days > 0 && report.oldest) {
    const age = now.getTime() - report.oldest.start.getTime();
    add(
      age >= (cfg.retention_days - 1) * DAY ? "ok" : "warning",
      "retention",
      age >= (cfg.retention_days - 1) * DAY
        ? `${sets.length} backups reach back ${humanAge(age)} (policy: ${cfg.retention_days} days)`
        : `retention not reached: the oldest backup (${report.oldest.label}) is ${
          humanAge(age)
        } old, policy keeps ${cfg.retention_days} days`,
    );
  }

  const archive = stanza.archive.at(-1);
  report.walMin = archive?.min ?? undefined;
  report.walMax = archive?.max ?? undefined;
  add(
    report.walMax ? "ok" : "critical",
    "WAL archive",
    report.walMax
      ? `WAL ${report.walMin} \u2026 ${report.walMax} in the repository`
      : `no WAL in the repository for stanza ${cfg.stanza}: point-in-time recovery is impossible`,
  );
  return report;
}
