/**
 * The Bolt app: wires `/bisman` (and, as features land, button actions and views) to the router.
 * Listeners acknowledge first and work after; nothing slow runs before `ack()`.
 *
 * @module
 */

import type bolt from "@slack/bolt";
import type { Receiver } from "@slack/bolt";
// First, before App.js loads: its receivers' requires of @slack/socket-mode (undici) and @slack/oauth wait
// until something uses them.
import "./defer_bolt_requires.ts";
// Bolt's App module, not the package's index: the index also loads the receivers the bot does not use
// (ExpressReceiver with express and its ~40 packages, AwsLambdaReceiver), 1.6 MiB of heap for nothing.
// App.js is CommonJS: its module.exports holds the class as `default` and re-exports LogLevel.
import boltAppModule from "@slack/bolt/dist/App.js";
// Bolt's respond() for a response_url, as its processEvent builds it (CommonJS like App.js).
import createRespondModule from "@slack/bolt/dist/context/create-respond.js";
import { SlackEventsReceiver } from "./receiver.ts";
import { afterResponse } from "../core/after_response.ts";
import type { AppDeps } from "../core/deps.ts";
import type { Invoker } from "../core/access.ts";
import type { Logger } from "../core/log.ts";
import {
  auditCommand,
  authorizePrepared,
  prepareCommand,
  type PreparedCommand,
  runPrepared,
  toUserError,
} from "../commands/router.ts";
import type { OpsError } from "../core/errors.ts";
import type { Reply } from "../views/reply.ts";
import { renderError } from "../views/error.ts";
import { slackMessage } from "../views/blocks.ts";
import { withShareButton } from "./share.ts";
import type { BoltApp, BoltRegistration } from "./bolt_types.ts";
import { type Asker, postToAsker, withDeadline, WorkMessage } from "./answers.ts";

export type { BoltApp, BoltRegistration };

const { default: App, LogLevel } = boltAppModule as unknown as {
  default: typeof bolt.App;
  LogLevel: typeof bolt.LogLevel;
};
const { createRespond } = createRespondModule as unknown as {
  createRespond: (fetchFn: typeof fetch, responseUrl: string) => bolt.RespondFn;
};

/** The slash command the app answers. */
const COMMAND = "/bisman";

/** Adapts our JSON logger to the Logger interface of Bolt and the Slack SDK (so their lines are JSON too). */
export function boltLogger(log: Logger) {
  const l = log.child({ component: "bolt" });
  let level = LogLevel.WARN;
  const text = (msgs: unknown[]) =>
    msgs.map((m) => (typeof m === "string" ? m : JSON.stringify(m))).join(" ");
  return {
    debug: (...m: unknown[]) => level === LogLevel.DEBUG && l.debug(text(m)),
    info: (...m: unknown[]) => (level === LogLevel.DEBUG || level === LogLevel.INFO) && l.info(text(m)),
    warn: (...m: unknown[]) => l.warn(text(m)),
    error: (...m: unknown[]) => l.error(text(m)),
    setLevel: (lv: typeof level) => (level = lv),
    getLevel: () => level,
    setName: () => {},
  };
}

/** Responses already made for a reply object (see {@link toSlackResponse}). */
const responseOf = new WeakMap<Reply, Record<string, unknown>>();

/**
 * The shape `respond()` and `ack()` take for a Reply. A reply object answered again without extras (the
 * full help, rendered once) gets the same response object, so the receiver can send the body it serialized
 * the first time: that body was two thirds of the bot's allocations under a burst of `/bisman help`.
 */
export function toSlackResponse(reply: Reply, extra: Record<string, unknown> = {}): Record<string, unknown> {
  const plain = Object.keys(extra).length === 0;
  const known = plain ? responseOf.get(reply) : undefined;
  if (known) return known;
  const response = {
    response_type: reply.visibility ?? "ephemeral",
    ...slackMessage(reply),
    ...extra,
  };
  if (plain) responseOf.set(reply, response);
  return response;
}

/**
 * How long after the command the bot still answers through its response_url. Slack takes posts to it for 30
 * minutes (at most 5): past this margin, or when the post fails, the answer goes through the Web API
 * (slack/answers.ts) instead of being lost.
 */
export const RESPONSE_URL_TRUSTED_MS = 25 * 60_000;

/** Delays between attempts of a response_url post that Slack did not take (5xx, 429, no answer). */
const RESPOND_RETRY_MS = [500, 1000, 2000];

/**
 * Bolt's `respond()` posts to the response_url once, with plain `fetch` and no timeout: a Slack 5xx, a
 * dropped connection or a hung request would lose the answer. The bot's answers replace the original
 * message, so posting one again is harmless: each attempt gets `timeoutMs`, and a 5xx, 429, network error
 * or timeout is retried with backoff. A 4xx (an expired or used-up response_url) is final.
 */
