/**
 * The daily digest: every check of every target, run concurrently with a timeout each, gathered into one
 * structure that views/digest.ts turns into one Block Kit message (with a thread when it is long).
 *
 * A section is never shown as fine unless its check ran: a check this build does not have is "not
 * available", one that threw or timed out is "could not check: <why>", and an unreachable target says so
 * once instead of listing the same error for every section.
 *
 * @module
 */

import { auditHead } from "../core/audit.ts";
import { renderAnchor } from "../views/audit_log.ts";
import type { AppDeps } from "../core/deps.ts";
import { OpsError } from "../core/errors.ts";
import { readMemberStatus } from "../ops/server_status.ts";
import type { JobDefinition, JobLevel, JobServices } from "./types.ts";
import { digestChecks } from "./digest_sections.ts";
import type { CheckContext, DigestCheck } from "./digest_check.ts";

export type { CheckContext, DigestCheck };
import { renderDigest } from "../views/digest.ts";
import {
  type Digest,
  type DigestLine,
  type DigestSection,
  type LineStatus,
  type SectionResult,
  sectionStatus,
  type Status,
  statusRank,
  type TargetDigest,
  targetStatus,
  worstOf,
} from "../views/digest_model.ts";
import { own } from "../core/lookup.ts";

export {
  type Digest,
  type DigestLine,
  type DigestSection,
  type SectionResult,
  sectionStatus,
  type Status,
  statusRank,
  type TargetDigest,
  targetStatus,
  worstOf,
};

/** The worst line of a section; a section of "not configured" lines only is "not configured". */
function worstLine(lines: DigestLine[]): LineStatus {
  if (lines.length && lines.every((l) => l.status === "not_configured")) return "not_configured";
  let w: LineStatus = "ok";
  for (const l of lines) if (statusRank[l.status] > statusRank[w]) w = l.status;
  return w;
}

/** Rejects after `ms` with a message for the digest. */
async function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      p,
      new Promise<never>((_, reject) =>
        timer = setTimeout(
          () => reject(new OpsError("unreachable", `timed out after ${Math.round(ms / 1000)} s`)),
          ms,
        )
      ),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** A failure's text for the digest: OpsError messages are Slack-safe; anything else is logged, not shown. */
function failureText(err: unknown, deps: AppDeps, check: string, target?: string): string {
  if (err instanceof OpsError) return deps.secrets.scrub(err.userMessage);
  const ref = crypto.randomUUID().slice(0, 8);
  deps.log.warn("digest check failed", { check, target, reference: ref, error: err });
  return `internal error (reference ${ref}): see the bot's log`;
}

async function runCheck(
  check: DigestCheck,
  target: string | undefined,
  base: Omit<CheckContext, "previous" | "remember">,
  previous: unknown,
  remember: (v: unknown) => void,
): Promise<DigestSection> {
  const { deps } = base;
  const why = check.unavailable?.(deps, target, base.services);
  if (why) return { key: check.key, title: check.title, result: { state: "unavailable", why } };
  try {
    const lines = await withTimeout(
      check.run({ ...base, previous, remember }, target),
      deps.config.digest.check_timeout_seconds * 1000,
    );
    const sorted = [...lines].sort((a, b) => statusRank[b.status] - statusRank[a.status]);
    return {
      key: check.key,
      title: check.title,
      result: { state: "checked", status: worstLine(sorted), lines: sorted },
    };
  } catch (err) {
    return {
      key: check.key,
      title: check.title,
      result: {
        state: "failed",
        error: failureText(err, deps, check.key, target),
        unreachable: err instanceof OpsError && err.code === "unreachable",
      },
    };
  }
}

/** Options of one digest. */
export interface BuildOptions {
  /** Start of the covered period (default 24 hours before now). */
  since?: Date;
  /** The previous digest's snapshots (per target, per check). */
  previous?: Record<string, Record<string, unknown>>;
  /** Only these targets (default: all). */
  targets?: string[];
  /** The checks (default: digest_sections.ts). */
  checks?: DigestCheck[];
  /** Process services (the alert threads); without them the alert section is "not available". */
  services?: JobServices;
}

