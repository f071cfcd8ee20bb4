/**
 * The report shape of the checks that read one of the seed's items from the system that holds it (Kubernetes,
 * AWS WAF, pg_receivewal, the log pipeline, PostgreSQL's versions feed): judged findings, what could not be
 * looked at and why, and where the evidence came from. The checklist and the digest adapt it; neither ever
 * shows "ok" for a part that was not looked at.
 *
 * @module
 */

import { OpsError } from "../core/errors.ts";
import { type Severity, worst } from "./_findings.ts";

export type { Severity };

/** One judged fact. */
export interface EvidenceFinding {
  severity: Severity;
  /** What was judged (`postgres-access`, `SQL injection rule`, `primary`, ...). */
  check: string;
  /** What was found, with the figures and what it was judged against. */
  reason: string;
}

/** What one check found for one target. */
export interface EvidenceReport {
  target: string;
  /** Where the evidence was read, in words ("Kubernetes API https://...: NetworkPolicies in bisman-db"). */
  source: string;
  findings: EvidenceFinding[];
  /** Parts that could not be checked, each saying which and why ("replica1: does not answer: ..."). */
  unchecked: string[];
  /** Set when the source is deliberately not consulted where the bot runs: why ("not running in Kubernetes"). */
  notChecked?: string;
  /** Set when the target's config has no section for this check: the key to set. */
  notConfigured?: string;
}

/** How a report stands as a whole. */
export type EvidenceStatus = Severity | "could_not_check" | "not_checked" | "not_configured";

/**
 * The status of a report: its worst finding; "could not check" when something was not looked at and nothing
 * worse was found; never "ok" without at least one finding.
 * @example
 * evidenceStatus({ target: "t", source: "s", findings: [], unchecked: ["x: down"] }); // "could_not_check"
 */
export function evidenceStatus(r: EvidenceReport): EvidenceStatus {
  if (r.notConfigured) return "not_configured";
  if (r.notChecked) return "not_checked";
  const w = worst(r.findings);
  if (w !== "ok") return w;
  if (r.unchecked.length || !r.findings.length) return "could_not_check";
  return "ok";
}

/** A report for a target that has no config for the check. */
export function notConfigured(target: string, source: string, key: string): EvidenceReport {
  return {
    target,
    source,
    findings: [],
    unchecked: [],
    notConfigured: `not configured: set targets.${target}.${key}`,
  };
}

/** A report whose source could not be read at all. */
export function couldNotCheck(target: string, source: string, why: string): EvidenceReport {
  return { target, source, findings: [], unchecked: [why] };
}

/**
 * A failure's text for a report: an OpsError's Slack-safe message, else the error's first line (for errors
 * of HTTP clients and the file system, which carry no secrets of ours), cut to 200 characters.
 */
export function failureText(err: unknown): string {
  if (err instanceof OpsError) return err.userMessage;
  const msg = err instanceof Error
    ? `${err.name === "Error" ? "" : `${err.name}: `}${err.message}`
    : String(err);
  return msg.split("\n")[0].slice(0, 200);
}

/** A promise's outcome as a value, for checks that judge what answered and list what did not. */
export type Settled<T> = { ok: true; value: T } | { ok: false; error: unknown };

/** Settles one promise. @example const r = await settle(fetch(url)); if (!r.ok) ... */
export function settle<T>(p: Promise<T>): Promise<Settled<T>> {
  return p.then(
    (value) => ({ ok: true as const, value }),
    (error: unknown) => ({ ok: false as const, error }),
  );
}
