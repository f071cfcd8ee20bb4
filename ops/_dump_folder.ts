/**
 * The dump-folder source of `/bisman backups`: the `pg_dump -Fc` files in a folder on the bot's host, the
 * newest one's age and size, whether pg_restore can read it, gaps between dumps and retention.
 *
 * @module
 */

import { join } from "node:path";
import type { BackupsConfig } from "../core/config.ts";
import type { Secrets } from "../core/log.ts";
import { type Finding, humanAge, humanBytes, judgeAge } from "./_findings.ts";
import { toolError } from "./_pg_tools.ts";
import { type DumpReads, dumpReads } from "./_dump_reads.ts";

type DumpFolderConfig = NonNullable<BackupsConfig["dump_folder"]>;

/** One dump file. */
export interface DumpFile {
  name: string;
  path: string;
  size: number;
  mtime: Date;
}

/** What the dump-folder check found. */
export interface DumpFolderReport {
  path: string;
  pattern: string;
  files: number;
  totalBytes: number;
  newest?: DumpFile & {
    ageMs: number;
    /** From `pg_restore --list`: TOC entries, when pg_dump took it, from which database. */
    entries?: number;
    createdAt?: Date;
    dbname?: string;
    /** True when pg_restore read it (to the end with read_check: full). */
    readable?: boolean;
  };
  oldest?: DumpFile & { ageMs: number };
  findings: Finding[];
}

const HOUR = 3600_000;
const DAY = 24 * HOUR;

/**
 * Turns a `*`/`?` file-name pattern into an anchored RegExp (every other character is literal).
 * @example
 * globToRegExp("bisman_*.dump").test("bisman_20240501.dump"); // true
 */
export function globToRegExp(pattern: string): RegExp {
  const body = pattern.replace(/[.+^${}()|[\]\\]/g, "\\$&").replace(/\*/g, ".*").replace(/\?/g, ".");
  return new RegExp(`^${body}$`);
}

/** Why a folder cannot be listed, for a finding. */
export class FolderUnreadable extends Error {
  constructor(readonly path: string, readonly why: "missing" | "not a folder" | "not readable") {
    super(`${path}: ${why}`);
    this.name = "FolderUnreadable";
  }
}

/**
 * The regular files in `cfg.path` whose names match `cfg.pattern`, newest first. A symlink (such as the
 * seed's bisman_latest.dump) counts once with the file it points to.
 * @throws {FolderUnreadable} when the folder is missing, not a folder, or not readable
 */
export async function listDumpFiles(cfg: DumpFolderConfig): Promise<DumpFile[]> {
  let st: Deno.FileInfo;
  try {
    st = await Deno.stat(cfg.path);
  } catch (err) {
    throw new FolderUnreadable(cfg.path, err instanceof Deno.errors.NotFound ? "missing" : "not readable");
  }
  if (!st.isDirectory) throw new FolderUnreadable(cfg.path, "not a folder");
  const re = globToRegExp(cfg.pattern);
  const byReal = new Map<string, DumpFile & { symlink: boolean }>();
  try {
    for await (const e of Deno.readDir(cfg.path)) {
      if (!re.test(e.name)) continue;
      const path = join(cfg.path, e.name);
      let info: Deno.FileInfo;
      let real: string;
      try {
        info = await Deno.stat(path);
        real = await Deno.realPath(path);
      } catch {
        continue; // a dangling symlink or a file removed while listing
      }
      if (!info.isFile) continue;
      const file = {
        name: e.name,
        path,
        size: info.size,
        mtime: info.mtime ?? new Date(0),
        symlink: e.isSymlink,
      };
      const seen = byReal.get(real);
      if (!seen || (seen.symlink && !file.symlink)) byReal.set(real, file);
    }
  } catch (err) {
    if (err instanceof FolderUnreadable) throw err;
    throw new FolderUnreadable(cfg.path, "not readable");
  }
  return [...byReal.values()]
    .map(({ symlink: _s, ...f }) => f)
    .sort((a, b) => b.mtime.getTime() - a.mtime.getTime() || a.name.localeCompare(b.name));
}

/**
 * Checks a dump folder against its policy. Never throws: a missing folder or tool is a finding.
 * The newest dump is read through `reads` (once per version of the file, a bounded number at a time:
 * ops/_dump_reads.ts).
 */
