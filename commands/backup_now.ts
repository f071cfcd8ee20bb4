/**
 * `/bisman backup now [target] [full|diff|incr]`: asks the approval gate for an on-demand backup
 * (ops/backup_now.ts) from the target's configured source: a pgBackRest backup of that type, or pg_dump -Fc
 * into the dump folder. Its policy is `policies.backup_now`; once approved, the approval message shows its
 * progress, and the new backup is in `/bisman backups` at once.
 *
 * @module
 */

import { z } from "zod";
import { resolveTarget, targetArg, validateArgs } from "./args.ts";
import { defineSubcommand } from "./types.ts";
import { NotConfigured } from "../core/errors.ts";
import { backupSource } from "../ops/backup_now.ts";
import { renderRequestCreated } from "../views/approval.ts";
import { own } from "../core/lookup.ts";

const USAGE = "/bisman backup now [target] [full|diff|incr]";
const type = z.enum(["full", "diff", "incr"]);

const schema = z.object({
  positional: z.tuple([
    z.literal("now", { error: 'say "now": /bisman backup now [target] [full|diff|incr]' }),
  ])
    .rest(z.union([type, targetArg], { error: "a target name, or full, diff or incr" }))
    .refine((a) => a.length <= 3, "at most a target and a backup type after now"),
  named: z.strictObject({}),
  rest: z.string(),
});

export const backupNowCommand = defineSubcommand({
  name: "backup",
  summary: "Take a backup now (pgBackRest full/diff/incr, or pg_dump into the dump folder), after approval",
  usage: USAGE,
  examples: ["/bisman backup now", "/bisman backup now prod diff"],
  access: "operator",
  destructive: true,
  parse: (args, deps) => {
    const a = validateArgs(schema, args, USAGE);
    let target: string | undefined;
    let kind: "full" | "diff" | "incr" | undefined;
    for (const p of a.positional.slice(1)) {
      if (type.safeParse(p).success && !own(deps.config.targets, p)) kind = p as typeof kind;
      else target = p;
    }
    const resolved = resolveTarget(deps.config, target, USAGE);
    backupSource(deps, resolved); // NotConfigured at once when the target has no backup source
    return { target: resolved, ...(kind ? { type: kind } : {}) };
  },
  run: async (ctx, args) => {
    if (!ctx.deps.gate) throw new NotConfigured("The approval gate is not running in this process");
    return renderRequestCreated(
      await ctx.deps.gate.request({ action: "backup_now", args, invoker: ctx.invoker }),
    );
  },
});
