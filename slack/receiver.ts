// A hand-written Bolt receiver: Bolt's own need Node's http server; here Hono and Deno.serve own the socket.
/**
 * `POST /slack/events`: verifies Slack's signature on the raw body before anything else, parses the body
 * as Slack sends it, and hands it to Bolt's `processEvent`. The HTTP response is whatever the listener
 * passes to `ack()`, sent as soon as it is called; the listener's slow work goes on after.
 *
 * Bolt's own receivers need Node's http server; this one lets Hono and `Deno.serve` own the socket, as
 * Bolt's custom-receiver contract allows (`init`, `start`, `stop`, then `app.processEvent`).
 *
 * @module
 */

import type { App, Receiver, ReceiverEvent, SlashCommand } from "@slack/bolt";
import { checkSignature } from "./verify.ts";
import type { Logger } from "../core/log.ts";
import type { Metrics } from "../core/metrics.ts";
import { RefusalBudget, type RefusalSink } from "../core/refusal_budget.ts";
import { drainSet } from "../core/within.ts";

/** Largest body accepted; Slack's biggest payloads (block actions carrying a full message) are far smaller. */
export const MAX_BODY_BYTES = 1024 * 1024;

/** Why a body was not read to its end (http/app.ts), as the refusal's reason. */
export type BodyProblem = "body_too_large" | "body_timeout" | "body_cut_off";

/**
 * When a listener that has not called `ack()` is reported: Bolt's HTTPReceiver default
 * (`unhandledRequestTimeoutMillis`, 3001 ms, just past Slack's 3 seconds, after which Slack shows the user an
 * error and drops any answer).
 */
export const ACK_DEADLINE_MS = 3001;

/**
 * A slash command's listener that the receiver calls itself, without Bolt's dispatch (see
 * {@link SlackEventsReceiver.answerCommand}); `ack` is the one Bolt would pass.
 */
export type DirectCommandListener = (
  command: SlashCommand,
  ack: (response?: unknown) => Promise<void>,
) => Promise<void>;

/** A Bolt receiver that does nothing on its own: http/app.ts calls {@link SlackEventsReceiver.handle}. */
export class SlackEventsReceiver implements Receiver {
  #app?: App;
  readonly #commands = new Map<string, DirectCommandListener>();
  /** Listener runs still going after their ack; shutdown waits for them before closing pools. */
  #inFlight = new Set<Promise<unknown>>();
  readonly #refusals: RefusalBudget;

  constructor(
    private readonly opts: {
      signingSecret: string;
      log: Logger;
      metrics: Metrics;
      onRefused?: RefusalSink;
      /**
       * Refusals reported to `onRefused` (audited) per minute (default 60; see core/refusal_budget.ts).
       */
      refusalsReportedPerMinute?: number;
      nowSeconds?: () => number;
      /** When an unacknowledged request is reported (default {@link ACK_DEADLINE_MS}; tests shorten it). */
      ackDeadlineMs?: number;
    },
  ) {
    this.#refusals = new RefusalBudget(opts.onRefused, opts.refusalsReportedPerMinute ?? 60);
  }

  init(app: App): void {
    this.#app = app;
  }
  start(): Promise<void> {
    return Promise.resolve();
  }

  /**
   * Hands slash command `name` to `listener` directly instead of to Bolt's `processEvent`. Bolt runs every
   * registered listener's middleware chain on every request (a dozen here, for one command), builds its
   * context and a `say` per request. A command has one listener and needs none of that: without it the bot's
   * CPU per `/bisman help` went from 0.16-0.18 ms to 0.13-0.14 (`deno run -A bench/_cpu_split.ts`). Clicks,
   * views and events still go through Bolt.
   */
  answerCommand(name: string, listener: DirectCommandListener): void {
    this.#commands.set(name, listener);
  }
  stop(): Promise<void> {
    return Promise.resolve();
  }

