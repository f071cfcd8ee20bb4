/**
 * "Post to channel": query results are ephemeral to the asker; a button under them posts exactly what the
 * asker saw to the channel they asked in. The reply is stored (bisman_ops.reply_shares, for a day) and the
 * button carries only its id; only the asker may post it, once. Audited as `reply.shared`.
 *
 * @module
 */

import type { Sql } from "postgres";
import type { AppDeps } from "../core/deps.ts";
import type { Invoker } from "../core/access.ts";
import { actorOf } from "../core/access.ts";
import type { Block, Reply } from "../views/reply.ts";
import type { Subcommand } from "../commands/types.ts";
import type { BoltRegistration } from "./bolt_types.ts";
import { encodeShareButton, parseShareButton, SHARE_ACTION } from "../views/actions.ts";
import { invokerOfInteraction } from "./interaction.ts";
import { context, LIMITS, slackText } from "../views/blocks.ts";

/** Subcommands whose answers are not query results (help, confirmations of what the asker just did). */
const NOT_SHARED = new Set(["help", "cancel", "config"]);

/** How long a stored reply can still be posted. */
const SHARE_TTL_MS = 24 * 3600_000;

/** Whether `/bisman <sub>`'s ephemeral answer gets a "Post to channel" button. */
export function shareable(sub: Subcommand<unknown>, reply: Reply): boolean {
  return !sub.destructive && !NOT_SHARED.has(sub.name) && (reply.visibility ?? "ephemeral") === "ephemeral" &&
    !!reply.blocks?.length;
}

async function storeShare(
  sql: Sql,
  s: { owner: string; channel: string; subcommand: string; reply: Reply; now: Date },
): Promise<number> {
  const [row] = await sql<{ id: number }[]>`
    insert into bisman_ops.reply_shares (owner, channel, subcommand, reply, created_at)
    values (${s.owner}, ${s.channel}, ${s.subcommand}, ${sql.json(s.reply as never)}, ${s.now})
    returning id::int as id`;
  return row.id;
}

/** Claims a stored reply for posting: its owner, within a day, once. */
async function claimShare(
  sql: Sql,
  id: number,
  owner: string,
  now: Date,
): Promise<{ channel: string; subcommand: string; reply: Reply } | "gone" | "not yours" | "already"> {
  const [row] = await sql<
    {
      owner: string;
      channel: string;
      subcommand: string;
      reply: Reply;
      created_at: Date;
      shared_at: Date | null;
    }[]
  >`
    select owner, channel, subcommand, reply, created_at, shared_at from bisman_ops.reply_shares where id = ${id}`;
  if (!row || now.getTime() - new Date(row.created_at).getTime() > SHARE_TTL_MS) return "gone";
  if (row.owner !== owner) return "not yours";
  const claimed = await sql`
    update bisman_ops.reply_shares set shared_at = ${now} where id = ${id} and shared_at is null returning 1`;
  if (!claimed.length) return "already";
  return { channel: row.channel, subcommand: row.subcommand, reply: row.reply };
}

/** The blocks of a query result with its "Post to channel" button for stored reply `id` (50 blocks at most). */
export function withShareButtonBlocks(reply: Reply, id: number): Block[] {
  const blocks = (reply.blocks ?? []).slice(0, LIMITS.blocks - 1);
  // block_id unique in the message (Slack refuses a repeat): a reply never uses this one itself.
  blocks.push({
    type: "actions",
    block_id: "bisman.share",
    elements: [{
      type: "button",
      action_id: SHARE_ACTION,
      text: { type: "plain_text", text: "Post to channel" },
      value: encodeShareButton(id),
    }],
  });
  return blocks;
}

/** What "Post to channel" posts: the answer as the asker saw it, and who posted it. */
export function sharedAnswer(
  reply: Reply,
  userId: string,
  subcommand: string,
): { text: string; blocks: Block[] } {
  return {
    text: slackText(reply.text),
    blocks: [
      ...(reply.blocks ?? []).filter((b) => b.block_id !== "bisman.share").slice(0, LIMITS.blocks - 1),
      context(`<@${userId}> posted this answer to \`/bisman ${subcommand}\``),
    ],
  };
}

/**
 * Adds the "Post to channel" button to a query result (stored so the click posts exactly this). A reply
 * that cannot be stored is returned as it was: the answer matters more than the button.
 */
export async function withShareButton(
  reply: Reply,
  sub: Subcommand<unknown>,
  inv: Invoker,
  deps: AppDeps,
): Promise<Reply> {
  if (!shareable(sub, reply) || !inv.channelId || inv.via !== "slack") return reply;
  try {
    const id = await storeShare(deps.state, {
      owner: inv.userId,
      channel: inv.channelId,
      subcommand: sub.name,
      reply,
      now: deps.now(),
    });
    return { ...reply, blocks: withShareButtonBlocks(reply, id) };
  } catch (err) {
    deps.log.warn("could not store a reply for sharing", { error: err });
    return reply;
  }
}

/** The Bolt listener of "Post to channel". */
export function shareRegistration(): BoltRegistration {
  return (app, deps) => {
    app.action(SHARE_ACTION, async ({ ack, body, action, client }) => {
      await ack();
      const b = body as unknown as { channel?: { id?: string }; container?: { channel_id?: string } };
      const channel = b.channel?.id ?? b.container?.channel_id ?? deps.config.slack.ops_channel;
      const inv = invokerOfInteraction(body as never, channel);
      const tell = (text: string) =>
        client.chat.postEphemeral({ channel, user: inv.userId, text }).catch((err) =>
          deps.log.warn("could not answer a share click", { error: err })
        );
      try {
        const id = parseShareButton((action as { value?: string }).value);
        if (!id) return void await tell(":no_entry: This button is not one bisman-ops understands");
        const claim = await claimShare(deps.state, id, inv.userId, deps.now());
        if (claim === "gone") {
          return void await tell(":no_entry: This result is more than a day old: ask again");
        }
        if (claim === "not yours") return void await tell(":no_entry: Only the person who asked can post it");
        if (claim === "already") return void await tell(":information_source: It is already in the channel");
        const clean = JSON.parse(
          deps.secrets.scrub(JSON.stringify(sharedAnswer(claim.reply, inv.userId, claim.subcommand))),
        );
        await client.chat.postMessage({ channel: claim.channel, text: clean.text, blocks: clean.blocks });
        await deps.audit.append({
          actor: actorOf(inv),
          actorName: inv.userName,
          action: "reply.shared",
          outcome: "ok",
          details: { subcommand: claim.subcommand, channel: claim.channel, share: id },
        });
      } catch (err) {
        deps.log.error("posting a shared reply failed", { error: err });
        await tell(":x: Could not post it to the channel: see the bot's log");
      }
    });
  };
}
