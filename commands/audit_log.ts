/**
 * `/bisman audit-log verify`: walks the audit log's hash chain and names the first row that does not
 * match (edited, deleted or re-linked). The walk is `AuditLog.verify()`, which the CLI reuses.
 *
 * @module
 */

import { z } from "zod";
import { validateArgs } from "./args.ts";
import { defineSubcommand } from "./types.ts";
import { actorOf } from "../core/access.ts";
import { mrkdwnSection } from "../slack/render/blocks.ts";

const USAGE = "/bisman audit-log verify";

export const auditLogCommand = defineSubcommand({
  name: "audit-log",
  summary: "Verify the audit log's hash chain and name the first row that was altered or removed",
  usage: USAGE,
  examples: [USAGE],
  access: "operator",
  parse: (args) =>
    validateArgs(
      z.object({
        positional: z.tuple([z.literal("verify", { error: 'the only action is "verify"' })]),
        named: z.strictObject({}),
      }),
      args,
      USAGE,
    ),
  run: async (ctx) => {
    const { deps } = ctx;
    const started = performance.now();
    const v = await deps.audit.verify();
    const ms = Math.round(performance.now() - started);
    await deps.audit.append({
      actor: actorOf(ctx.invoker),
      actorName: ctx.invoker.userName,
      action: "audit.verified",
      outcome: v.ok ? "ok" : "broken",
      details: v.ok
        ? { checked: v.checked, head: v.head?.seq }
        : { checked: v.checked, seq: v.seq, problem: v.problem },
    });
    const text = v.ok
      ? `:white_check_mark: Audit log intact: ${v.checked} rows checked in ${ms} ms` +
        (v.head ? `; head is row ${v.head.seq} (${v.head.hash.slice(0, 12)})` : "")
      : `:rotating_light: Audit log broken at row ${v.seq}: ${v.problem}. ${v.checked} rows before it are intact. ` +
        "Treat the log from that row on as untrusted and find out who changed it (superuser access to the state database).";
    return { text, blocks: [mrkdwnSection(text)], visibility: v.ok ? "ephemeral" : "in_channel" };
  },
});
