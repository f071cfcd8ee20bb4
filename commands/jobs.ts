/**
 * `/bisman jobs`: the schedules, each job's last run and next run; `/bisman jobs ack <run>` acknowledges a
 * review run; `/bisman run <job>`: one job now (read-only jobs for operators, destructive ones through the
 * approval gate).
 *
 * @module
 */

import { z } from "zod";
import { validateArgs } from "./args.ts";
import { defineSubcommand } from "./types.ts";
import { InvalidInput, NotConfigured, OpsError } from "../core/errors.ts";
import { actorOf, requireOperator } from "../core/access.ts";
import type { AppDeps } from "../core/deps.ts";
import type { JobService } from "../jobs/types.ts";
import { getJob } from "../jobs/registry.ts";
import { ackRun, readRun } from "../jobs/run_store.ts";
import { renderJobs, renderRunResult } from "../views/jobs.ts";
import { mrkdwnSection } from "../views/blocks.ts";
import { renderRequestCreated } from "../views/approval.ts";

const jobName = z.string().regex(/^[a-z][a-z0-9_]{0,40}$/, "a job name such as digest");

function service(deps: AppDeps): JobService {
  if (!deps.jobs) throw new NotConfigured("Scheduled jobs do not run in this process");
  return deps.jobs;
}

/** `[ack <run>]` (built once at load: zod compiles every schema it builds, too dear per request). */
const jobsArgs = z.object({
  positional: z.tuple([]).or(z.tuple([z.literal("ack"), z.string().regex(/^\d{1,12}$/, "a run number")])),
  named: z.strictObject({}),
});

/** `<job>`. */
const runArgs = z.object({ positional: z.tuple([jobName]), named: z.strictObject({}) });

export const jobsCommand = defineSubcommand({
  name: "jobs",
  summary: "Scheduled jobs: schedule, last run with its outcome, next run; `ack <run>` acknowledges a review",
  usage: "/bisman jobs [ack <run>]",
  examples: ["/bisman jobs", "/bisman jobs ack 42"],
  access: "anyone",
  parse: (args) => {
    const a = validateArgs(jobsArgs, args, "/bisman jobs [ack <run>]");
    return a.positional.length ? { ack: Number(a.positional[1]) } : { ack: undefined };
  },
  run: async (ctx, args) => {
    const deps = ctx.deps;
    if (args.ack === undefined) {
      const jobs = service(deps);
      return renderJobs(jobs.schedules(), await jobs.lastRuns());
    }
    await requireOperator(deps.config, ctx.invoker, deps.groupMembers, "Acknowledging a review");
    const run = await readRun(deps.state, args.ack);
    if (!run) throw new InvalidInput(`No job run ${args.ack}: \`/bisman jobs\` shows the latest runs`);
    const done = await ackRun(deps.state, args.ack, ctx.invoker);
    if (!done) {
      const why = run.ackedAt
        ? `it was acknowledged by <@${run.ackedBy}> at ${run.ackedAt.toISOString()}`
        : `it ended ${run.outcome}, and only a successful run can be acknowledged`;
      throw new OpsError("conflict", `Run ${args.ack} of ${run.job} was not acknowledged: ${why}`);
    }
    await deps.audit.append({
      actor: actorOf(ctx.invoker),
      actorName: ctx.invoker.userName,
      action: "job.acknowledged",
      outcome: "ok",
      details: { job: run.job, run: run.id, slot: run.slot.toISOString() },
    });
    const text = `:white_check_mark: Run ${run.id} of ${run.job} acknowledged`;
    return { text, blocks: [mrkdwnSection(text)], visibility: "in_channel" };
  },
});

export const runCommand = defineSubcommand({
  name: "run",
  summary: "Run one scheduled job now (jobs that change state need approval)",
  usage: "/bisman run <job>",
  examples: ["/bisman run backup_status", "/bisman run cleanup"],
  access: "operator",
  parse: (args) => {
    const a = validateArgs(runArgs, args, "/bisman run <job>");
    return { job: a.positional[0] };
  },
  run: async (ctx, args) => {
    const deps = ctx.deps;
    const def = getJob(args.job);
    if (def?.destructive) {
      const why = def.unavailable?.(deps, {});
      if (why) throw new NotConfigured(`Job ${def.name} is not available: ${why}`);
      if (!deps.gate || !def.gateRequest) {
        throw new NotConfigured(`Job ${def.name} changes state, and this process has no approval gate`);
      }
      const req = def.gateRequest(deps);
      return renderRequestCreated(
        await deps.gate.request({ action: req.action, args: req.args, invoker: ctx.invoker }),
      );
    }
    const record = await service(deps).runNow(args.job, ctx.invoker);
    return renderRunResult(record);
  },
});
