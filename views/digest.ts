/**
 * Block Kit for the daily digest: one message, worst targets first and the worst line first within each.
 *
 * Up to `digest.inline_targets` targets (10 by default) fit in the message itself: at most a few sections per
 * target, each under Slack's 3,000 characters, well under 50 blocks. With more targets, or when a message
 * would still pass 50 blocks, the message lists one line per target and the details go to its thread, one
 * reply per target.
 *
 * @module
 */

import type { Block, Reply } from "./reply.ts";
import {
  type Digest,
  type DigestSection,
  sectionStatus,
  statusRank,
  type TargetDigest,
  targetStatus,
} from "./digest_model.ts";
import {
  chunkLines,
  context,
  escapeMrkdwn,
  header,
  LIMITS,
  mrkdwnSection,
  statusMark,
  truncate,
  truncateMrkdwn,
} from "./blocks.ts";

type AnyStatus = keyof typeof statusRank;

/** The mark of any status, including "not available". */
export function mark(s: AnyStatus): string {
  if (s === "unavailable") return ":heavy_minus_sign: not available";
  if (s === "not_configured") return ":heavy_minus_sign: not configured";
  return statusMark(s);
}

function day(d: Date): string {
  return d.toISOString().slice(0, 10);
}

function time(d: Date): string {
  return `${d.toISOString().slice(0, 16).replace("T", " ")} UTC`;
}

/** The lines of one section: one per finding, or one saying why it could not be checked. */
function sectionLines(s: DigestSection): string[] {
  const r = s.result;
  if (r.state === "checked") {
    return r.lines.map((l) => `${mark(l.status)} *${s.title}*: ${escapeMrkdwn(l.text)}`);
  }
  if (r.state === "failed") {
    return [`${statusMark("unknown")} *${s.title}*: could not check: ${escapeMrkdwn(r.error)}`];
  }
  return [`${mark("unavailable")} *${s.title}*: ${escapeMrkdwn(r.why)}`];
}

const byStatus = (a: DigestSection, b: DigestSection) =>
  statusRank[sectionStatus(b.result)] - statusRank[sectionStatus(a.result)];

/** Every line of a target, worst first; sections lost to an unreachable primary are folded into one line. */
export function targetLines(t: TargetDigest): string[] {
  const lines: string[] = [];
  let sections = [...t.sections].sort(byStatus);
  if (t.unreachable) {
    const lost = sections.filter((s) => s.result.state === "failed" && s.result.unreachable);
    sections = sections.filter((s) => !lost.includes(s));
    const names = lost.length ? ` (${lost.map((s) => s.title).join(", ")})` : "";
    lines.push(`${statusMark("unknown")}: ${escapeMrkdwn(t.unreachable)}${names}`);
  }
  const unavailable = sections.filter((s) => s.result.state === "unavailable");
  for (const s of sections) if (s.result.state !== "unavailable") lines.push(...sectionLines(s));
  if (unavailable.length) {
    lines.push(`${mark("unavailable")}: ${unavailable.map((s) => s.title).join(", ")}`);
  }
  return lines;
}

function targetHeading(t: TargetDigest): string {
  const desc = t.description ? ` _${escapeMrkdwn(truncate(t.description, 80))}_` : "";
  return `*${escapeMrkdwn(t.target)}*${desc}: ${mark(targetStatus(t))}`;
}

/** The blocks of one target: a heading and its lines, split into sections under 3,000 characters. */
export function targetBlocks(t: TargetDigest): Block[] {
  const chunks = chunkLines([targetHeading(t), ...targetLines(t)], LIMITS.sectionText - 100);
  return chunks.map(mrkdwnSection);
}

function sortTargets(list: TargetDigest[]): TargetDigest[] {
  return [...list].sort((a, b) =>
    statusRank[targetStatus(b)] - statusRank[targetStatus(a)] || a.target.localeCompare(b.target)
  );
}

function counts(d: Digest): string {
  const c: Record<AnyStatus, number> = {
    critical: 0,
    unknown: 0,
    warning: 0,
    ok: 0,
    not_configured: 0,
    unavailable: 0,
  };
  for (const t of d.targets) c[targetStatus(t)]++;
  const parts = [
    c.critical && `${c.critical} critical`,
    c.unknown && `${c.unknown} could not check`,
    c.warning && `${c.warning} warning`,
    c.ok && `${c.ok} ok`,
    c.not_configured && `${c.not_configured} not configured`,
  ].filter(Boolean);
  return `${d.targets.length} target${d.targets.length === 1 ? "" : "s"}: ${parts.join(", ") || "none"}`;
}

/** Why sections are "not available", once for the whole message rather than once per target. */
function unavailableNote(d: Digest): string | undefined {
  const why = new Map<string, string>();
  for (const s of [...d.global, ...d.targets.flatMap((t) => t.sections)]) {
    if (s.result.state === "unavailable") why.set(s.title, s.result.why);
  }
  if (!why.size) return undefined;
  return `Not available: ${[...why].map(([title, w]) => `${title}: ${w}`).join("; ")}`;
}

/** A one-line summary of a target for the compact form: its status and its worst line. */
function summaryLine(t: TargetDigest): string {
  const first = targetLines(t)[0] ?? "";
  return `${targetHeading(t)}  ${truncateMrkdwn(first.replace(/^:[a-z_]+: [a-z ]+\s*/, ""), 200)}`;
}

/** The digest as one message and, when it is too long for one, the replies of its thread. */
export function renderDigest(d: Digest): { main: Reply; thread: Reply[] } {
  const targets = sortTargets(d.targets);
  const top: Block[] = [
    header(`Daily digest ${day(d.generatedAt)}`),
    context(`Since ${time(d.since)} · ${counts(d)} · checked in ${Math.round(d.ms)} ms`),
  ];
  const globalLines = [...d.global].sort(byStatus).flatMap(sectionLines);
  if (globalLines.length) top.push(...chunkLines(globalLines).map(mrkdwnSection));
  const note = unavailableNote(d);
  const footer = [
    ...(note ? [context(escapeMrkdwn(note))] : []),
    context(
      "`/bisman checklist <target>` evaluates the runbook checklist live; `/bisman jobs` shows the schedules.",
    ),
  ];
  const text = truncate(
    [
      `Daily digest ${day(d.generatedAt)}: ${counts(d)}`,
      ...targets.map((t) => `${t.target}: ${targetStatus(t)}`),
    ]
      .join("\n"),
    3000,
  );

  const inline = targets.flatMap(targetBlocks);
  if (d.targets.length <= d.inlineTargets && top.length + inline.length + footer.length <= LIMITS.blocks) {
    return { main: { text, blocks: [...top, ...inline, ...footer], visibility: "in_channel" }, thread: [] };
  }

  const summary = chunkLines(targets.map(summaryLine)).map(mrkdwnSection);
  const room = LIMITS.blocks - top.length - footer.length - 1;
  const shown = summary.slice(0, room);
  const main: Reply = {
    text,
    blocks: [
      ...top,
      ...shown,
      context(
        `Details for each target are in this message's thread${
          shown.length < summary.length ? ` (the list above is cut: ${targets.length} targets)` : ""
        }.`,
      ),
      ...footer,
    ],
    visibility: "in_channel",
  };
  const thread = targets.map((t) => ({
    text: `${t.target}: ${targetStatus(t)}`,
    blocks: targetBlocks(t).slice(0, LIMITS.blocks),
    visibility: "in_channel" as const,
  }));
  return { main, thread };
}
