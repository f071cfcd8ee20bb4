/**
 * The digest's sections for the seed's items read from the systems that hold them (issue 19): network
 * policies (Kubernetes), WAF rules (AWS WAF), WAL streaming (pg_receivewal), centralized logging (server
 * settings and the search cluster) and security patches (PostgreSQL's versions feed). Each adapts an
 * evidence report (ops/_evidence.ts): problems one line each, all well one line with the evidence, a source
 * that did not answer "could not check: why". A target without the section's config shows it as "not
 * configured" with the key to set; nothing unread is ever "ok".
 *
 * @module
 */

import type { AppDeps } from "../core/deps.ts";
import { OpsError } from "../core/errors.ts";
import type { EvidenceReport } from "../ops/_evidence.ts";
import { apiUrl, readNetworkPolicies } from "../ops/network_policies.ts";
import { readWafRules } from "../ops/waf_rules.ts";
import { readWalStreaming } from "../ops/wal_streaming.ts";
import { readCentralLogging } from "../ops/central_logging.ts";
import { readPatchLevel } from "../ops/patch_level.ts";
import type { DigestCheck } from "./digest_check.ts";
import type { DigestLine } from "../views/digest_model.ts";

/** How many characters an all-well line keeps of the evidence. */
const OK_LINE_MAX = 300;

/** A report as digest lines. @throws {OpsError} `unreachable` when nothing could be read */
export function digestLines(r: EvidenceReport): DigestLine[] {
  if (r.notConfigured) return [{ status: "not_configured", text: r.notConfigured }];
  if (r.notChecked) return [{ status: "not_configured", text: `not checked: ${r.notChecked}` }];
  if (!r.findings.length) throw new OpsError("unreachable", r.unchecked.join("; ") || "nothing was read");
  const bad = r.findings.filter((f) => f.severity !== "ok");
  const lines: DigestLine[] = bad.map((f) => ({ status: f.severity, text: `${f.check}: ${f.reason}` }));
  if (!bad.length) {
    const all = r.findings.map((f) => `${f.check}: ${f.reason}`).join("; ");
    lines.push({
      status: "ok",
      text: all.length > OK_LINE_MAX ? `${all.slice(0, OK_LINE_MAX - 1)}\u2026` : all,
    });
  }
  for (const u of r.unchecked) lines.push({ status: "warning", text: `could not check ${u}` });
  return lines;
}

function evidenceCheck(
  key: string,
  title: string,
  read: (target: string, deps: AppDeps) => Promise<EvidenceReport>,
  unavailable?: (deps: AppDeps, target: string) => string | undefined,
): DigestCheck {
  return {
    key,
    title,
    scope: "target",
    run: async (ctx, target) => {
      // Nothing configured to look at is a line of its own ("not configured"), never "ok" and never hidden.
      const why = unavailable?.(ctx.deps, target!);
      if (why) return [{ status: "not_configured", text: why }];
      return digestLines(await read(target!, ctx.deps));
    },
  };
}

const unset = (key: string) => (deps: AppDeps, target: string) =>
  (deps.config.targets[target] as Record<string, unknown>)[key] === undefined
    ? `not configured: set targets.${target}.${key}`
    : undefined;

/** The sections, in the order the digest shows them after the others of a target. */
export const evidenceChecks: DigestCheck[] = [
  evidenceCheck(
    "network_policies",
    "Network policies",
    (t, deps) => readNetworkPolicies(t, deps),
    (deps, target) =>
      !apiUrl(deps, (n) => Deno.env.get(n))
        ? "not checked: not running in Kubernetes (the checklist takes an attestation)"
        : unset("network_policy")(deps, target),
  ),
  evidenceCheck("waf_rules", "WAF rules", readWafRules, unset("aws_waf")),
  evidenceCheck("wal_streaming", "WAL streaming", readWalStreaming, unset("wal_streaming")),
  evidenceCheck(
    "central_logging",
    "Centralized logging",
    (t, deps) => readCentralLogging(t, deps),
    unset("central_logging"),
  ),
  evidenceCheck("patch_level", "Security patches", readPatchLevel),
];
