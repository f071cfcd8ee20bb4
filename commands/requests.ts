/**
 * `/bisman requests [pending|mine|all] [since=7d] [limit=30]`: approval requests with their state, action,
 * target, requester, approvals so far, age and a link to their message (chat.getPermalink). Ephemeral to
 * the asker. `pending` (the default) lists open ones; `mine` the asker's of any state; `all` every one.
 *
 * @module
 */

import { z } from "zod";
import { validateArgs } from "./args.ts";
import { defineSubcommand } from "./types.ts";
import { countApprovals, type RequestState, searchRequests } from "../gate/store.ts";
import { parseSince, sinceArg } from "../ops/_security.ts";
import { renderRequestList } from "../views/requests.ts";

const USAGE = "/bisman requests [pending|mine|all] [since=7d] [limit=30]";

const schema = z.object({
  positional: z.array(z.enum(["pending", "mine", "all"], { error: "pending, mine or all" }))
    .max(1, "give at most one of pending, mine, all"),
  named: z.strictObject({
    since: sinceArg.optional(),
    limit: z.string().regex(/^\d{1,3}$/, "a number from 1 to 100").transform(Number)
      .pipe(z.number().int().min(1).max(100)).optional(),
  }),
  rest: z.string(),
});

const OPEN: RequestState[] = ["pending", "approved", "running"];

export const requestsCommand = defineSubcommand({
  name: "requests",
  summary: "Approval requests: pending (default), yours, or all, with approvals, age and a link",
  usage: USAGE,
  examples: ["/bisman requests", "/bisman requests mine since=30d", "/bisman requests all since=24h"],
  access: "anyone",
  parse: (args) => {
    const a = validateArgs(schema, args, USAGE);
    return { scope: a.positional[0] ?? "pending", since: a.named.since ?? "7d", limit: a.named.limit ?? 30 };
  },
  run: async (ctx, args) => {
    const { deps } = ctx;
    const now = deps.now();
    const since = parseSince(args.since, now);
    const rows = await searchRequests(deps.state, {
      since,
      limit: args.limit,
      states: args.scope === "pending" ? OPEN : undefined,
      requester: args.scope === "mine" ? ctx.invoker.userId : undefined,
    });
    const counts = await countApprovals(deps.state, rows.map((r) => r.id));
    const items = await Promise.all(rows.map(async (r) => ({
      request: r,
      approvals: counts.get(r.id) ?? 0,
      permalink: r.channel && r.message_ts ? await deps.slack?.permalink(r.channel, r.message_ts) : undefined,
    })));
    return renderRequestList(items, { scope: args.scope, since, limit: args.limit }, now);
  },
});
