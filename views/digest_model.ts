/**
 * What the daily digest holds (jobs/digest.ts builds it, views/digest.ts draws it), and how its statuses
 * rank: a section is fine only when its check ran and found nothing.
 *
 * @module
 */

import type { JobLevel } from "../core/job_service.ts";

/** ok / warning / critical: what every line of the digest says. */
export type Status = JobLevel;

/** One line of a section. */
export interface DigestLine {
  status: Status;
  text: string;
}

/** What became of one check. */
export type SectionResult =
  | { state: "checked"; status: Status; lines: DigestLine[] }
  | { state: "failed"; error: string; unreachable?: boolean }
  | { state: "unavailable"; why: string };

/** One section (backups, replication lag, …) of one target, or of the whole deployment. */
export interface DigestSection {
  key: string;
  title: string;
  result: SectionResult;
}

/** Everything about one target. */
export interface TargetDigest {
  target: string;
  description?: string;
  /** Why the primary does not answer, when it does not. */
  unreachable?: string;
  sections: DigestSection[];
}

/** The whole digest. */
export interface Digest {
  generatedAt: Date;
  /** Start of the period covered (the previous digest, or 24 hours before). */
  since: Date;
  global: DigestSection[];
  targets: TargetDigest[];
  /** Per target and check: what the next digest compares with (slow-query counters). */
  snapshots: Record<string, Record<string, unknown>>;
  /** How long building it took. */
  ms: number;
  /** Up to this many targets are shown in the message itself (`digest.inline_targets`). */
  inlineTargets: number;
}

/** Rank for "worst first": critical, then could not check, then warning, ok, not available. */
export const statusRank = { critical: 4, unknown: 3, warning: 2, ok: 1, unavailable: 0 } as const;

/** The status a section shows: its worst line, `unknown` when it failed, `unavailable` when absent. */
export function sectionStatus(r: SectionResult): keyof typeof statusRank {
  if (r.state === "checked") return r.status;
  return r.state === "failed" ? "unknown" : "unavailable";
}

/** The worst status of a list of sections (`ok` when empty). */
export function worstOf(sections: DigestSection[]): keyof typeof statusRank {
  let worst: keyof typeof statusRank = "ok";
  for (const s of sections) {
    const st = sectionStatus(s.result);
    if (statusRank[st] > statusRank[worst]) worst = st;
  }
  return worst;
}

/** A target's overall status: unreachable counts as could-not-check. */
export function targetStatus(t: TargetDigest): keyof typeof statusRank {
  const w = worstOf(t.sections);
  if (t.unreachable && statusRank[w] < statusRank.unknown) return "unknown";
  return w;
}
