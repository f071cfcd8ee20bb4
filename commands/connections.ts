/**
 * `/bisman connections [target]`: who is connected, by user, application, client address and state, and the
 * idle-in-transaction sessions of the connection-leak check (ops/connections.ts).
 * `/bisman terminate-idle [target] [minutes=N]`: asks, through the approval gate, to terminate the sessions idle
 * in a transaction for more than N minutes (ops/terminate_idle.ts); the plan lists the exact sessions.
 *
 * @module
 */

import { z } from "zod";
import { optionalTarget, optionalTargetOnly, resolveTarget, validateArgs } from "./args.ts";
import { defineSubcommand } from "./types.ts";
import { readConnections } from "../ops/connections.ts";
import { renderConnections } from "../views/connections.ts";
import { renderRequestCreated } from "../views/approval.ts";

const USAGE = "/bisman connections [target]";
const TERMINATE_USAGE = "/bisman terminate-idle [target] [minutes=N]";

export const connectionsCommand = defineSubcommand({
  name: "connections",
  summary: "Connections by user, application, client address and state, and idle-in-transaction sessions",
  usage: USAGE,
  examples: ["/bisman connections", "/bisman connections prod"],
  access: "operator",
  parse: (args, deps) => ({
    target: resolveTarget(deps.config, validateArgs(optionalTargetOnly, args, USAGE).positional[0]),
  }),
  run: async (ctx, args) => renderConnections(await readConnections(args.target, ctx.deps)),
});

const terminateSchema = z.object({
  positional: optionalTarget,
  named: z.strictObject({
    minutes: z.string().regex(/^\d{1,4}(\.\d{1,2})?$/, "minutes, e.g. 10 or 0.5").transform(Number)
      .pipe(z.number().positive().max(24 * 60)).optional(),
  }),
  rest: z.string(),
});

export const terminateIdleCommand = defineSubcommand({
  name: "terminate-idle",
  summary: "Terminate sessions idle in a transaction for more than N minutes (asks for approval)",
  usage: TERMINATE_USAGE,
  examples: ["/bisman terminate-idle", "/bisman terminate-idle prod minutes=30"],
  access: "operator",
  destructive: true,
  parse: (args, deps) => {
    const a = validateArgs(terminateSchema, args, TERMINATE_USAGE);
    return {
      target: resolveTarget(deps.config, a.positional[0]),
      older_than_minutes: a.named.minutes ?? deps.config.thresholds.idle_in_transaction_minutes,
    };
  },
  run: async (ctx, args) =>
    renderRequestCreated(
      await ctx.deps.gate!.request({ action: "terminate_idle", args, invoker: ctx.invoker }),
    ),
});
