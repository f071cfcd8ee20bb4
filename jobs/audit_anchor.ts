/**
 * The audit log's anchor: once a day the head of the hash chain (its newest row's number and hash) is posted
 * to the ops channel. A hash chain proves that no row before its head was changed, but it cannot notice that
 * its newest rows were deleted: the shortened chain is still a valid chain. An anchor kept outside the state
 * database (in Slack's history, where the database's superusers cannot reach) closes that gap:
 * `/bisman audit-log verify anchor=<row>:<hash>` proves the log still holds that row with that hash.
 * The digest posts the head too (jobs/digest.ts).
 *
 * @module
 */

import { auditHead } from "../core/audit.ts";
import { renderAnchor } from "../views/audit_log.ts";
import type { JobDefinition } from "./types.ts";

export const auditAnchorJob: JobDefinition = {
  name: "audit_anchor",
  summary: "Posts the audit log's head (row and hash) to the ops channel, so deleted newest rows show later",
  defaultCron: "0 6 * * *",
  destructive: false,
  run: async (ctx) => {
    const head = await auditHead(ctx.deps.state);
    const message = await ctx.post(renderAnchor(head, ctx.deps.now()));
    await ctx.deps.audit.append({
      actor: "scheduler",
      action: "audit.anchored",
      outcome: "ok",
      details: { seq: head?.seq, hash: head?.hash, channel: message.channel, ts: message.ts },
    });
    return {
      summary: head
        ? `anchor posted: row ${head.seq}, hash ${head.hash.slice(0, 12)}…`
        : "the audit log is empty",
      details: head ? { seq: head.seq, hash: head.hash } : {},
      message,
    };
  },
};