export async function checkDumpFolder(
  cfg: DumpFolderConfig,
  pgRestore: string,
  now: Date,
  secrets: Secrets,
  reads: DumpReads = dumpReads,
): Promise<DumpFolderReport> {
  const report: DumpFolderReport = {
    path: cfg.path,
    pattern: cfg.pattern,
    files: 0,
    totalBytes: 0,
    findings: [],
  };
  const add = (severity: Finding["severity"], check: string, reason: string) =>
    report.findings.push({ source: "dump_folder", severity, check, reason });

  let files: DumpFile[];
  try {
    files = await listDumpFiles(cfg);
  } catch (err) {
    if (!(err instanceof FolderUnreadable)) throw err;
    add("critical", "dump folder", `${cfg.path} is ${err.why} on the bot's host: no dump can be checked`);
    return report;
  }
  report.files = files.length;
  report.totalBytes = files.reduce((n, f) => n + f.size, 0);
  if (!files.length) {
    add("critical", "dump folder", `no file in ${cfg.path} matches ${cfg.pattern}`);
    return report;
  }

  const newest = files[0];
  const oldest = files[files.length - 1];
  const ageMs = now.getTime() - newest.mtime.getTime();
  report.newest = { ...newest, ageMs };
  report.oldest = { ...oldest, ageMs: now.getTime() - oldest.mtime.getTime() };

  const ageSeverity = judgeAge(ageMs, cfg.max_age_hours * HOUR);
  add(
    ageSeverity,
    "newest dump age",
    `${newest.name} is ${humanAge(ageMs)} old (policy: at most ${cfg.max_age_hours} h${
      ageSeverity === "ok" ? "" : `; twice that is critical`
    })`,
  );

  if (newest.size === 0) {
    add("critical", "newest dump readable", `${newest.name} is empty (0 bytes)`);
  } else {
    const listed = await reads.list(pgRestore, newest.path);
    if (!listed.ok) {
      const missing = listed.result.code === 127;
      add(
        "critical",
        "newest dump readable",
        missing
          ? `cannot check ${newest.name}: ${pgRestore} is not installed on the bot's host (set backups.tools.pg_restore)`
          : `pg_restore --list cannot read ${newest.name}: ${toolError(listed.result.stderr, secrets)}`,
      );
      report.newest.readable = false;
    } else {
      Object.assign(report.newest, {
        entries: listed.listing.entries,
        createdAt: listed.listing.createdAt,
        dbname: listed.listing.dbname,
      });
      if (cfg.read_check === "full") {
        const full = await reads.readToEnd(pgRestore, newest.path);
        report.newest.readable = full.code === 0;
        add(
          full.code === 0 ? "ok" : "critical",
          "newest dump readable",
          full.code === 0
            ? `pg_restore read ${newest.name} to its end (${listed.listing.entries} TOC entries, ${
              humanBytes(newest.size)
            }, ${(full.ms / 1000).toFixed(1)} s)`
            : `${newest.name} is truncated or corrupt: its table of contents lists, but pg_restore cannot read it to the end: ${
              toolError(full.stderr, secrets)
            }`,
        );
      } else {
        report.newest.readable = true;
        add(
          "ok",
          "newest dump readable",
          `pg_restore --list reads ${newest.name} (${listed.listing.entries} TOC entries; data blocks not read: read_check is list)`,
        );
      }
    }
  }

  // A much smaller dump than the ones before it usually means a failed or partial pg_dump.
  const previous = files.slice(1, 8).map((f) => f.size).sort((a, b) => a - b);
  if (previous.length && newest.size > 0) {
    const median = previous[Math.floor(previous.length / 2)];
    if (median > 0 && newest.size < median / 2) {
      add(
        "warning",
        "newest dump size",
        `${newest.name} is ${humanBytes(newest.size)}, under half the usual ${humanBytes(median)}`,
      );
    }
  }

  const expected = cfg.expected_every_hours * HOUR;
  const gaps: string[] = [];
  const ascending = [...files].reverse();
  for (let i = 1; i < ascending.length; i++) {
    const gap = ascending[i].mtime.getTime() - ascending[i - 1].mtime.getTime();
    if (gap > expected * 1.5) {
      gaps.push(
        `${ascending[i - 1].mtime.toISOString().slice(0, 16)}Z \u2192 ${
          ascending[i].mtime.toISOString().slice(0, 16)
        }Z (${humanAge(gap)})`,
      );
    }
  }
  add(
    gaps.length ? "warning" : "ok",
    "missing dumps",
    gaps.length
      ? `${gaps.length} gap${gaps.length > 1 ? "s" : ""} longer than ${
        humanAge(expected * 1.5)
      } between dumps: ${gaps.slice(-3).join(", ")}${gaps.length > 3 ? ", \u2026" : ""}`
      : `one dump at least every ${humanAge(expected * 1.5)} from ${oldest.name} to ${newest.name}`,
  );

  if (cfg.retention_days > 0) {
    const oldestDays = report.oldest.ageMs / DAY;
    const beyond = files.filter((f) => now.getTime() - f.mtime.getTime() > (cfg.retention_days + 1) * DAY);
    if (oldestDays < cfg.retention_days - 1) {
      add(
        "warning",
        "retention",
        `retention not reached: the oldest dump (${oldest.name}) is ${
          humanAge(report.oldest.ageMs)
        } old, policy keeps ${cfg.retention_days} days`,
      );
    } else if (beyond.length) {
      add(
        "warning",
        "retention",
        `${beyond.length} dump${
          beyond.length > 1 ? "s are" : " is"
        } older than the ${cfg.retention_days}-day retention (oldest ${oldest.name}, ${
          humanAge(report.oldest.ageMs)
        }): is pruning running?`,
      );
    } else {
      add(
        "ok",
        "retention",
        `${files.length} dumps cover ${humanAge(report.oldest.ageMs)} (policy: ${cfg.retention_days} days)`,
      );
    }
  }
  return report;
}
