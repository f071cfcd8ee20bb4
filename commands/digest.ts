/**
 * `/bisman digest`: post the daily digest in the ops channel now (recorded as a manual run of the digest
 * job); `/bisman digest preview [target]`: show it only to the asker, posting nothing.
 *
 * @module
 */

import { z } from "zod";
import { targetArg, validateArgs } from "./args.ts";
import { defineSubcommand } from "./types.ts";
import { InvalidInput, NotConfigured } from "../core/errors.ts";
import { buildDigest } from "../jobs/digest.ts";
import { renderDigest } from "../views/digest.ts";
import { renderRunResult } from "../views/jobs.ts";
import { mrkdwnSection } from "../views/blocks.ts";
import { own } from "../core/lookup.ts";

const usage = "/bisman digest [preview [target]]";

/** `[preview [target]]` (built once at load: zod compiles every schema it builds, too dear per request). */
const digestArgs = z.object({
  positional: z.tuple([]).or(z.tuple([z.literal("preview")])).or(z.tuple([z.literal("preview"), targetArg])),
  named: z.strictObject({}),
});

export const digestCommand = defineSubcommand({
  name: "digest",
  summary: "Post the daily digest in the ops channel now, or preview it (only you see it)",
  usage,
  examples: ["/bisman digest preview", "/bisman digest preview prod", "/bisman digest"],
  access: "operator",
  parse: (args, deps) => {
    const a = validateArgs(
      digestArgs,
      args,
      usage,
    );
    const target = a.positional[1];
    if (target && !own(deps.config.targets, target)) {
      throw new InvalidInput(
        `Unknown target "${target}": configured targets are ${Object.keys(deps.config.targets).join(", ")}`,
      );
    }
    return { preview: a.positional[0] === "preview", target };
  },
  run: async (ctx, args) => {
    const deps = ctx.deps;
    if (args.preview) {
      const digest = await buildDigest(deps, {
        targets: args.target ? [args.target] : undefined,
        services: deps.jobs?.services,
      });
      const { main, thread } = renderDigest(digest);
      // A preview is one ephemeral message: with a thread, the per-target details are what the asker needs.
      const reply = thread.length && args.target ? thread[0] : main;
      return { ...reply, visibility: "ephemeral" };
    }
    if (!deps.jobs) throw new NotConfigured("Scheduled jobs do not run in this process: use `preview`");
    const record = await deps.jobs.runNow("digest", ctx.invoker);
    if (record.outcome !== "ok") return renderRunResult(record);
    const text = `:newspaper: Digest posted in <#${deps.config.slack.ops_channel}> (run ${record.id}): ${
      record.summary ?? ""
    }`;
    return { text, blocks: [mrkdwnSection(text)], visibility: "ephemeral" };
  },
});
