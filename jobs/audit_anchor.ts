/**
 * The audit log's anchor: once a day the head of the hash chain (its newest row's number and hash) is posted
 * to the ops channel. A hash chain proves that no row before its head was changed, but it cannot notice that
 * its newest rows were deleted: the shortened chain is still a valid chain. An anchor kept outside the state
 * database (in Slack's history, where the database's superusers cannot reach) closes that gap:
 * `/bisman audit-log verify anchor=<row>:<hash>` proves the log still holds that row with that hash.
 * With `audit_log.witness`, the anchor is also written to a witness the bot cannot change afterwards
 * (core/witness.ts), which `/bisman audit-log verify` reads back on its own; and every anchor is a log line,
 * for the log stream that centralized logging ships away. The digest posts the head too (jobs/digest.ts).
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
    const { deps } = ctx;
    const head = await auditHead(deps.state);
    const message = await ctx.post(renderAnchor(head, deps.now()));
    if (head) deps.log.info("audit anchor", { anchor_seq: head.seq, anchor_hash: head.hash });
    let witnessed: string | undefined;
    let witnessError: string | undefined;
    if (head && deps.witness) {
      try {
        await deps.witness.record({ ...head, at: deps.now().toISOString() });
        witnessed = deps.witness.where;
      } catch (err) {
        witnessError = `${deps.witness.where} refused or did not answer: ${
          err instanceof Error ? err.message.split("\n")[0] : String(err)
        }`;
      }
    }
    await deps.audit.append({
      actor: "scheduler",
      action: "audit.anchored",
      outcome: witnessError ? "failed" : "ok",
      details: {
        seq: head?.seq,
        hash: head?.hash,
        channel: message.channel,
        ts: message.ts,
        witness: witnessed ?? null,
        ...(witnessError ? { witness_error: witnessError } : {}),
      },
    });
    if (witnessError) throw new Error(`Anchor posted to Slack, but not witnessed: ${witnessError}`);
    return {
      summary: head
        ? `anchor posted: row ${head.seq}, hash ${head.hash.slice(0, 12)}…${
          witnessed ? `; witnessed in ${witnessed}` : ""
        }`
        : "the audit log is empty",
      details: head ? { seq: head.seq, hash: head.hash, witness: witnessed ?? null } : {},
      message,
    };
  },
};
