/**
 * `/bisman audit [target] [table=...] [user=...] [app_user=...] [service=...] [action=...] [address=...]
 * [context=missing] [since=24h] [until=...] [limit=20]`: searches the target's audit_logs_dml
 * (ops/audit_search.ts), newest first, on a replica when one is configured. (`audit-log` is the bot's own log.)
 *
 * @module
 */

import { z } from "zod";
import { resolveTarget, targetArg, validateArgs } from "./args.ts";
import { defineSubcommand } from "./types.ts";
import { auditSearchArgs, searchAudit } from "../ops/audit_search.ts";
import { auditSearchCsv, renderAuditSearch } from "../views/audit.ts";

const USAGE =
  "/bisman audit [target] [table=clients] [user=bisman_app] [app_user=u42] [service=payments] [action=update] " +
  "[address=10.0.1.0/24] [context=missing] [since=24h] [until=\u2026] [limit=20] [format=csv]";

const s = auditSearchArgs.shape;
const schema = z.object({
  positional: z.tuple([targetArg]).or(z.tuple([])),
  named: z.strictObject({
    table: s.table,
    user: s.user,
    app_user: s.app_user,
    service: s.service,
    action: z.string().max(6).transform((v) => v.toUpperCase()).pipe(z.enum(["INSERT", "UPDATE", "DELETE"]))
      .optional(),
    address: s.address,
    context: s.context,
    since: s.since.optional(),
    until: s.until,
    limit: z.string().regex(/^\d{1,3}$/, "a number from 1 to 200").transform(Number).pipe(s.limit.unwrap())
      .optional(),
    // Everyday use (issue 11): the whole result, row data redacted, as a CSV file in a direct message.
    format: z.literal("csv", { error: 'the only format is "csv"' }).optional(),
  }),
  rest: z.string(),
});

export const auditCommand = defineSubcommand({
  name: "audit",
  summary: "Search the target's DML audit trail (audit_logs_dml) by table, DB user, app user, service, time",
  usage: USAGE,
  examples: [
    "/bisman audit table=clients since=24h",
    "/bisman audit prod app_user=u42 since=7d",
    "/bisman audit prod user=mallory",
    "/bisman audit prod context=missing since=24h",
  ],
  access: "operator",
  parse: (args, deps) => {
    const a = validateArgs(schema, args, USAGE);
    const { format, ...named } = a.named;
    return {
      search: { target: resolveTarget(deps.config, a.positional[0]), ...named },
      csv: format === "csv",
    };
  },
  run: async (ctx, args) => {
    const { deps, invoker } = ctx;
    const r = await searchAudit(args.search, deps);
    const reply = renderAuditSearch(r);
    // A result the message cannot hold (or one asked for as CSV) goes to the asker as a file too.
    const cut = /more row\(s\); narrow the search/.test(reply.text) || r.more > 0;
    if (!(args.csv || (cut && r.rows.length)) || !deps.slack || invoker.via !== "slack") return reply;
    const name = `bisman-audit-${r.target}-${
      deps.now().toISOString().slice(0, 19).replace(/[-:T]/g, "")
    }.csv`;
    await deps.slack.sendFile({
      user: invoker.userId,
      filename: name,
      title: `audit_logs_dml of ${r.target}: ${r.rows.length} rows`,
      content: auditSearchCsv(r),
      comment: `\`/bisman audit\` on ${r.target}: ${r.rows.length} row(s), sensitive columns redacted`,
    });
    return renderAuditSearch(r, { file: `${name}, sent to you in a direct message` });
  },
});
