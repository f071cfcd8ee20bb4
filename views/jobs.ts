/**
 * Block Kit for scheduled jobs: `/bisman jobs`, the result of `/bisman run`, and the scheduler's failure and
 * recovery posts.
 *
 * @module
 */

import type { Block, Reply } from "./reply.ts";
import type { EffectiveSchedule, RunRecord } from "../core/job_service.ts";
import type { SlowQueriesReport } from "../ops/slow_queries.ts";
import { encodeAckButton, JOB_ACTIONS } from "./actions.ts";

/** Content blocks cut to leave room for the Acknowledge button and its note, which must never be cut. */
function roomForAck(blocks: Block[]): Block[] {
  return blocks.length <= 48
    ? blocks
    : [...blocks.slice(0, 47), context(`\u2026${blocks.length - 47} more blocks`)];
}

/** The Acknowledge button of a review run; the checklist counts the review once someone clicks it. */
function ackButton(runId: number): Block {
  return {
    type: "actions",
    block_id: `job.${runId}.ack`,
    elements: [{
      type: "button",
      text: { type: "plain_text", text: "Acknowledge review" },
      action_id: JOB_ACTIONS.ack,
      value: encodeAckButton(runId),
      style: "primary",
    }],
  };
}
import { capBlocks, chunkLines, context, escapeMrkdwn, header, mrkdwnSection, truncate } from "./blocks.ts";

const outcomeMark: Record<RunRecord["outcome"], string> = {
  ok: ":large_green_circle:",
  failed: ":red_circle:",
  interrupted: ":red_circle:",
  skipped: ":white_circle:",
  running: ":hourglass_flowing_sand:",
};

const levelWord = { ok: "ok", warning: "warning", critical: "critical" } as const;

/** "2026-11-26 09:00 UTC" */
export function shortTime(d: Date): string {
  return `${d.toISOString().slice(0, 16).replace("T", " ")} UTC`;
}

function runLine(r: RunRecord): string {
  const level = r.level && r.level !== "ok" ? ` (found: ${levelWord[r.level]})` : "";
  const what = r.outcome === "failed" || r.outcome === "interrupted"
    ? r.error ?? r.outcome
    : r.summary ?? r.outcome;
  const took = r.finishedAt ? `, ${Math.max(0, r.finishedAt.getTime() - r.startedAt.getTime())} ms` : "";
  return `${outcomeMark[r.outcome]} ${r.outcome}${level} at ${shortTime(r.slot)}${took}: ${
    escapeMrkdwn(truncate(what, 300))
  }`;
}

/** `/bisman jobs`: each schedule, its last run and its next run. */
export function renderJobs(schedules: EffectiveSchedule[], last: Map<string, RunRecord>): Reply {
  const lines = schedules.map((s) => {
    const when = s.unavailable
      ? `_not available: ${escapeMrkdwn(s.unavailable)}_`
      : s.enabled
      ? `\`${s.cron}\` ${s.timezone}${s.nextRun ? `, next ${shortTime(s.nextRun)}` : ""}`
      : "_disabled_";
    const tag = s.destructive ? " _(changes state: on demand through approval)_" : "";
    const r = last.get(s.name);
    const lastLine = r ? `\n      last: ${runLine(r)}` : "\n      last: never run";
    return `*${s.name}*${tag}: ${escapeMrkdwn(s.summary)}\n      ${when}${lastLine}`;
  });
  const blocks: Block[] = [
    header("Scheduled jobs"),
    ...chunkLines(lines).map(mrkdwnSection),
    context("`/bisman run <job>` runs one now. Times are UTC; schedules use their own time zone."),
  ];
  const text = [
    "Scheduled jobs:",
    ...schedules.map((s) => {
      const r = last.get(s.name);
      return `  ${s.name}: ${
        s.unavailable ? `not available (${s.unavailable})` : s.enabled ? s.cron : "disabled"
      }` +
        `${s.nextRun ? `, next ${shortTime(s.nextRun)}` : ""}; last: ${
          r ? `${r.outcome} at ${shortTime(r.slot)}` : "never"
        }`;
    }),
  ].join("\n");
  return { text, blocks: capBlocks(blocks), visibility: "ephemeral" };
}