export function respondReliably<M>(
  respond: (message: M) => Promise<unknown>,
  deps: Pick<AppDeps, "log" | "metrics">,
  opts: { delaysMs?: readonly number[]; timeoutMs?: number } = {},
): (message: M) => Promise<void> {
  const delays = opts.delaysMs ?? RESPOND_RETRY_MS;
  const timeoutMs = opts.timeoutMs ?? 10_000;
  return async (message) => {
    for (let attempt = 0;; attempt++) {
      let timer: ReturnType<typeof setTimeout> | undefined;
      try {
        await Promise.race([
          respond(message),
          new Promise((_, reject) => {
            timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
          }),
        ]);
        return;
      } catch (err) {
        // Bolt's RespondError carries the HTTP status; a network failure or a timeout has none.
        const status = (err as { statusCode?: number })?.statusCode;
        const retryable = status === undefined || status >= 500 || status === 429;
        if (!retryable || attempt >= delays.length) throw err;
        deps.metrics.inc("bisman_slack_respond_retries_total", {}, 1, "response_url posts sent again");
        deps.log.warn("response_url post failed; retrying", { status, attempt: attempt + 1, error: err });
        await new Promise((r) => setTimeout(r, delays[attempt]));
      } finally {
        clearTimeout(timer);
      }
    }
  };
}

/**
 * Runs an instant subcommand and acks with its answer; returns the refusal, if any. Its own function so
 * that the reply is garbage once acked: the listener then waits on the audit write, which under a burst
 * queues behind others, and holding every reply meanwhile grew the heap by megabytes per second.
 */
async function answerInAck(
  prepared: PreparedCommand,
  inv: Invoker,
  deps: AppDeps,
  ack: (response: Record<string, unknown>) => Promise<void>,
): Promise<OpsError | undefined> {
  let reply: Reply;
  let failed: OpsError | undefined;
  try {
    reply = await runPrepared(prepared, inv, deps);
  } catch (err) {
    failed = toUserError(err, deps);
    reply = renderError(failed);
  }
  await ack(toSlackResponse(reply));
  return failed;
}

/**
 * Longest wait for a long command's work message to be posted before the work starts without it (its answer
 * then goes to the asker): shorter than WorkMessage's own bound on each call, so a slow Slack delays the work
 * by half a minute at most. (The never-ending restore test bench/load.ts once blamed on an unsettled
 * chat.postMessage was a refusal, "already running", shown in the work message: see ops/restore_test.ts.)
 */
const WORK_MESSAGE_DEADLINE_MS = 30_000;

/**
 * Runs a `long` subcommand (a restore test: hours): a refusal goes to the asker alone; once it runs, its progress
 * and its answer go through the Web API into a message in the asker's channel ({@link WorkMessage}), never only
 * through the response_url, which stops working after 30 minutes or 5 posts.
 */
async function runLong(
  prepared: PreparedCommand,
  inv: Invoker,
  text: string,
  asker: Asker,
  client: Parameters<typeof WorkMessage.start>[0],
  deps: AppDeps,
  answer: (reply: Reply) => Promise<void>,
): Promise<void> {
  let work: WorkMessage | undefined;
  let reply: Reply;
  let failed: OpsError | undefined;
  try {
    // Who may run it is settled before anything is posted in the channel.
    await authorizePrepared(prepared, inv, deps);
    work = await withDeadline(
      WorkMessage.start(client, deps, asker, `/bisman ${text.trim().slice(0, 200)}`),
      WORK_MESSAGE_DEADLINE_MS,
      "the work message's chat.postMessage",
    ).catch(
      (err) => {
        deps.log.error("could not post long work's message; its answer will go to the asker", { error: err });
        return undefined;
      },
    );
    const progress = work ? (r: Reply) => work!.progress(r) : undefined;
    reply = await runPrepared(prepared, inv, deps, progress, { progressLimit: work ? Infinity : undefined });
  } catch (err) {
    failed = toUserError(err, deps);
    reply = renderError(failed);
  }
  // The work's own records (state database, audit log) are already written; the answer is delivered once
  // more another way when its message did not take it (every Web API call there is bounded).
  try {
    if (work) {
      await work.finish(reply).catch(async (err) => {
        deps.log.warn("long work's message did not take its answer; sending it to the asker", { error: err });
        await answer(reply);
      });
    } else await answer(reply);
  } catch (postErr) {
    deps.log.error("could not deliver the answer of long work", { error: postErr });
  }
  await auditCommand(
    deps,
    inv,
    text,
    failed ? (failed.code === "internal" ? "failed" : "refused") : "ok",
    failed,
  );
}

/**
 * Creates the Bolt app on a receiver. `botId`/`botUserId` are given so Bolt never calls `auth.test` per
 * request (with Slack slow or down every ack would wait on it); the bot runs its own `auth.test` at start.
 */