/**
 * Builds the digest: every target's checks and the global ones run at once, each bounded by
 * `digest.check_timeout_seconds`. Never throws for a failing check or an unreachable target.
 */
export async function buildDigest(deps: AppDeps, opts: BuildOptions = {}): Promise<Digest> {
  const started = performance.now();
  const now = deps.now();
  const since = opts.since ?? new Date(now.getTime() - 24 * 3600_000);
  const checks = opts.checks ?? digestChecks;
  const names = opts.targets ?? deps.targets.names();
  const snapshots: Record<string, Record<string, unknown>> = {};
  const base = { deps, now, since, services: opts.services ?? {} };
  const keep = (scope: string, key: string) => (v: unknown) => {
    (snapshots[scope] ??= {})[key] = v;
  };

  const global = Promise.all(
    checks.filter((c) => c.scope === "global").map((c) =>
      runCheck(c, undefined, base, opts.previous?.["*"]?.[c.key], keep("*", c.key))
    ),
  );
  const targets = Promise.all(names.map(async (target): Promise<TargetDigest> => {
    const primary = deps.targets.member(target, "primary");
    const [probe, sections] = await Promise.all([
      withTimeout(readMemberStatus(primary, deps), deps.config.digest.check_timeout_seconds * 1000)
        .catch((err) => ({ reachable: false, error: failureText(err, deps, "probe", target) })),
      Promise.all(
        checks.filter((c) => c.scope === "target").map((c) =>
          runCheck(c, target, base, opts.previous?.[target]?.[c.key], keep(target, c.key))
        ),
      ),
    ]);
    return {
      target,
      description: own(deps.config.targets, target)?.description,
      unreachable: probe.reachable ? undefined : probe.error ?? "does not answer",
      sections,
    };
  }));
  return {
    generatedAt: now,
    since,
    global: await global,
    targets: await targets,
    snapshots,
    ms: performance.now() - started,
    inlineTargets: deps.config.digest.inline_targets,
  };
}

/** Counts of targets by status, for the run summary and /metrics. */
export function countTargets(d: Digest): Record<keyof typeof statusRank, number> {
  const counts = { critical: 0, unknown: 0, warning: 0, ok: 0, not_configured: 0, unavailable: 0 };
  for (const t of d.targets) counts[targetStatus(t)]++;
  return counts;
}

/** The digest job: build, post one message in the ops channel (details in its thread when long). */
export const digestJob: JobDefinition = {
  name: "digest",
  summary: "The daily digest of every target in the ops channel",
  defaultCron: "0 9 * * *",
  destructive: false,
  run: async (ctx) => {
    const prev = ctx.previous;
    // The period runs from the previous digest, unless that is more than two days old (or never was).
    const now = ctx.deps.now();
    const since = prev && prev.outcome === "ok" && now.getTime() - prev.slot.getTime() < 48 * 3600_000
      ? prev.slot
      : new Date(now.getTime() - 24 * 3600_000);
    const previous = (prev?.details?.snapshots ?? undefined) as Digest["snapshots"] | undefined;
    const digest = await buildDigest(ctx.deps, { since, previous, services: ctx.services });
    const { main, thread } = renderDigest(digest);
    const message = await ctx.post(main);
    for (const reply of thread) await ctx.post(reply, { threadTs: message.ts });
    // The audit log's head, kept outside the database with every digest (jobs/audit_anchor.ts says why).
    const head = await auditHead(ctx.deps.state).catch(() => undefined);
    if (head) await ctx.post(renderAnchor(head, now), { threadTs: message.ts });
    const c = countTargets(digest);
    const level: JobLevel = c.critical ? "critical" : c.warning || c.unknown ? "warning" : "ok";
    ctx.deps.metrics.observe(
      "bisman_digest_build_seconds",
      {},
      digest.ms / 1000,
      "Time to run every check of the digest",
    );
    return {
      summary: `${digest.targets.length} target(s): ${c.critical} critical, ${c.unknown} could not check, ` +
        `${c.warning} warning, ${c.ok} ok; built in ${Math.round(digest.ms)} ms`,
      level,
      details: { snapshots: digest.snapshots, counts: c, thread_replies: thread.length, anchor: head },
      message,
    };
  },
};