  #refuse(
    status: 400 | 401 | 408 | 413 | 415,
    reason: string,
    detail: Record<string, unknown> = {},
  ): Response {
    this.opts.metrics.inc(
      "bisman_slack_rejected_total",
      { reason },
      1,
      "Slack requests refused before processing",
    );
    this.#refusals.report(reason, detail);
    return Response.json({ error: reason }, { status });
  }

  /**
   * The answer to a body http/app.ts stopped reading: over {@link MAX_BODY_BYTES} (judged on the declared
   * length or the streamed bytes, before the rest is read), not all there within its deadline (the read is
   * cancelled), or cut off by its client closing the connection. Nothing of it is acted on.
   * @param contentLength the declared length, for the refusal's record of an oversized body
   */
  refuseBody(problem: BodyProblem, contentLength: string | null): Response {
    if (problem === "body_too_large") {
      return this.#refuse(
        413,
        problem,
        contentLength ? { length: Number(contentLength) } : { chunked: true },
      );
    }
    return this.#refuse(problem === "body_timeout" ? 408 : 400, problem);
  }

  /**
   * Handles one request from Slack: its raw body (already bounded by http/app.ts) and its headers.
   * @param received when the request arrived (`performance.now()`), for the ack-time metric
   */
  async handle(raw: string, headers: Headers, received = performance.now()): Promise<Response> {
    const app = this.#app;
    if (!app) return Response.json({ error: "not_ready" }, { status: 503 });
    // Slack's check of a slash command URL's certificate: answered with a bare 200 before anything else is
    // read, as Bolt's receivers do (nothing in it is acted on, so there is nothing to verify or audit).
    if (raw.includes("ssl_check=") && isSslCheck(headers.get("content-type") ?? "", raw)) {
      return new Response(null, { status: 200 });
    }

    const problem = checkSignature(
      this.opts.signingSecret,
      {
        signature: headers.get("x-slack-signature") ?? undefined,
        timestamp: headers.get("x-slack-request-timestamp") ?? undefined,
      },
      raw,
      this.opts.nowSeconds?.(),
    );
    if (problem) return this.#refuse(401, problem);

    const body = parseSlackBody(headers.get("content-type") ?? "", raw);
    if (body === "unsupported") return this.#refuse(415, "unsupported_content_type");
    if (!body) return this.#refuse(400, "malformed_body");
    if (body.type === "url_verification" && typeof body.challenge === "string") {
      return Response.json({ challenge: body.challenge });
    }

    const { promise: acked, resolve } = Promise.withResolvers<Response>();
    let ackCalled = false;
    // A listener still without its ack when Slack has given up (one that forgot ack(), or a bot too slow to
    // answer) is an error the user saw as Slack's timeout: logged and counted then, as Bolt's HTTPReceiver
    // logs it. The request is not answered early (Bolt's default answers 404): Slack ignores a late answer
    // anyway, and a slow ack that still arrives keeps its answer for any other client.
    const deadline = setTimeout(() => {
      if (ackCalled) return;
      this.opts.log.error("a Slack request was not acknowledged within Slack's 3 seconds", {
        kind: kindOf(body),
        deadline_ms: this.opts.ackDeadlineMs ?? ACK_DEADLINE_MS,
      });
      this.opts.metrics.inc(
        "bisman_slack_unacknowledged_total",
        { kind: kindOf(body) },
        1,
        "Slack requests whose listener had not acknowledged them when Slack's 3 seconds were up",
      );
    }, this.opts.ackDeadlineMs ?? ACK_DEADLINE_MS);
    const event: ReceiverEvent = {
      body,
      retryNum: Number(headers.get("x-slack-retry-num") ?? "") || undefined,
      retryReason: headers.get("x-slack-retry-reason") ?? undefined,
      ack: (response?: unknown) => {
        if (ackCalled) return Promise.reject(new Error("ack() was called twice for one Slack request"));
        ackCalled = true;
        clearTimeout(deadline);
        this.opts.metrics.observe(
          "bisman_slack_ack_seconds",
          { kind: kindOf(body) },
          (performance.now() - received) / 1000,
          "Time from receiving a Slack request to acknowledging it",
        );
        resolve(ackResponse(response));
        return Promise.resolve();
      },
    };
    const direct = typeof body.command === "string" ? this.#commands.get(body.command) : undefined;
    const running = (direct ? direct(body as unknown as SlashCommand, event.ack) : app.processEvent(event))
      .catch((err) => {
        this.opts.log.error("slack listener failed", { error: err, kind: kindOf(body) });
        // A command whose listener failed before its ack tells the asker so: an empty 200 shows nothing.
        if (!ackCalled && typeof body.command === "string") {
          resolve(Response.json({
            response_type: "ephemeral",
            text: `bisman-ops could not handle ${
              body.command.slice(0, 40)
            }: an internal error, logged for the bot's operators.`,
          }));
        }
      })
      .finally(() => {
        clearTimeout(deadline);
        this.#inFlight.delete(running);
        // A request no listener acknowledged still gets an empty 200, so Slack does not retry it (a resolve
        // after the first is ignored).
        if (!ackCalled) resolve(new Response(null, { status: 200 }));
      });
    this.#inFlight.add(running);
    return await acked;
  }

  /** Waits (at most `timeoutMs`) for listener work that continues after acks; returns how many were left. */
  async drain(timeoutMs = 10_000): Promise<number> {
    this.#refusals.flush();
    return await drainSet(this.#inFlight, timeoutMs);
  }
}