/** The answer to `/bisman run <job>` once the run has finished. */
export function renderRunResult(r: RunRecord): Reply {
  const line = `Job *${r.job}* (run ${r.id}): ${runLine(r)}`;
  return {
    text: `Job ${r.job} run ${r.id}: ${r.outcome}: ${r.error ?? r.summary ?? ""}`,
    blocks: [mrkdwnSection(line)],
    visibility: "ephemeral",
  };
}

/** Posted once when a job starts failing. */
export function renderJobFailed(job: string, slot: Date, error: string, trigger: string): Reply {
  const text = `:x: Job ${job} failed (${trigger} run, slot ${shortTime(slot)}): ${error}`;
  return {
    text,
    blocks: [
      mrkdwnSection(
        `:x: *Job \`${job}\` failed* (${trigger} run, slot ${shortTime(slot)})\n${
          escapeMrkdwn(truncate(error, 2000))
        }`,
      ),
      context(
        "Posted once: further failures are counted in `/bisman jobs` and /metrics, not posted, until it succeeds again.",
      ),
    ],
    visibility: "in_channel",
  };
}

/** Posted once when a failing job succeeds again. */
export function renderJobRecovered(job: string, failures: number): Reply {
  const text = `:white_check_mark: Job ${job} succeeded again after ${failures} failed run${
    failures === 1 ? "" : "s"
  }`;
  return { text, blocks: [mrkdwnSection(text)], visibility: "in_channel" };
}

/** Posted once when a run is found abandoned by a replica that died. */
export function renderJobInterrupted(job: string, dead: { id: number; runner: string; slot: Date }): Reply {
  const text =
    `:x: Job ${job} run ${dead.id} (slot ${shortTime(dead.slot)}) was interrupted: replica ${dead.runner} ` +
    "stopped renewing its lease (it died or hung). The next slots run on the other replicas.";
  return {
    text,
    blocks: [
      mrkdwnSection(escapeMrkdwn(text)),
      context("Posted once: further failures are not posted until the job succeeds again."),
    ],
    visibility: "in_channel",
  };
}

/** The weekly slow-query review: the slowest statements per target, and how to acknowledge the review. */
export function renderSlowQueryReview(
  runId: number,
  reports: SlowQueriesReport[],
  failed: { target: string; error: string }[],
): Reply {
  const blocks: Block[] = [header("Weekly slow-query review")];
  for (const r of reports) {
    const lines = r.queries.map((q) => {
      const m = q.meanMs >= r.thresholdMs ? ":large_yellow_circle:" : ":large_green_circle:";
      const text = escapeMrkdwn(truncate(q.query.replace(/\s+/g, " "), 160));
      return `${m} ${Math.round(q.meanMs)} ms mean × ${q.calls} calls${
        q.user ? ` (${q.user})` : ""
      }: \`${text}\``;
    });
    const head =
      `*${escapeMrkdwn(r.target)}*: ${r.overThreshold} statement(s) over ${r.thresholdMs} ms mean` +
      (r.statsReset ? `, since ${r.statsReset.slice(0, 10)}` : "");
    blocks.push(
      ...chunkLines([head, ...(lines.length ? lines : ["no statements recorded"])]).map(mrkdwnSection),
    );
  }
  for (const f of failed) {
    blocks.push(
      mrkdwnSection(`:white_circle: *${escapeMrkdwn(f.target)}*: could not check: ${escapeMrkdwn(f.error)}`),
    );
  }
  const all = [
    ...roomForAck(blocks),
    ackButton(runId),
    context(
      `Reviewed it? Acknowledge it (or \`/bisman jobs ack ${runId}\`): the checklist's "slow queries reviewed this week" waits for it.`,
    ),
  ];
  const text = `Weekly slow-query review (run ${runId}): ${
    reports.map((r) => `${r.target} ${r.overThreshold} over ${r.thresholdMs} ms`).join(", ")
  }`;
  return { text, blocks: all, visibility: "in_channel" };
}

