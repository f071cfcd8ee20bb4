/**
 * The approval gate's notifier for Slack: posts the approval message, redraws it at every transition,
 * and announces interruptions in its thread (broadcast to the channel).
 *
 * Every payload passes through the secret scrubber as a last guard: a plan or an error that somehow
 * carried a registered secret is redacted before it leaves the process.
 *
 * @module
 */

import type { WebClient } from "@slack/web-api";
import type { ApprovalNotifier, RequestView } from "../gate/gate.ts";
import type { Secrets } from "../core/log.ts";
import { renderApproval, renderReminder } from "../views/approval.ts";

/** `metadata.event_type` of approval messages, so tools (and tests) find a request's message. */
export const REQUEST_EVENT_TYPE = "bisman_request";

/** Slack implementation of {@link ApprovalNotifier}. */
export class SlackApprovalNotifier implements ApprovalNotifier {
  constructor(private readonly client: WebClient, private readonly secrets: Secrets) {}

  #scrub<T>(value: T): T {
    return JSON.parse(this.secrets.scrub(JSON.stringify(value))) as T;
  }

  #message(view: RequestView) {
    const m = renderApproval(view);
    return this.#scrub({
      text: m.text,
      blocks: m.blocks,
      metadata: {
        event_type: REQUEST_EVENT_TYPE,
        event_payload: { request_id: view.request.id, state: view.request.state },
      },
    });
  }

  async post(view: RequestView, where: { channel: string; threadTs?: string }) {
    const r = await this.client.chat.postMessage({
      channel: where.channel,
      ...(where.threadTs ? { thread_ts: where.threadTs } : {}),
      ...this.#message(view),
    });
    if (!r.ts || !r.channel) throw new Error("chat.postMessage answered without channel and ts");
    return { channel: r.channel, ts: r.ts };
  }

  async update(view: RequestView): Promise<void> {
    const r = view.request;
    if (!r.channel || !r.message_ts) return;
    await this.client.chat.update({ channel: r.channel, ts: r.message_ts, ...this.#message(view) });
  }

  async remind(view: RequestView, minutesLeft: number): Promise<void> {
    const r = view.request;
    const thread = r.thread_ts ?? r.message_ts;
    if (!r.channel || !thread) return;
    const m = this.#scrub(renderReminder(view, minutesLeft));
    await this.client.chat.postMessage({
      channel: r.channel,
      thread_ts: thread,
      text: m.text,
      blocks: m.blocks,
    });
  }

  async announce(view: RequestView, text: string): Promise<void> {
    const r = view.request;
    const channel = r.channel;
    if (!channel) return;
    const thread = r.thread_ts ?? r.message_ts;
    const body = thread
      ? { channel, text: this.secrets.scrub(text), thread_ts: thread, reply_broadcast: true }
      : { channel, text: this.secrets.scrub(text) };
    await this.client.chat.postMessage(body);
  }
}
