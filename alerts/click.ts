/**
 * A click on a button of an alert message, as both alert listeners (the runbook buttons in buttons.ts, the
 * thread's own row in ownership.ts) read it: where it happened, who clicked, and how to answer them alone.
 *
 * @module
 */

import type { WebClient } from "@slack/web-api";
import type { AppDeps } from "../core/deps.ts";
import type { Invoker } from "../core/access.ts";
import { invokerOfInteraction } from "../slack/interaction.ts";
import type { Block } from "../views/reply.ts";

/** What a Bolt action listener is given that a click needs. */
interface ClickArgs {
  body: unknown;
  action: unknown;
  client: WebClient;
}

/** One click. */
export interface AlertClick {
  channel: string;
  inv: Invoker;
  action: { action_id: string; value?: string };
  /** The clicked message: an alert's parent, where the runbook buttons sit. */
  messageTs?: string;
  /** Where answers go: the clicked message's thread until the listener knows the alert's own. */
  threadTs?: string;
  /** Answers the clicker alone (in the thread when known); a failure to do so is logged, not thrown. */
  tell(text: string, blocks?: Block[]): Promise<void>;
}

/** Reads a click; `what` names the buttons in the log line of an answer that could not be posted. */
export function alertClick({ body, action, client }: ClickArgs, deps: AppDeps, what: string): AlertClick {
  const b = body as { channel?: { id?: string }; container?: { message_ts?: string; thread_ts?: string } };
  const channel = b.channel?.id ?? deps.config.slack.ops_channel;
  const click: AlertClick = {
    channel,
    inv: invokerOfInteraction(body as never, channel),
    action: action as AlertClick["action"],
    messageTs: b.container?.message_ts,
    threadTs: b.container?.thread_ts ?? b.container?.message_ts,
    tell: async (text, blocks) => {
      await client.chat.postEphemeral({
        channel,
        user: click.inv.userId,
        text,
        ...(blocks ? { blocks } : {}),
        ...(click.threadTs ? { thread_ts: click.threadTs } : {}),
      }).catch((err) => deps.log.error(`could not answer ${what}`, { error: err }));
    },
  };
  return click;
}