/** A target whose judged state changed since the previous run. */
export interface TargetChange {
  target: string;
  was: "ok" | "warning" | "critical";
  now: "ok" | "warning" | "critical";
  lines: { status: "ok" | "warning" | "critical"; text: string }[];
}

const mark = {
  ok: ":large_green_circle:",
  warning: ":large_yellow_circle:",
  critical: ":red_circle:",
} as const;

/** Posted when targets got worse or recovered since a periodic check's previous run. */
export function renderTargetChanges(title: string, changes: TargetChange[]): Reply {
  const lines = changes.flatMap((c) => [
    `${mark[c.now]} *${escapeMrkdwn(c.target)}*: ${c.was} \u2192 ${c.now}`,
    ...c.lines.map((l) => `      ${mark[l.status]} ${escapeMrkdwn(truncate(l.text, 400))}`),
  ]);
  const blocks: Block[] = [header(title), ...chunkLines(lines).map(mrkdwnSection)];
  const text = `${title}: ${changes.map((c) => `${c.target} ${c.was} \u2192 ${c.now}`).join(", ")}`;
  return { text, blocks: capBlocks(blocks), visibility: "in_channel" };
}

/** The hourly audit-anomaly findings, with how to acknowledge them. */
export function renderAuditAnomalies(
  runId: number,
  from: Date,
  results: (
    | {
      target: string;
      findings: { severity: "warning" | "critical"; title: string; next?: string; auditSearch?: string }[];
      events: { severity: string; eventType: string; occurredAt: string; actor: string | null }[];
      skipped: string[];
    }
    | { target: string; error: string }
  )[],
): Reply {
  const lines: string[] = [];
  for (const r of results) {
    if ("error" in r) {
      lines.push(`:white_circle: *${escapeMrkdwn(r.target)}*: could not check: ${escapeMrkdwn(r.error)}`);
      continue;
    }
    if (!r.findings.length && !r.events.length) continue;
    lines.push(`*${escapeMrkdwn(r.target)}*`);
    for (const f of r.findings) {
      // The searches name roles and tables from the database: escaped like every other value.
      const more = f.auditSearch
        ? ` \`${escapeMrkdwn(f.auditSearch)}\``
        : f.next
        ? ` \`${escapeMrkdwn(f.next)}\``
        : "";
      lines.push(`${mark[f.severity]} ${escapeMrkdwn(truncate(f.title, 300))}${more}`);
    }
    for (const e of r.events) {
      const sev = e.severity === "critical" ? "critical" : "warning";
      lines.push(
        `${mark[sev]} security event ${escapeMrkdwn(e.eventType)} at ${shortTime(new Date(e.occurredAt))}${
          e.actor ? ` by ${escapeMrkdwn(e.actor)}` : ""
        }`,
      );
    }
  }
  const blocks: Block[] = [
    ...roomForAck([
      header("Audit anomalies"),
      context(`Since ${shortTime(from)}`),
      ...chunkLines(lines).map(mrkdwnSection),
    ]),
    ackButton(runId),
    context(
      `Reviewed them? Acknowledge them (or \`/bisman jobs ack ${runId}\`): the checklist's "audit logs reviewed" waits for it.`,
    ),
  ];
  return {
    text: `Audit anomalies (run ${runId}): ${
      lines.filter((l) => /^:(red|large_yellow)/.test(l)).length
    } finding(s)`,
    blocks: capBlocks(blocks),
    visibility: "in_channel",
  };
}
