/**
 * Turns an evidence report (ops/_evidence.ts: Kubernetes, AWS WAF, pg_receivewal, the log pipeline, the
 * versions feed) into a checklist item's status and evidence lines: where it was read first, then the worst
 * findings, then what could not be checked. Nothing that was not looked at ever passes.
 *
 * @module
 */

import { type EvidenceReport, evidenceStatus } from "../ops/_evidence.ts";

/** A checklist item's status and evidence, as jobs/checklist.ts takes them. */
export interface EvidenceItem {
  status: "pass" | "fail" | "warning" | "unknown" | "not_configured";
  evidence: string[];
}

const rank = { critical: 2, warning: 1, ok: 0 } as const;

/** The evidence lines of a report: its source, its findings worst first, then what was not checked. */
export function evidenceLines(r: EvidenceReport): string[] {
  if (r.notConfigured) return [r.notConfigured];
  if (r.notChecked) return [`not checked: ${r.notChecked}`];
  const findings = [...r.findings].sort((a, b) => rank[b.severity] - rank[a.severity]);
  return [
    `${r.source}:`,
    ...findings.map((f) => `${f.severity === "ok" ? "" : `${f.severity}: `}${f.check}: ${f.reason}`),
    ...r.unchecked.map((u) => `could not check: ${u}`),
  ];
}

/**
 * A checklist item from one report: critical fails, warning warns, a source with no config section is "not
 * configured" (nothing to look at), anything else not looked at (a source that did not answer) is "could not
 * check". Nothing that was not looked at ever passes.
 */
export function fromEvidence(r: EvidenceReport): EvidenceItem {
  const s = evidenceStatus(r);
  const status = s === "ok"
    ? "pass"
    : s === "critical"
    ? "fail"
    : s === "warning"
    ? "warning"
    : s === "not_configured"
    ? "not_configured"
    : "unknown";
  return { status, evidence: evidenceLines(r) };
}
