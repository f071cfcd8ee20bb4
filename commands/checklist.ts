/**
 * `/bisman checklist [target]`: the seed's checklists evaluated live, each item with its evidence and the
 * command that shows more.
 *
 * @module
 */

import { optionalTargetOnly, resolveTarget, validateArgs } from "./args.ts";
import { defineSubcommand } from "./types.ts";
import { evaluateChecklist } from "../jobs/checklist.ts";
import { renderChecklist } from "../views/checklist.ts";

const usage = "/bisman checklist [target]";

export const checklistCommand = defineSubcommand({
  name: "checklist",
  summary: "The runbook's checklists evaluated live: pre-production, ongoing, incident response",
  usage,
  examples: ["/bisman checklist", "/bisman checklist prod"],
  access: "anyone",
  parse: (args, deps) => {
    const a = validateArgs(optionalTargetOnly, args, usage);
    return { target: resolveTarget(deps.config, a.positional[0], usage) };
  },
  run: async (ctx, args) =>
    renderChecklist(await evaluateChecklist(ctx.deps, args.target, ctx.deps.jobs?.services)),
});
