/**
 * Findings of the backup checks: each is judged ok / warning / critical against the configured policy and
 * says why, so a person reading it knows what to fix.
 *
 * @module
 */

/** How bad a finding is. */
export type Severity = "ok" | "warning" | "critical";

/** Where a finding comes from. */
export type BackupSource = "dump_folder" | "pgbackrest" | "wal_archiving" | "restore_test" | "config";

/** One judged fact. */
export interface Finding {
  source: BackupSource;
  severity: Severity;
  /** A short name of the check (`newest dump age`, `stanza status`, ...). */
  check: string;
  /** Why it got that severity, with the figures and the policy it was judged against. */
  reason: string;
}

const rank: Record<Severity, number> = { ok: 0, warning: 1, critical: 2 };

/** The worst severity of a list (ok when empty). */
export function worst(findings: readonly { severity: Severity }[]): Severity {
  let w: Severity = "ok";
  for (const f of findings) if (rank[f.severity] > rank[w]) w = f.severity;
  return w;
}

/**
 * Judges an age against a limit: ok up to it, a warning beyond it, critical beyond twice it.
 * @example
 * judgeAge(30, 26); // "warning"
 * judgeAge(60, 26); // "critical"
 */
export function judgeAge(age: number, limit: number): Severity {
  if (age > 2 * limit) return "critical";
  if (age > limit) return "warning";
  return "ok";
}

/**
 * A duration in words, the largest unit that fits.
 * @example
 * humanAge(90 * 60_000); // "1.5 h"
 */
export function humanAge(ms: number): string {
  const s = Math.max(0, ms) / 1000;
  if (s < 90) return `${Math.round(s)} s`;
  if (s < 90 * 60) return `${Math.round(s / 60)} min`;
  if (s < 48 * 3600) return `${(s / 3600).toFixed(1).replace(/\.0$/, "")} h`;
  return `${(s / 86400).toFixed(1).replace(/\.0$/, "")} days`;
}

/**
 * A size in binary units.
 * @example
 * humanBytes(1536); // "1.5 KiB"
 */
export function humanBytes(n: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let v = n;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${u === 0 ? v : v.toFixed(1).replace(/\.0$/, "")} ${units[u]}`;
}
