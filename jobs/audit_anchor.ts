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

import { type Anchor, auditHead, auditRowAt, checkAnchor, verifyChain } from "../core/audit.ts";
import type { AppDeps } from "../core/deps.ts";
import { OpsError } from "../core/errors.ts";
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
    const broken = head && deps.witness ? await sinceNewestAnchor(deps, head) : undefined;
    if (broken) {
      await deps.audit.append({
        actor: "scheduler",
        action: "audit.anchored",
        outcome: "broken",
        details: { seq: head?.seq, hash: head?.hash, witness: deps.witness?.where, problem: broken },
      });
      throw new OpsError(
        "plan_tampered",
        `Not anchored: ${broken}. The audit log was cut back or rewritten since the last anchor; ` +
          "find out who can write the state database (`/bisman audit-log verify` names it too)",
      );
    }
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
        ? `anchor posted: row ${head.seq}, hash ${head.hash.slice(0, 12)}\u2026${
          witnessed ? `; witnessed in ${witnessed}` : ""
        }`
        : "the audit log is empty",
      details: head ? { seq: head.seq, hash: head.hash, witness: witnessed ?? null } : {},
      message,
    };
  },
};

/**
 * Checks, before a new anchor is written, that the log still holds the witness's newest anchor and that
 * every row after it chains to it with the bot's MACs. `audit-log verify` reads back only the newest anchor:
 * a new anchor written over a log cut back past the previous one (and grown again) would match, and the
 * deletion would never show. So each anchor extends only a chain that holds its predecessor.
 * @returns what is wrong, in words, or undefined (also when the witness holds no anchor yet)
 */
async function sinceNewestAnchor(deps: AppDeps, head: Anchor): Promise<string | undefined> {
  const prev = await deps.witness!.newest();
  if (!prev) return undefined;
  const held = checkAnchor(prev, await auditRowAt(deps.state, prev.seq), head);
  if (!held.ok) return `the newest anchor in ${deps.witness!.where} (row ${prev.seq}) says: ${held.problem}`;
  const rows = await deps.audit.rows({ sinceSeq: prev.seq + 1 });
  const chain = verifyChain(rows, {
    prevHash: prev.hash,
    firstSeq: prev.seq + 1,
    keys: deps.audit.keys,
    keyedSeen: true,
  });
  return chain.ok ? undefined : `after the newest anchor (row ${prev.seq}): ${chain.problem}`;
}
