/**
 * `/bisman reset-stats [target]`: asks, through the approval gate, to reset pg_stat_statements on a
 * target's primary (ops/reset_statements.ts).
 *
 * @module
 */

import { optionalTargetOnly, resolveTarget, validateArgs } from "./args.ts";
import { defineSubcommand } from "./types.ts";
import { renderRequestCreated } from "../views/approval.ts";

const USAGE = "/bisman reset-stats [target]";

export const resetStatsCommand = defineSubcommand({
  name: "reset-stats",
  summary: "Reset pg_stat_statements on a target's primary (the slow-query history starts again)",
  usage: USAGE,
  examples: ["/bisman reset-stats", "/bisman reset-stats prod"],
  access: "operator",
  destructive: true,
  parse: (args, deps) => {
    const a = validateArgs(optionalTargetOnly, args, USAGE);
    return { target: resolveTarget(deps.config, a.positional[0]) };
  },
  run: async (ctx, args) =>
    renderRequestCreated(
      await ctx.deps.gate!.request({ action: "reset_statements", args, invoker: ctx.invoker }),
    ),
});