export function createBoltApp(
  deps: AppDeps,
  receiver: Receiver,
  opts: {
    token: string;
    slackApiUrl: string;
    botId?: string;
    botUserId?: string;
    registrations?: BoltRegistration[];
    /** Web API request timeout (default 10 s): a call Slack does not answer is retried, not waited on forever. */
    timeoutMs?: number;
  },
): BoltApp {
  const app = new App({
    token: opts.token,
    receiver,
    tokenVerificationEnabled: false,
    // No conversation state is kept: Bolt's default store would add a middleware pass to every request.
    convoStore: false,
    botId: opts.botId ?? "B0BISMANOPS",
    botUserId: opts.botUserId ?? "U0BISMANOPS",
    logger: boltLogger(deps.log) as never,
    clientOptions: {
      slackApiUrl: opts.slackApiUrl,
      retryConfig: { retries: 5, factor: 2, minTimeout: 200, maxTimeout: 5000 },
      timeout: opts.timeoutMs ?? 10_000,
    },
  });

  const onCommand = async (
    { command, ack, respond: respondOnce, client }: Pick<
      bolt.SlackCommandMiddlewareArgs & bolt.AllMiddlewareArgs,
      "command" | "ack" | "respond" | "client"
    >,
  ) => {
    // The final answer must not be lost to one Slack 5xx; progress updates are not retried (each post
    // spends one of the response_url's five uses).
    const respond = respondReliably(respondOnce, deps, { timeoutMs: opts.timeoutMs });
    const inv: Invoker = {
      userId: command.user_id,
      userName: command.user_name,
      // A slash command carries no user object: its team_id is "where the user was in Slack when they
      // triggered your app's command" (https://docs.slack.dev/interactivity/implementing-slash-commands),
      // the invoking user's own workspace, also for a Slack Connect member of another organisation typing
      // in a shared channel, who is therefore refused by checkWorkspace. Clicks: slack/interaction.ts.
      teamId: command.team_id,
      enterpriseId: command.enterprise_id,
      channelId: command.channel_id,
      via: "slack",
    };
    const text = command.text ?? "";
    let prepared;
    try {
      prepared = prepareCommand(text, inv, deps);
    } catch (err) {
      const e = toUserError(err, deps);
      await ack(toSlackResponse(renderError(e)));
      await auditCommand(deps, inv, text, "refused", e);
      return;
    }
    if (prepared.sub.instant) {
      const failed = await answerInAck(prepared, inv, deps, ack);
      // The audit entry is prepared (scrubbed, queued, its batch started) after the ack is on its way, not
      // in the microtasks before the response is handed over. The listener ends once it is queued: waiting
      // for the row kept each request's objects alive for as long as a batch took, and under a burst they
      // outlived V8's young generation (3 MB promoted every scavenge, each pause longer with them).
      // Shutdown waits for the queue (AuditLog.settled in bot.ts).
      await new Promise<void>((r) => afterResponse(r));
      void auditCommand(deps, inv, text, failed ? "refused" : "ok", failed);
      return;
    }
    const asker: Asker = { channel: command.channel_id, user: command.user_id };
    const started = Date.now();
    /** The answer: through the response_url while it surely works, else (or when that fails) the Web API. */
    const answer = async (reply: Reply) => {
      if (Date.now() - started < RESPONSE_URL_TRUSTED_MS) {
        try {
          return await respond(toSlackResponse(reply, { replace_original: true }));
        } catch (err) {
          deps.log.warn("the response_url did not take the answer; posting it through the Web API", {
            error: err,
          });
        }
      }
      await postToAsker(client, deps, asker, reply);
    };
    if (prepared.sub.long?.(prepared.args, deps)) {
      await ack({
        response_type: "ephemeral",
        text:
          `:hourglass_flowing_sand: Working on \`/bisman ${prepared.sub.name}\`: its progress and result ` +
          "will be posted in this channel",
      });
      await runLong(prepared, inv, text, asker, client, deps, answer);
      return;
    }
    await ack({
      response_type: "ephemeral",
      text: `:hourglass_flowing_sand: Working on \`/bisman ${prepared.sub.name}\`\u2026`,
    });
    try {
      const progress = (r: Reply) =>
        respondOnce(toSlackResponse(r, { replace_original: true })).then(() => undefined);
      const reply = await withShareButton(
        await runPrepared(prepared, inv, deps, progress),
        prepared.sub,
        inv,
        deps,
      );
      await answer(reply);
      await auditCommand(deps, inv, text, "ok");
    } catch (err) {
      const e = toUserError(err, deps);
      await answer(renderError(e)).catch((postErr) =>
        deps.log.error("could not deliver an error reply", { error: postErr })
      );
      await auditCommand(deps, inv, text, e.code === "internal" ? "failed" : "refused", e);
    }
  };
  // Socket Mode delivers through Bolt; over HTTP the receiver calls the listener itself (slack/receiver.ts
  // answerCommand says why) with the arguments Bolt would build: the app's client and Bolt's own respond().
  app.command(COMMAND, onCommand);
  if (receiver instanceof SlackEventsReceiver) {
    receiver.answerCommand(COMMAND, (command, ack) =>
      onCommand({
        command,
        ack: ack as never,
        respond: createRespond(fetch, command.response_url),
        client: app.client,
      }));
  }

  for (const register of opts.registrations ?? []) register(app, deps);

  app.error((err) => {
    deps.log.error("bolt error", { error: err });
    return Promise.resolve();
  });
  return app;
}
