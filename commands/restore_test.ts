/**
 * `/bisman restore-test [target] [backup]`: restores the newest (or the named) dump into a scratch
 * database on the restore server, verifies it, drops it and records the result. Operators only. Where the
 * target's config says restore tests need approval (by default: only when they restore on the production
 * primary), this creates an approval request instead.
 *
 * The ack comes at once (the router acks non-instant commands before running them). A test may run for hours
 * (up to `restore_test.timeout`), longer than a Slack response_url lives (30 minutes, 5 posts): it is `long`,
 * so Slack shows its progress and its result in a message in the asker's channel, through the Web API
 * (slack/answers.ts). Progress (phase, objects restored, elapsed time) is throttled ({@link throttleProgress}):
 * as many updates as come, at most one a minute, through the Web API; 4 where the entry has fewer to give.
 *
 * @module
 */

import { z } from "zod";
import { resolveTarget, targetArg, validateArgs } from "./args.ts";
import { defineSubcommand, type Reply } from "./types.ts";
import { InvalidInput, NotConfigured } from "../core/errors.ts";
import { actorOf } from "../core/access.ts";
import {
  backupFileArg,
  planRestoreTest,
  type RestoreProgress,
  restoreTestConfig,
  restoreTestNeedsApproval,
  runRestoreTest,
} from "../ops/restore_test.ts";
import { renderRestoreProgress, renderRestoreResult } from "../views/restore_test.ts";
import { registerPlanNote, registerPrecondition } from "../gate/hooks.ts";
import { checkRestoreRequirement, provenRestoreNote } from "../ops/restore_history.ts";
import { renderRequestCreated } from "../views/approval.ts";
import { own } from "../core/lookup.ts";

// Proven restores are a fact the gate uses: a policy may require a recent passing test before an action
// (checked at request time and again before running), and every plan shows the last proven restore.
registerPrecondition(({ action, target, deps }) => checkRestoreRequirement(deps, action, target));
registerPlanNote(({ target, deps }) => provenRestoreNote(deps, target));

const usage = "/bisman restore-test [target] [backup]";

/**
 * Paces progress updates of one reply: at most `maxUpdates` (4 by default: a response_url takes 5 posts and
 * the answer needs one), the first after `firstAfterMs` and each later one twice as far apart, up to
 * `maxGapMs` (3 s, 9 s, 21 s, 45 s into the run; with the Web API's unlimited updates and a one-minute cap,
 * once a minute after that), always with the newest state and a fresh elapsed time. Posts are chained, so the
 * final answer (sent after `done()`) can never be overtaken by a late progress post; a tick while a post is in
 * flight is skipped, and a failed post stops progress updates (the run goes on).
 */
export function throttleProgress(
  send: (reply: Reply) => Promise<void>,
  opts: { firstAfterMs?: number; maxUpdates?: number; maxGapMs?: number; onError?: (err: unknown) => void } =
    {},
): { push(p: RestoreProgress): void; done(): Promise<void>; sent(): number } {
  const maxUpdates = opts.maxUpdates ?? 4;
  const maxGap = opts.maxGapMs ?? Infinity;
  let gap = Math.min(opts.firstAfterMs ?? 3000, maxGap);
  const started = performance.now();
  let latest: RestoreProgress | undefined;
  let count = 0;
  let closed = false;
  let inFlight = false;
  let chain: Promise<void> = Promise.resolve();
  let timer: ReturnType<typeof setTimeout> | undefined;
  const schedule = () => {
    if (closed || count >= maxUpdates) return;
    timer = setTimeout(() => {
      timer = undefined;
      if (closed) return;
      gap = Math.min(gap * 2, maxGap);
      // A post still in flight (Slack slow) makes this tick wait for the next: no queue of stale states.
      if (latest && !inFlight) {
        const p = { ...latest, elapsedMs: performance.now() - started };
        count++;
        inFlight = true;
        chain = chain.then(() => send(renderRestoreProgress(p)))
          .catch((err) => {
            // An expired or used-up response_url stays so: stop sending progress, keep running.
            closed = true;
            opts.onError?.(err);
          })
          .finally(() => {
            inFlight = false;
            // The next gap counts from this post's end, so posts are never closer than the gap, even when
            // a busy event loop ran this one late.
            schedule();
          });
        return;
      }
      schedule();
    }, gap);
  };
  schedule();
  return {
    push: (p) => {
      latest = p;
    },
    done: async () => {
      closed = true;
      clearTimeout(timer);
      await chain;
    },
    sent: () => count,
  };
}

const argsSchema = z.object({
  positional: z.union([z.tuple([]), z.tuple([z.string()]), z.tuple([targetArg, backupFileArg])]),
  named: z.strictObject({}),
  rest: z.string(),
});

export const restoreTestCommand = defineSubcommand({
  name: "restore-test",
  summary: "Restore the newest (or a named) dump into a scratch database, verify it, drop it, record it",
  usage,
  examples: [
    "/bisman restore-test",
    "/bisman restore-test prod",
    "/bisman restore-test prod bisman_20260501.dump",
  ],
  access: "operator",
  parse: (args, deps) => {
    const a = validateArgs(argsSchema, args, usage);
    let target: string | undefined;
    let backup: string | undefined;
    if (a.positional.length === 2) [target, backup] = a.positional;
    else if (a.positional.length === 1) {
      const one = a.positional[0];
      if (own(deps.config.targets, one)) target = one;
      else if (backupFileArg.safeParse(one).success && one.includes(".")) backup = one;
      else {
        throw new InvalidInput(
          `Unknown target "${one.slice(0, 64)}": configured targets are ${
            Object.keys(deps.config.targets).join(", ")
          }`,
        );
      }
    }
    const resolved = resolveTarget(deps.config, target, usage);
    restoreTestConfig(deps, resolved); // NotConfigured at once when the target has no restore tests
    return { target: resolved, backup };
  },
  // Hours where it restores; a request for approval when the target wants one (the gate reports that run).
  long: (args, deps) => !restoreTestNeedsApproval(deps, args.target),
  run: async (ctx, args) => {
    const deps = ctx.deps;
    if (restoreTestNeedsApproval(deps, args.target)) {
      if (!deps.gate) {
        throw new NotConfigured(
          "Restore tests of this target need approval, and the approval gate is not running",
        );
      }
      return renderRequestCreated(
        await deps.gate.request({
          action: "restore_test_gated",
          args: { target: args.target, ...(args.backup ? { backup: args.backup } : {}) },
          invoker: ctx.invoker,
        }),
      );
    }
    const opDeps = { ...deps, actor: actorOf(ctx.invoker) };
    const plan = await planRestoreTest(args, opDeps);
    const progress = ctx.progress
      ? throttleProgress(ctx.progress, {
        maxUpdates: ctx.progressLimit ?? 4,
        maxGapMs: 60_000,
        onError: (err) => deps.log.warn("restore progress update failed", { error: err }),
      })
      : undefined;
    try {
      const result = await runRestoreTest(plan, opDeps, {
        onProgress: (p) => progress?.push(p),
        trigger: ctx.invoker.via === "cli" ? "cli" : "command",
      });
      return renderRestoreResult(result);
    } finally {
      await progress?.done();
    }
  },
});
