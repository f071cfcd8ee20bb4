/**
 * Review jobs: they post what a person should look at, and the checklist counts the review as done only
 * once someone acknowledges the posted run (a button on the message, or `/bisman jobs ack <run>`).
 *
 * @module
 */

import type { JobDefinition, JobLevel } from "./types.ts";
import { readSlowQueries, type SlowQueriesReport } from "../ops/slow_queries.ts";
import { OpsError } from "../core/errors.ts";
import { renderSlowQueryReview } from "../views/jobs.ts";

/** Statements listed per target in the weekly review. */
const REVIEW_SIZE = 10;

/** The seed's "review slow query logs weekly": the slowest statements of every target, to acknowledge. */
export const slowQueryReviewJob: JobDefinition = {
  name: "slow_query_review",
  summary: "The slowest statements of every target for the weekly review; someone acknowledges it",
  defaultCron: "0 9 * * 1",
  destructive: false,
  run: async (ctx) => {
    const names = ctx.deps.targets.names();
    const results = await Promise.all(names.map(async (target) => {
      try {
        return { target, report: await readSlowQueries(target, ctx.deps, REVIEW_SIZE) };
      } catch (err) {
        const why = err instanceof OpsError ? ctx.deps.secrets.scrub(err.userMessage) : "internal error";
        if (!(err instanceof OpsError)) ctx.log.warn("slow query review failed", { target, error: err });
        return { target, error: why };
      }
    }));
    const reviewed = results.filter((r): r is { target: string; report: SlowQueriesReport } => "report" in r);
    if (!reviewed.length) {
      throw new OpsError(
        "unreachable",
        `No target could be read: ${
          results.map((r) => `${r.target}: ${"error" in r ? r.error : ""}`).join("; ")
        }`,
      );
    }
    const over = reviewed.reduce((n, r) => n + r.report.overThreshold, 0);
    const failed = results.filter((r): r is { target: string; error: string } => "error" in r);
    const message = await ctx.post(renderSlowQueryReview(ctx.runId, reviewed.map((r) => r.report), failed));
    const level: JobLevel = over || failed.length ? "warning" : "ok";
    return {
      summary: `${over} statement(s) over ${ctx.deps.config.thresholds.slow_query_mean_ms} ms mean across ` +
        `${reviewed.length} target(s)${
          failed.length ? `; could not read ${failed.map((f) => f.target).join(", ")}` : ""
        }` +
        "; waiting for an acknowledgement",
      level,
      details: {
        targets: Object.fromEntries(reviewed.map((r) => [r.target, {
          over: r.report.overThreshold,
          top: r.report.queries.map((q) => ({
            id: q.queryId,
            mean_ms: Math.round(q.meanMs),
            calls: q.calls,
          })),
        }])),
        failed,
      },
      message,
    };
  },
};