/** A Content-Type's media type, without parameters, lower-case. */
function mediaType(contentType: string): string {
  return contentType.split(";")[0].trim().toLowerCase();
}

/** Whether a body is Slack's `ssl_check=1` request (form-encoded, https://api.slack.com/interactivity/slash-commands). */
function isSslCheck(contentType: string, raw: string): boolean {
  return mediaType(contentType) === "application/x-www-form-urlencoded" &&
    new URLSearchParams(raw).get("ssl_check") === "1";
}

/** What kind of Slack request a body is, for metrics. */
function kindOf(body: Record<string, unknown>): string {
  if (typeof body.command === "string") return "command";
  if (typeof body.type === "string") return body.type;
  return "other";
}

/** Parses the body as Slack sends it: form fields (commands), `payload=` JSON (interactivity) or JSON (events). */
export function parseSlackBody(
  contentType: string,
  raw: string,
): Record<string, unknown> | undefined | "unsupported" {
  const type = mediaType(contentType);
  try {
    if (type === "application/x-www-form-urlencoded") {
      const params = new URLSearchParams(raw);
      const payload = params.get("payload");
      if (payload !== null) {
        const parsed = JSON.parse(payload);
        return parsed && typeof parsed === "object" && !Array.isArray(parsed) ? parsed : undefined;
      }
      const out: Record<string, unknown> = {};
      for (const [k, v] of params) out[k] = v;
      return typeof out.command === "string" ? out : undefined;
    }
    if (type === "application/json") {
      const parsed = JSON.parse(raw);
      return parsed && typeof parsed === "object" && !Array.isArray(parsed) ? parsed : undefined;
    }
  } catch {
    return undefined;
  }
  return "unsupported";
}

/** The HTTP response for an ack argument, as Bolt's HTTP receiver sends it. */
/** Bodies already serialized, by the response object they came from (a reply answered again). */
const bodyOf = new WeakMap<object, string>();

function ackResponse(response: unknown): Response {
  if (response === undefined || response === null || response === "") {
    return new Response(null, { status: 200 });
  }
  if (typeof response === "string") return Response.json({ text: response });
  const r = response as object;
  let body = bodyOf.get(r);
  if (body === undefined) {
    body = JSON.stringify(r);
    bodyOf.set(r, body);
  }
  return new Response(body, { headers: { "content-type": "application/json" } });
}
