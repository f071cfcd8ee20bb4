/**
 * `/bisman slow-queries [target] [limit=N]`: the slowest statements by mean time from pg_stat_statements
 * (ops/slow_queries.ts). Operators only: query texts can say more about the data than the rest of the bot shows.
 *
 * @module
 */

import { z } from "zod";
import { optionalTarget, resolveTarget, validateArgs } from "./args.ts";
import { defineSubcommand } from "./types.ts";
import { readSlowQueries } from "../ops/slow_queries.ts";
import { renderSlowQueries } from "../views/connections.ts";

const USAGE = "/bisman slow-queries [target] [limit=N]";

const schema = z.object({
  positional: optionalTarget,
  named: z.strictObject({
    limit: z.string().regex(/^\d{1,2}$/, "a number from 1 to 50").transform(Number).pipe(
      z.number().int().min(1).max(50),
    )
      .optional(),
  }),
  rest: z.string(),
});

export const slowQueriesCommand = defineSubcommand({
  name: "slow-queries",
  summary: "The slowest statements by mean time (pg_stat_statements): calls, mean and total time",
  usage: USAGE,
  examples: ["/bisman slow-queries", "/bisman slow-queries prod limit=20"],
  access: "operator",
  parse: (args, deps) => {
    const a = validateArgs(schema, args, USAGE);
    const target = resolveTarget(deps.config, a.positional[0]);
    return { target, limit: a.named.limit ?? 10 };
  },
  run: async (ctx, args) => renderSlowQueries(await readSlowQueries(args.target, ctx.deps, args.limit)),
});
