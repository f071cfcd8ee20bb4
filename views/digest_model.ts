/**
 * What the daily digest holds (jobs/digest.ts builds it, views/digest.ts draws it), and how its statuses
 * rank: a section is fine only when its check ran and found nothing.
 *
 * @module
 */

import type { JobLevel } from "../core/job_service.ts";

/** ok / warning / critical: a judgement of something the check looked at. */
export type Status = JobLevel;

/**
 * What every line of the digest says: a judgement (ok / warning / critical) of something that was looked at,
 * or why nothing was judged: `not_configured` (there is nothing configured to look at) or `unknown` (could not
 * check). Never ok for something not looked at.
 */
export type LineStatus = Status | "not_configured" | "unknown";

/** One line of a section. */
export interface DigestLine {
  status: LineStatus;
  text: string;
}

/** What became of one check. */
export type SectionResult =
  | { state: "checked"; status: LineStatus; lines: DigestLine[] }
  | { state: "failed"; error: string; unreachable?: boolean }
  | { state: "unavailable"; why: string };

/** One section (backups, replication lag, ...) of one target, or of the whole deployment. */
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

/** Rank for "worst first": critical, then could not check, then warning, ok, not configured, not available. */
export const statusRank = {
  critical: 5,
  unknown: 4,
  warning: 3,
  ok: 2,
  not_configured: 1,
  unavailable: 0,
} as const;

/** The status a section shows: its worst line, `unknown` when it failed, `unavailable` when absent. */
export function sectionStatus(r: SectionResult): keyof typeof statusRank {
  if (r.state === "checked") return r.status;
  return r.state === "failed" ? "unknown" : "unavailable";
}

/** The worst status of a list of sections (`ok` when empty; `not_configured` when all are). */
export function worstOf(sections: DigestSection[]): keyof typeof statusRank {
  if (!sections.length) return "ok";
  // Start from the first section, not from "ok": sections that are all "not configured" are not ok.
  let worst: keyof typeof statusRank = sectionStatus(sections[0].result);
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
