/**
 * Answers that do not depend on a response_url. A response_url takes at most 5 posts within 30 minutes
 * (https://docs.slack.dev/interactivity/handling-user-interaction#message_responses): fine for a query answered
 * in seconds, not for work that runs for hours (a restore test may run up to `restore_test.timeout`). So:
 *
 * - long work ({@link WorkMessage}) reports through the Web API from the start: a message in the asker's
 *   channel the bot keeps editing with progress (chat.update has no use limit), turned into the answer at the
 *   end, and a reply in its thread that mentions the asker, so they are notified however long it took;
 * - any other answer whose response_url is gone (expired, used up, refused) reaches the asker through the Web
 *   API instead ({@link postToAsker}): privately (chat.postEphemeral) when the reply is private, in the
 *   channel when it is meant for the channel.
 *
 * Where the channel refuses the bot (not a member: the app has chat:write, not chat:write.public; a channel
 * that does not exist for it), the answer goes to the asker's direct messages (conversations.open).
 *
 * @module
 */

import type { WebClient } from "@slack/web-api";
import type { AppDeps } from "../core/deps.ts";
import type { Block, Reply } from "../views/reply.ts";
import { capBlocks, context, escapeMrkdwn, slackMessage, truncateMrkdwn } from "../views/blocks.ts";

/** Who asked, and where. */
export interface Asker {
  channel: string;
  user: string;
}

/** Web API errors that mean "this channel will not take the bot's message": try the asker's DM instead. */
const CHANNEL_REFUSALS = new Set([
  "channel_not_found",
  "not_in_channel",
  "is_archived",
  "user_not_in_channel",
]);

function slackError(err: unknown): string | undefined {
  return (err as { data?: { error?: string } })?.data?.error;
}

/** The asker's direct-message channel. */
async function directMessage(client: WebClient, user: string): Promise<string> {
  const dm = await client.conversations.open({ users: user });
  if (!dm.channel?.id) throw new Error("conversations.open answered without a channel");
  return dm.channel.id;
}

/**
 * Posts `reply` to the asker through the Web API: an ephemeral message in their channel when it is private
 * (the default for query results), a channel message when it is `in_channel`; their DM when the channel
 * refuses the bot. Secrets are scrubbed first, as on every path to Slack.
 * @throws the Web API error when even the DM cannot be posted
 */
export async function postToAsker(
  client: WebClient,
  deps: Pick<AppDeps, "secrets">,
  to: Asker,
  reply: Reply,
): Promise<void> {
  const msg = JSON.parse(deps.secrets.scrub(JSON.stringify(slackMessage(reply)))) as ReturnType<
    typeof slackMessage
  >;
  const content = { text: msg.text, ...(msg.blocks ? { blocks: msg.blocks as never } : {}) };
  try {
    if ((reply.visibility ?? "ephemeral") === "in_channel") {
      await client.chat.postMessage({ channel: to.channel, ...content });
    } else {
      await client.chat.postEphemeral({ channel: to.channel, user: to.user, ...content });
    }
  } catch (err) {
    if (!CHANNEL_REFUSALS.has(slackError(err) ?? "")) throw err;
    await client.chat.postMessage({ channel: await directMessage(client, to.user), ...content });
  }
}

/**
 * Longest wait for one Web API call on long work's message. The client's own timeout (10 s an attempt) and
 * retries (5, backoff up to 5 s; a 429 waits its Retry-After) normally end a call well within it; this bound
 * holds whatever the client does, so the work and its answer never wait on Slack for good: a call past it
 * fails (its late result is ignored) and is logged.
 */
export const WORK_CALL_DEADLINE_MS = 120_000;

/** `p`, or a rejection after `ms` (the call itself is not stopped; its late result is ignored). */
export function withDeadline<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not settle within ${ms} ms`)), ms);
  });
  return Promise.race([p, deadline]).finally(() => clearTimeout(timer));
}

/** Long work's message as `reply` shows it, under a line saying who asked for what (50 blocks at most). */
export function workMessageContent(
  user: string,
  what: string,
  reply: Reply,
): { text: string; blocks: Block[] } {
  const asked = context(`<@${user}> asked for \`${escapeMrkdwn(what)}\``);
  return {
    text: slackMessage(reply).text,
    blocks: capBlocks([asked, ...(reply.blocks ?? [])]),
  };
}

