/**
 * `/bisman promote <replica> [target]`: asks, through the approval gate (2 approvals unless the policy says
 * otherwise), to promote a streaming replica to primary (ops/promote_replica.ts). The plan shows the replica's
 * lag and whether the old primary still answers; right before promoting, the run refuses when the old primary
 * answers as a writable primary, unless the request said `fenced=true`.
 *
 * @module
 */

import { z } from "zod";
import { resolveTarget, targetArg, validateArgs } from "./args.ts";
import { defineSubcommand } from "./types.ts";
import { InvalidInput } from "../core/errors.ts";
import { renderRequestCreated } from "../views/approval.ts";
import { own } from "../core/lookup.ts";

const USAGE = "/bisman promote <replica> [target] [fenced=true]";

const schema = z.object({
  positional: z.tuple([targetArg]).or(z.tuple([targetArg, targetArg])),
  // fenced=true: the requester states no client can write to the old primary any more, so the run promotes
  // even if the bot still reaches it as a writable primary. Without it, that answer refuses the run.
  named: z.strictObject({ fenced: z.enum(["true", "false"]).transform((v) => v === "true").optional() }),
  rest: z.string(),
});

export const promoteCommand = defineSubcommand({
  name: "promote",
  summary: "Promote a streaming replica to primary (asks for approval; warns about split brain)",
  usage: USAGE,
  examples: [
    "/bisman promote replica1",
    "/bisman promote replica1 prod",
    "/bisman promote replica1 fenced=true",
  ],
  access: "operator",
  destructive: true,
  parse: (args, deps) => {
    const a = validateArgs(schema, args, USAGE);
    const [replica, named] = a.positional;
    const target = resolveTarget(deps.config, named);
    const replicas = own(deps.config.targets, target)!.replicas.map((r) => r.name);
    if (!replicas.includes(replica)) {
      throw new InvalidInput(
        `Cannot promote "${replica}": target ${target} has ${
          replicas.length ? `replicas ${replicas.join(", ")}` : "no replicas"
        }. Usage: \`${USAGE}\``,
      );
    }
    return { replica, target, ...(a.named.fenced ? { fenced: true } : {}) };
  },
  run: async (ctx, args) =>
    renderRequestCreated(
      await ctx.deps.gate!.request({ action: "promote_replica", args, invoker: ctx.invoker }),
    ),
});