/**
 * The message long work lives in: posted when the work starts, edited with its progress and, at the end, with
 * its answer; the asker is mentioned in its thread when it ends.
 */
export class WorkMessage {
  private constructor(
    private readonly client: WebClient,
    private readonly deps: Pick<AppDeps, "secrets" | "log">,
    private readonly asker: Asker,
    private readonly what: string,
    /** Where the message is (the asker's channel, or their DM when the channel refused the bot). */
    readonly channel: string,
    readonly ts: string,
    private readonly deadlineMs: number,
  ) {}

  /** One Web API call on this message, bounded by {@link WORK_CALL_DEADLINE_MS} (or the given bound). */
  #bounded<T>(p: Promise<T>, what: string): Promise<T> {
    return withDeadline(p, this.deadlineMs, what);
  }

  /**
   * Posts "<@asker> started `what`" in the asker's channel (or their DM).
   * @throws the Web API error when neither takes it
   */
  static async start(
    client: WebClient,
    deps: Pick<AppDeps, "secrets" | "log">,
    asker: Asker,
    what: string,
    opts: { deadlineMs?: number } = {},
  ): Promise<WorkMessage> {
    const deadlineMs = opts.deadlineMs ?? WORK_CALL_DEADLINE_MS;
    const text =
      `:hourglass_flowing_sand: <@${asker.user}> started \`${what}\`: progress and the result follow here`;
    const post = (channel: string) =>
      withDeadline(
        client.chat.postMessage({ channel, text, unfurl_links: false }),
        deadlineMs,
        "chat.postMessage of long work's message",
      );
    let r;
    try {
      r = await post(asker.channel);
    } catch (err) {
      if (!CHANNEL_REFUSALS.has(slackError(err) ?? "")) throw err;
      r = await post(await directMessage(client, asker.user));
    }
    if (!r.ts || !r.channel) throw new Error("chat.postMessage answered without channel and ts");
    return new WorkMessage(client, deps, asker, what, r.channel, r.ts, deadlineMs);
  }

  #content(reply: Reply): { text: string; blocks: Block[] } {
    return JSON.parse(
      this.deps.secrets.scrub(JSON.stringify(workMessageContent(this.asker.user, this.what, reply))),
    );
  }

  /** Shows progress. A failed edit is logged, not thrown: the work goes on. */
  async progress(reply: Reply): Promise<void> {
    await this.#bounded(
      this.client.chat.update({ channel: this.channel, ts: this.ts, ...this.#content(reply) } as never),
      "chat.update with long work's progress",
    ).catch((err) => this.deps.log.warn("could not show progress", { error: err }));
  }

  /**
   * Turns the message into the answer and mentions the asker in its thread with the answer's first line.
   * @throws the Web API error when neither could be posted
   */
  async finish(reply: Reply): Promise<void> {
    const errors: unknown[] = [];
    await this.#bounded(
      this.client.chat.update({ channel: this.channel, ts: this.ts, ...this.#content(reply) } as never),
      "chat.update with long work's answer",
    ).catch((err) => errors.push(err));
    const first = truncateMrkdwn(reply.text.split("\n")[0] ?? "", 500);
    await this.#bounded(
      this.client.chat.postMessage({
        channel: this.channel,
        thread_ts: this.ts,
        text: this.deps.secrets.scrub(`<@${this.asker.user}> \`${this.what}\` finished: ${first}`),
        // The answer itself is the message above; the thread reply only notifies.
        unfurl_links: false,
      }),
      "chat.postMessage of long work's thread reply",
    ).catch((err) => errors.push(err));
    if (errors.length === 2) throw errors[0];
    for (const err of errors) this.deps.log.warn("long work's answer only partly posted", { error: err });
  }
}
