import assert from "node:assert/strict";
import { createHmac, timingSafeEqual } from "node:crypto";
import { type Logger, LogLevel, WebClient } from "@slack/web-api";
import { isValidSlackRequest } from "@slack/bolt";
import { SlackStandIn, validateMessage, validateView } from "../../standins/slack.ts";
import { serveLoopback } from "../../standins/http.ts";

/** A Logger that keeps what WebClient says instead of printing it. */
function captureLogger(): Logger & { lines: string[] } {
  const lines: string[] = [];
  let level = LogLevel.DEBUG;
  const put = (lvl: string) => (...msg: unknown[]) => void lines.push(`${lvl} ${msg.map(String).join(" ")}`);
  return {
    lines,
    debug: put("debug"),
    info: put("info"),
    warn: put("warn"),
    error: put("error"),
    setLevel: (l: LogLevel) => void (level = l),
    getLevel: () => level,
    setName: () => {},
  };
}

function client(s: SlackStandIn, token = s.botToken, logger = captureLogger()) {
  return new WebClient(token, { slackApiUrl: s.apiUrl, logger });
}

/** The Slack platform error code carried by a WebClient rejection. */
async function platformError(p: Promise<unknown>): Promise<{ error: string; data: Record<string, unknown> }> {
  try {
    await p;
  } catch (e) {
    const err = e as { code?: string; data?: Record<string, unknown> };
    assert.equal(err.code, "slack_webapi_platform_error", `unexpected rejection: ${e}`);
    return { error: String(err.data?.error), data: err.data ?? {} };
  }
  assert.fail("expected the call to be rejected");
}

Deno.test("Slack stand-in with the real WebClient", async (t) => {
  const slack = await SlackStandIn.start({
    users: { U0ALICE: { name: "alice", real_name: "Alice Ops" } },
    usergroups: { S0ONCALL: ["U0ALICE"] },
    channels: { C0RATE: { name: "rate" } },
  });
  try {
    await t.step("auth.test answers with the bot identity", async () => {
      const r = await client(slack).auth.test();
      assert.equal(r.ok, true);
      assert.equal(r.team_id, "T0TEST");
      assert.equal(r.user_id, "U0BOT");
      assert.equal(r.bot_id, "B0STANDIN");
      assert.equal(slack.calls.at(-1)?.token, "xoxb-test-token");
    });

    await t.step("postMessage then update stores and edits the message", async () => {
      const web = client(slack);
      const blocks = [
        { type: "section", text: { type: "mrkdwn", text: "*deploy* started" } },
        {
          type: "actions",
          elements: [{
            type: "button",
            action_id: "approve",
            text: { type: "plain_text", text: "Approve" },
            value: "42",
          }],
        },
      ];
      const posted = await web.chat.postMessage({
        channel: "C0OPS",
        text: "deploy started",
        blocks,
        metadata: { event_type: "deploy", event_payload: { id: "42" } },
      });
      assert.equal(posted.ok, true);
      assert.match(posted.ts!, /^\d{10}\.\d{6}$/);
      assert.equal(posted.channel, "C0OPS");
      assert.equal(posted.message?.text, "deploy started");

      // WebClient form-encodes and JSON-stringifies nested args; the stand-in decodes them back.
      const call = slack.calls.at(-1)!;
      assert.equal(call.method, "chat.postMessage");
      assert.deepEqual(call.args.blocks, blocks);
      assert.equal(call.args.token, undefined, "token never kept in args");

      const reply = await web.chat.postMessage({ channel: "C0OPS", thread_ts: posted.ts, text: "step 1 ok" });
      assert.ok(reply.ts! > posted.ts!, "ts values increase");

      const updated = await web.chat.update({ channel: "C0OPS", ts: posted.ts!, text: "deploy finished" });
      assert.equal(updated.ok, true);
      assert.equal(updated.ts, posted.ts);

      const stored = slack.messages.find((m) => m.ts === posted.ts)!;
      assert.equal(stored.text, "deploy finished");
      assert.equal(stored.edits, 1);
      assert.deepEqual(stored.blocks, blocks, "blocks kept when an update leaves them out");
      assert.deepEqual(stored.metadata, { event_type: "deploy", event_payload: { id: "42" } });
      assert.equal(stored.user, "U0BOT");
      const storedReply = slack.messages.find((m) => m.ts === reply.ts)!;
      assert.equal(storedReply.thread_ts, posted.ts);

      const link = await web.chat.getPermalink({ channel: "C0OPS", message_ts: reply.ts! });
      assert.match(
        String(link.permalink),
        new RegExp(`/archives/C0OPS/p${reply.ts!.replace(".", "")}\\?thread_ts=`),
      );

      const missing = await platformError(web.chat.update({ channel: "C0OPS", ts: "1.000001", text: "x" }));
      assert.equal(missing.error, "message_not_found");
    });

    await t.step("JSON bodies with a Bearer token are accepted too", async () => {
      const res = await fetch(`${slack.apiUrl}chat.postMessage`, {
        method: "POST",
        headers: {
          "content-type": "application/json; charset=utf-8",
          authorization: `Bearer ${slack.botToken}`,
        },
        body: JSON.stringify({
          channel: "C0OPS",
          blocks: [{ type: "divider" }, { type: "section", text: { type: "plain_text", text: "hi" } }],
        }),
      });
      const body = await res.json();
      assert.equal(body.ok, true);
      assert.equal(slack.messages.at(-1)?.blocks?.length, 2);
    });

    await t.step("bad or missing token → invalid_auth / not_authed", async () => {
      const bad = await platformError(
        client(slack, "xoxb-wrong").chat.postMessage({ channel: "C0OPS", text: "x" }),
      );
      assert.equal(bad.error, "invalid_auth");
      const none = await (await fetch(`${slack.apiUrl}auth.test`, { method: "POST" })).json();
      assert.deepEqual(none, { ok: false, error: "not_authed" });
      const unknown = await platformError(client(slack).apiCall("chat.frobnicate", {}));
      assert.equal(unknown.error, "unknown_method");
    });

    await t.step("51 blocks → invalid_blocks with Slack-style errors", async () => {
      const blocks = Array.from(
        { length: 51 },
        (_, i) => ({ type: "section", text: { type: "plain_text", text: `b${i}` } }),
      );
      const r = await platformError(
        client(slack).chat.postMessage({ channel: "C0OPS", text: "many", blocks }),
      );
      assert.equal(r.error, "invalid_blocks");
      assert.deepEqual(r.data.errors, ["no more than 50 items allowed [json-pointer:/blocks]"]);
      assert.equal(slack.calls.at(-1)?.error, "invalid_blocks");
    });

    await t.step("other Block Kit limits are enforced", async () => {
      const web = client(slack);
      const cases: [string, unknown[], RegExp][] = [
        [
          "section text",
          [{ type: "section", text: { type: "mrkdwn", text: "x".repeat(3001) } }],
          /3001 characters \[json-pointer:\/blocks\/0\/text\/text\]/,
        ],
        [
          "header mrkdwn",
          [{ type: "header", text: { type: "mrkdwn", text: "h" } }],
          /\/blocks\/0\/text\/type/,
        ],
        [
          "header length",
          [{ type: "header", text: { type: "plain_text", text: "h".repeat(151) } }],
          /151 characters/,
        ],
        [
          "button text",
          [{
            type: "actions",
            elements: [{
              type: "button",
              action_id: "a",
              text: { type: "plain_text", text: "b".repeat(76) },
            }],
          }],
          /76 characters \[json-pointer:\/blocks\/0\/elements\/0\/text\/text\]/,
        ],
        [
          "button value",
          [{
            type: "actions",
            elements: [{
              type: "button",
              action_id: "a",
              text: { type: "plain_text", text: "b" },
              value: "v".repeat(2001),
            }],
          }],
          /2001 characters .*\/value\]/,
        ],
        ["block_id", [{ type: "divider", block_id: "i".repeat(256) }], /256 characters .*block_id/],
        [
          "26 buttons",
          [{
            type: "actions",
            elements: Array.from(
              { length: 26 },
              (_, i) => ({ type: "button", action_id: `a${i}`, text: { type: "plain_text", text: "b" } }),
            ),
          }],
          /no more than 25 items allowed/,
        ],
        ["11 fields", [{
          type: "section",
          fields: Array.from({ length: 11 }, () => ({ type: "mrkdwn", text: "f" })),
        }], /no more than 10 items/],
        [
          "long field",
          [{ type: "section", fields: [{ type: "mrkdwn", text: "f".repeat(2001) }] }],
          /fields\/0\/text/,
        ],
        ["11 context", [{
          type: "context",
          elements: Array.from({ length: 11 }, () => ({ type: "mrkdwn", text: "c" })),
        }], /no more than 10 items/],
        [
          "unknown type",
          [{ type: "sections", text: { type: "mrkdwn", text: "x" } }],
          /unsupported type: sections \[json-pointer:\/blocks\/0\/type\]/,
        ],
      ];
      for (const [name, blocks, re] of cases) {
        const r = await platformError(
          web.chat.postMessage({ channel: "C0OPS", text: name, blocks: blocks as never }),
        );
        assert.equal(r.error, "invalid_blocks", name);
        assert.match((r.data.errors as string[]).join("\n"), re, name);
      }
    });

    await t.step("40,001-char text → msg_too_long; 40,000 is fine; nothing → no_text", async () => {
      const web = client(slack);
      const r = await platformError(web.chat.postMessage({ channel: "C0OPS", text: "x".repeat(40_001) }));
      assert.equal(r.error, "msg_too_long");
      assert.equal((await web.chat.postMessage({ channel: "C0OPS", text: "x".repeat(40_000) })).ok, true);
      const none = await platformError(web.chat.postMessage({ channel: "C0OPS" } as never));
      assert.equal(none.error, "no_text");
    });

    await t.step("rate limit: WebClient honours 429 + Retry-After and succeeds", async () => {
      slack.setRateLimit(1);
      const logger = captureLogger();
      const web = client(slack, slack.botToken, logger);
      const first = slack.calls.length;
      const started = Date.now();
      const a = await web.chat.postMessage({ channel: "C0RATE", text: "one" });
      const b = await web.chat.postMessage({ channel: "C0RATE", text: "two" });
      const took = Date.now() - started;
      slack.setRateLimit(undefined);
      assert.equal(a.ok && b.ok, true);
      const seen = slack.calls.slice(first).map((c) => [c.method, c.status, c.error ?? ""]);
      assert.deepEqual(seen, [
        ["chat.postMessage", 200, ""],
        ["chat.postMessage", 429, "ratelimited"],
        ["chat.postMessage", 200, ""],
      ]);
      assert.ok(took >= 1000, `retried only after Retry-After (took ${took} ms)`);
      assert.ok(
        logger.lines.some((l) => /rate limiting\. Will retry in 1 seconds/.test(l)),
        logger.lines.join("\n"),
      );
      assert.equal(slack.messages.filter((m) => m.channel === "C0RATE").length, 2);
    });

    await t.step("failNext: 429 with Retry-After, 5xx, error and delay", async () => {
      const web = client(slack);
      slack.failNext("chat.update", { status: 429, retryAfter: 1 });
      const posted = await web.chat.postMessage({ channel: "C0OPS", text: "x" });
      assert.equal((await web.chat.update({ channel: "C0OPS", ts: posted.ts!, text: "y" })).ok, true);
      const updates = slack.calls.filter((c) => c.method === "chat.update").slice(-2).map((c) => c.status);
      assert.deepEqual(updates, [429, 200]);

      slack.failNext("users.info", { error: "fatal_error" });
      assert.equal((await platformError(web.users.info({ user: "U0ALICE" }))).error, "fatal_error");

      slack.failNext("auth.test", { status: 500 });
      const noRetry = new WebClient(slack.botToken, {
        slackApiUrl: slack.apiUrl,
        logger: captureLogger(),
        retryConfig: { retries: 0 },
      });
      await assert.rejects(noRetry.auth.test(), (e: { code?: string; statusCode?: number }) => {
        assert.equal(e.code, "slack_webapi_http_error");
        assert.equal(e.statusCode, 500);
        return true;
      });

      slack.failNext("auth.test", { delayMs: 400 });
      const slow = new WebClient(slack.botToken, {
        slackApiUrl: slack.apiUrl,
        logger: captureLogger(),
        timeout: 100,
        retryConfig: { retries: 0 },
      });
      await assert.rejects(
        slow.auth.test(),
        (e: { code?: string }) => e.code === "slack_webapi_request_error",
      );
      await slack.waitFor(() => slack.calls.at(-1)?.status === 200, 2000, "the delayed call to finish");
    });

    await t.step("users.info, usergroups.users.list, conversations.info, postEphemeral", async () => {
      const web = client(slack);
      const u = await web.users.info({ user: "U0ALICE" });
      assert.equal(u.user?.name, "alice");
      assert.equal(u.user?.real_name, "Alice Ops");
      assert.equal((await platformError(web.users.info({ user: "U0NOBODY" }))).error, "user_not_found");
      const g = await web.usergroups.users.list({ usergroup: "S0ONCALL" });
      assert.deepEqual(g.users, ["U0ALICE"]);
      assert.equal(
        (await platformError(web.usergroups.users.list({ usergroup: "S0NONE" }))).error,
        "no_such_subteam",
      );
      const c = await web.conversations.info({ channel: "C0OPS" });
      assert.equal(c.channel?.name, "ops");
      assert.equal(
        (await platformError(web.conversations.info({ channel: "C0NONE" }))).error,
        "channel_not_found",
      );
      const e = await web.chat.postEphemeral({ channel: "C0OPS", user: "U0ALICE", text: "only you" });
      assert.match(e.message_ts!, /^\d+\.\d{6}$/);
      assert.deepEqual(
        [slack.ephemerals.at(-1)?.ephemeral_user, slack.ephemerals.at(-1)?.text],
        ["U0ALICE", "only you"],
      );
    });

    await t.step(
      "a signed command verifies with an independent HMAC; response_url and views work",
      async () => {
        const received: { body: string; headers: Headers }[] = [];
        const bot = await serveLoopback(async (req) => {
          received.push({ body: await req.text(), headers: req.headers });
          return new Response("", { status: 200 });
        });
        try {
          const res = await slack.sendCommand(`${bot.url}/slack/events`, {
            text: "deploy api",
            user_id: "U0ALICE",
          });
          await res.body?.cancel();
          assert.equal(res.status, 200);
          const { body, headers } = received[0];
          assert.equal(headers.get("content-type"), "application/x-www-form-urlencoded");
          const ts = headers.get("x-slack-request-timestamp")!;
          assert.ok(Math.abs(Number(ts) - Date.now() / 1000) < 5);
          const expected = "v0=" +
            createHmac("sha256", "test-signing-secret").update(`v0:${ts}:${body}`).digest("hex");
          const got = headers.get("x-slack-signature")!;
          assert.equal(got.length, expected.length);
          assert.ok(timingSafeEqual(Buffer.from(got), Buffer.from(expected)), "signature verifies");

          const form = new URLSearchParams(body);
          for (
            const f of [
              "token",
              "team_id",
              "team_domain",
              "channel_id",
              "channel_name",
              "user_id",
              "user_name",
              "command",
              "text",
              "api_app_id",
              "response_url",
              "trigger_id",
            ]
          ) assert.ok(form.has(f), `field ${f}`);
          assert.equal(form.get("command"), "/bisman");
          assert.equal(form.get("channel_id"), "C0OPS");
          assert.equal(form.get("text"), "deploy api");
          assert.equal(form.get("user_name"), "alice");

          // Bolt's own verifier (what the bot runs) agrees; it rejects tampered and stale requests.
          const boltOk = (b: string, h: Headers) =>
            isValidSlackRequest({
              signingSecret: "test-signing-secret",
              body: b,
              headers: {
                "x-slack-signature": h.get("x-slack-signature") ?? "",
                "x-slack-request-timestamp": Number(h.get("x-slack-request-timestamp")),
              },
              logger: captureLogger(),
            });
          assert.equal(boltOk(body, headers), true);
          const stale = await slack.sendCommand(`${bot.url}/x`, { text: "x", user_id: "U0ALICE" }, {
            timestamp: Math.floor(Date.now() / 1000) - 600,
          });
          await stale.body?.cancel();
          assert.equal(boltOk(received.at(-1)!.body, received.at(-1)!.headers), false);
          const wrongSecret = await slack.sendCommand(`${bot.url}/x`, { text: "x", user_id: "U0ALICE" }, {
            secret: "nope",
          });
          await wrongSecret.body?.cancel();
          assert.equal(boltOk(received.at(-1)!.body, received.at(-1)!.headers), false);

          // The bot answers on the response_url (Bolt's respond() posts JSON there).
          const responseUrl = form.get("response_url")!;
          const eph = await fetch(responseUrl, {
            method: "POST",
            headers: { "content-type": "application/json" },
            body: JSON.stringify({ text: "working on it" }),
          });
          assert.deepEqual(await eph.json(), { ok: true });
          const pub = await fetch(responseUrl, {
            method: "POST",
            headers: { "content-type": "application/json" },
            body: JSON.stringify({ response_type: "in_channel", text: "deploying api" }),
          });
          assert.deepEqual(await pub.json(), { ok: true });
          assert.equal(slack.ephemerals.at(-1)?.text, "working on it");
          assert.equal(slack.ephemerals.at(-1)?.ephemeral_user, "U0ALICE");
          assert.equal(slack.messages.at(-1)?.text, "deploying api");
          assert.equal(slack.responses.length, 2);
          assert.equal(slack.calls.at(-1)?.method, "response_url");

          // The trigger_id opens exactly one modal.
          const web = client(slack);
          const view = {
            type: "modal",
            callback_id: "deploy",
            title: { type: "plain_text", text: "Deploy" },
            blocks: [],
          };
          const opened = await web.views.open({ trigger_id: form.get("trigger_id")!, view: view as never });
          assert.equal(opened.view?.callback_id, "deploy");
          assert.equal(slack.views.length, 1);
          assert.equal(
            (await platformError(
              web.views.open({ trigger_id: form.get("trigger_id")!, view: view as never }),
            )).error,
            "exchanged_trigger_id",
          );
          assert.equal(
            (await platformError(web.views.open({ trigger_id: "1.2.abc", view: view as never }))).error,
            "invalid_trigger_id",
          );
          const upd = await web.views.update({
            view_id: opened.view!.id!,
            view: { ...view, blocks: [{ type: "divider" }] } as never,
          });
          assert.notEqual(upd.view?.hash, opened.view?.hash);

          // Wrong secret / tampering / no headers produce signatures that don't verify.
          const tampered = await slack.sendCommand(`${bot.url}/slack/events`, {
            text: "x",
            user_id: "U0ALICE",
          }, { tamper: (b) => b + "&x=1" });
          await tampered.body?.cancel();
          const last = received.at(-1)!;
          const recomputed = "v0=" + createHmac("sha256", "test-signing-secret")
            .update(`v0:${last.headers.get("x-slack-request-timestamp")}:${last.body}`).digest("hex");
          assert.notEqual(last.headers.get("x-slack-signature"), recomputed);
          const bare = await slack.sendCommand(`${bot.url}/slack/events`, { text: "x", user_id: "U0ALICE" }, {
            omitHeaders: true,
          });
          await bare.body?.cancel();
          assert.equal(received.at(-1)!.headers.get("x-slack-signature"), null);
        } finally {
          await bot.close();
        }
      },
    );

    await t.step("block_actions payload carries the stored message; replace_original edits it", async () => {
      const web = client(slack);
      const posted = await web.chat.postMessage({
        channel: "C0OPS",
        text: "approve?",
        blocks: [{
          type: "actions",
          block_id: "approval",
          elements: [{
            type: "button",
            action_id: "approve",
            text: { type: "plain_text", text: "Approve" },
            value: "run-7",
          }],
        }],
      });
      let payload: Record<string, any> = {};
      const bot = await serveLoopback(async (req) => {
        payload = JSON.parse(new URLSearchParams(await req.text()).get("payload")!);
        return new Response("");
      });
      try {
        const res = await slack.sendBlockAction(`${bot.url}/slack/events`, {
          user_id: "U0ALICE",
          action_id: "approve",
          value: "run-7",
          channel_id: "C0OPS",
          message_ts: posted.ts!,
        });
        await res.body?.cancel();
      } finally {
        await bot.close();
      }
      assert.equal(payload.type, "block_actions");
      assert.deepEqual(payload.user, { id: "U0ALICE", username: "alice", name: "alice", team_id: "T0TEST" });
      assert.deepEqual(payload.container, {
        type: "message",
        message_ts: posted.ts,
        channel_id: "C0OPS",
        is_ephemeral: false,
      });
      assert.equal(payload.message.ts, posted.ts);
      assert.equal(payload.actions[0].block_id, "approval");
      assert.equal(payload.actions[0].value, "run-7");
      assert.equal(payload.actions[0].type, "button");

      const r = await fetch(payload.response_url, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ replace_original: true, text: "approved by alice" }),
      });
      assert.deepEqual(await r.json(), { ok: true });
      const stored = slack.messages.find((m) => m.ts === posted.ts)!;
      assert.equal(stored.text, "approved by alice");
      assert.equal(stored.blocks, undefined);
      assert.equal(stored.edits, 1);
    });
  } finally {
    await slack.stop();
  }
});

// --- What Slack refuses (standins/slack_blockkit.ts), each refused as Slack refuses it ---------------------

const button = (action_id: string, extra: Record<string, unknown> = {}) => ({
  type: "button",
  action_id,
  text: { type: "plain_text", text: "Go" },
  ...extra,
});
const confirm = (patch: Record<string, unknown> = {}) => ({
  title: { type: "plain_text", text: "Sure?" },
  text: { type: "plain_text", text: "It runs now." },
  confirm: { type: "plain_text", text: "Yes" },
  deny: { type: "plain_text", text: "No" },
  ...patch,
});
const options = (n: number, text = "o", value = "v") =>
  Array.from({ length: n }, (_, i) => ({ text: { type: "plain_text", text }, value: `${value}${i}` }));

/** Each case: blocks Slack refuses with invalid_blocks, and the error (pointer included) it names. */
const REFUSED_BLOCKS: [string, unknown[], RegExp][] = [
  [
    "a repeated action_id in one actions block (the alert parent's three silence buttons)",
    [{ type: "actions", elements: [button("silence"), button("silence"), button("silence")] }],
    /duplicate action_id "silence" .*\[json-pointer:\/blocks\/0\/elements\/1\/action_id\]/,
  ],
  [
    "a repeated block_id in one message",
    [{ type: "divider", block_id: "b" }, {
      type: "section",
      block_id: "b",
      text: { type: "mrkdwn", text: "x" },
    }],
    /duplicate block_id "b".*\[json-pointer:\/blocks\/1\/block_id\]/,
  ],
  [
    "a section with neither text nor fields",
    [{ type: "section" }],
    /must define either `text` or `fields` \[json-pointer:\/blocks\/0\]/,
  ],
  [
    "empty text",
    [{ type: "section", text: { type: "mrkdwn", text: "" } }],
    /more than 0 characters .*\/text\/text\]/,
  ],
  [
    "a button with mrkdwn text",
    [{ type: "actions", elements: [button("a", { text: { type: "mrkdwn", text: "*Go*" } })] }],
    /valid enum value: plain_text \[json-pointer:\/blocks\/0\/elements\/0\/text\/type\]/,
  ],
  [
    "a button url that is not a URL",
    [{ type: "actions", elements: [button("a", { url: "not a url" })] }],
    /must be a valid URL \[json-pointer:\/blocks\/0\/elements\/0\/url\]/,
  ],
  [
    "a button url with a javascript: scheme",
    [{ type: "actions", elements: [button("a", { url: "javascript:alert(1)" })] }],
    /must be a valid URL/,
  ],
  [
    "a button url over 3,000 characters",
    [{ type: "actions", elements: [button("a", { url: `https://x.example/${"p".repeat(3000)}` })] }],
    /3001 characters .*\/url\]/,
  ],
  [
    "an action_id over 255 characters",
    [{ type: "actions", elements: [button("a".repeat(256))] }],
    /256 characters .*action_id/,
  ],
  [
    "an actions block with no elements",
    [{ type: "actions", elements: [] }],
    /at least 1 item .*\/elements\]/,
  ],
  [
    "a confirm dialog title over 100 characters",
    [{
      type: "actions",
      elements: [button("a", { confirm: confirm({ title: { type: "plain_text", text: "t".repeat(101) } }) })],
    }],
    /101 characters .*\/confirm\/title\/text\]/,
  ],
  [
    "a confirm dialog text over 300 characters",
    [{
      type: "actions",
      elements: [button("a", { confirm: confirm({ text: { type: "plain_text", text: "t".repeat(301) } }) })],
    }],
    /301 characters .*\/confirm\/text\/text\]/,
  ],
  [
    "a confirm button over 30 characters",
    [{
      type: "actions",
      elements: [
        button("a", { confirm: confirm({ confirm: { type: "plain_text", text: "c".repeat(31) } }) }),
      ],
    }],
    /31 characters .*\/confirm\/confirm\/text\]/,
  ],
  [
    "a confirm dialog without deny",
    [{ type: "actions", elements: [button("a", { confirm: confirm({ deny: undefined }) })] }],
    /\/confirm\/deny\]/,
  ],
  [
    "a static_select with 101 options",
    [{ type: "actions", elements: [{ type: "static_select", action_id: "s", options: options(101) }] }],
    /no more than 100 items allowed \[json-pointer:\/blocks\/0\/elements\/0\/options\]/,
  ],
  [
    "an option text over 75 characters",
    [{
      type: "actions",
      elements: [{ type: "static_select", action_id: "s", options: options(1, "o".repeat(76)) }],
    }],
    /76 characters .*\/options\/0\/text\/text\]/,
  ],
  [
    "an option value over 150 characters",
    [{
      type: "actions",
      elements: [{ type: "static_select", action_id: "s", options: options(1, "o", "v".repeat(150)) }],
    }],
    /151 characters .*\/options\/0\/value\]/,
  ],
  [
    "an overflow menu with 6 options",
    [{ type: "actions", elements: [{ type: "overflow", action_id: "o", options: options(6) }] }],
    /no more than 5 items allowed/,
  ],
  [
    "a select placeholder in mrkdwn",
    [{
      type: "actions",
      elements: [{
        type: "static_select",
        action_id: "s",
        placeholder: { type: "mrkdwn", text: "p" },
        options: options(2),
      }],
    }],
    /plain_text \[json-pointer:\/blocks\/0\/elements\/0\/placeholder\/type\]/,
  ],
  [
    "an input's max_length over 3,000",
    [{
      type: "input",
      label: { type: "plain_text", text: "Why" },
      element: { type: "plain_text_input", action_id: "i", max_length: 3001 },
    }],
    /between 1 and 3000 \[json-pointer:\/blocks\/0\/element\/max_length\]/,
  ],
  [
    "a markdown block over 12,000 characters",
    [{ type: "markdown", text: "m".repeat(12_001) }],
    /12001 characters/,
  ],
  [
    "emoji on a mrkdwn text object",
    [{ type: "section", text: { type: "mrkdwn", text: "x", emoji: true } }],
    /not a valid field for mrkdwn \[json-pointer:\/blocks\/0\/text\/emoji\]/,
  ],
];

Deno.test("Slack stand-in refuses what Slack refuses", async (t) => {
  const slack = await SlackStandIn.start({
    users: { U0ALICE: { name: "alice" } },
    channels: { C0AWAY: { name: "away", is_member: false } },
  });
  const web = client(slack);
  try {
    for (const [name, blocks, re] of REFUSED_BLOCKS) {
      await t.step(`chat.postMessage refuses ${name} with invalid_blocks`, async () => {
        const r = await platformError(
          web.chat.postMessage({ channel: "C0OPS", text: name, blocks: blocks as never }),
        );
        assert.equal(r.error, "invalid_blocks");
        assert.match((r.data.errors as string[]).join("\n"), re);
        assert.equal(slack.calls.at(-1)?.status, 200, "refused at HTTP 200, as the Web API does");
        // The same rule holds in chat.update, chat.postEphemeral and the pure validator the tests use.
        const posted = await web.chat.postMessage({ channel: "C0OPS", text: "x" });
        assert.equal(
          (await platformError(
            web.chat.update({ channel: "C0OPS", ts: posted.ts!, blocks: blocks as never }),
          )).error,
          "invalid_blocks",
        );
        assert.equal(
          (await platformError(
            web.chat.postEphemeral({ channel: "C0OPS", user: "U0ALICE", text: "x", blocks: blocks as never }),
          )).error,
          "invalid_blocks",
        );
        assert.match(validateMessage({ text: "x", blocks })?.errors?.join("\n") ?? "", re);
      });
    }

    await t.step(
      "the same blocks without the fault are accepted (each case fails for its own reason)",
      async () => {
        const ok = [
          {
            type: "actions",
            block_id: "a",
            elements: [button("silence.1"), button("silence.4", { url: "https://x.example/p" })],
          },
          { type: "section", block_id: "b", text: { type: "mrkdwn", text: "x" } },
          {
            type: "actions",
            elements: [
              button("c", { confirm: confirm() }),
              {
                type: "static_select",
                action_id: "s",
                placeholder: { type: "plain_text", text: "p" },
                options: options(100),
              },
              { type: "overflow", action_id: "o", options: options(5) },
            ],
          },
          {
            type: "input",
            label: { type: "plain_text", text: "Why" },
            element: { type: "plain_text_input", action_id: "i", max_length: 3000 },
          },
          { type: "markdown", text: "m".repeat(12_000) },
        ];
        assert.equal(
          validateMessage({ text: "x", blocks: ok }),
          undefined,
          JSON.stringify(validateMessage({ text: "x", blocks: ok })),
        );
        assert.equal(
          (await web.chat.postMessage({ channel: "C0OPS", text: "ok", blocks: ok as never })).ok,
          true,
        );
      },
    );

    await t.step("a repeated action_id in two different blocks is fine", () => {
      const blocks = [
        { type: "actions", elements: [button("go")] },
        { type: "actions", elements: [button("go")] },
      ];
      assert.equal(validateMessage({ text: "x", blocks }), undefined);
    });

    await t.step("views.open refuses a bad modal with invalid_arguments and Slack's sentences", async () => {
      const base = {
        type: "modal",
        title: { type: "plain_text", text: "Deny request #12" },
        submit: { type: "plain_text", text: "Deny" },
        blocks: [{
          type: "input",
          block_id: "r",
          label: { type: "plain_text", text: "Why" },
          element: { type: "plain_text_input", action_id: "i" },
        }],
      };
      const cases: [string, Record<string, unknown>, RegExp][] = [
        [
          "a title over 24 characters",
          { title: { type: "plain_text", text: "Approve request #12345678" } },
          /25 characters \[json-pointer:\/view\/title\/text\]/,
        ],
        [
          "a mrkdwn title",
          { title: { type: "mrkdwn", text: "Deny" } },
          /plain_text \[json-pointer:\/view\/title\/type\]/,
        ],
        [
          "an input without submit",
          { submit: undefined },
          /submit is required .*\[json-pointer:\/view\/submit\]/,
        ],
        [
          "a close button over 24 characters",
          { close: { type: "plain_text", text: "c".repeat(25) } },
          /\/view\/close\/text\]/,
        ],
        [
          "101 blocks",
          { blocks: Array.from({ length: 101 }, () => ({ type: "divider" })) },
          /no more than 100 items allowed \[json-pointer:\/view\/blocks\]/,
        ],
        [
          "a repeated block_id",
          { blocks: [...base.blocks, { ...base.blocks[0] }] },
          /duplicate block_id "r"/,
        ],
        [
          "private_metadata over 3,000",
          { private_metadata: "m".repeat(3001) },
          /3001 characters \[json-pointer:\/view\/private_metadata\]/,
        ],
        [
          "a markdown block (messages only)",
          { blocks: [{ type: "markdown", text: "x" }] },
          /unsupported type: markdown/,
        ],
      ];
      for (const [name, patch, re] of cases) {
        const view = { ...base, ...patch };
        const r = await platformError(web.views.open({ trigger_id: slack.triggerId(), view: view as never }));
        assert.equal(r.error, "invalid_arguments", name);
        assert.match((r.data.response_metadata as { messages: string[] }).messages.join("\n"), re, name);
        assert.match(validateView(view)?.response_metadata?.messages.join("\n") ?? "", re, name);
      }
      assert.equal((await web.views.open({ trigger_id: slack.triggerId(), view: base as never })).ok, true);
    });

    await t.step("a trigger_id expires 3 s after it was issued, on the stand-in's clock", async () => {
      const view = { type: "modal", title: { type: "plain_text", text: "T" }, blocks: [] };
      const trigger = slack.triggerId();
      slack.advanceClock(3001);
      assert.equal(
        (await platformError(web.views.open({ trigger_id: trigger, view: view as never }))).error,
        "expired_trigger_id",
      );
      const fresh = slack.triggerId();
      slack.advanceClock(2500);
      assert.equal((await web.views.open({ trigger_id: fresh, view: view as never })).ok, true);
      assert.equal(
        (await platformError(web.views.open({ trigger_id: fresh, view: view as never }))).error,
        "exchanged_trigger_id",
      );
    });

    await t.step("chat.update edits only the bot's own messages", async () => {
      const theirs = slack.postAsUser("C0OPS", "U0ALICE", "a person wrote this");
      assert.equal(
        (await platformError(web.chat.update({ channel: "C0OPS", ts: theirs, text: "edited" }))).error,
        "cant_update_message",
      );
      assert.equal(slack.messages.find((m) => m.ts === theirs)?.text, "a person wrote this");
      const eph = await web.chat.postEphemeral({ channel: "C0OPS", user: "U0ALICE", text: "only you" });
      assert.equal(
        (await platformError(web.chat.update({ channel: "C0OPS", ts: eph.message_ts!, text: "x" }))).error,
        "message_not_found",
      );
    });

    await t.step("a channel that does not exist, or that the bot is not in, is refused", async () => {
      assert.equal(
        (await platformError(web.chat.postMessage({ channel: "C0NOWHERE", text: "x" }))).error,
        "channel_not_found",
      );
      assert.equal(
        (await platformError(web.chat.postMessage({ channel: "C0AWAY", text: "x" }))).error,
        "not_in_channel",
      );
      assert.equal(
        (await platformError(web.chat.postEphemeral({ channel: "C0NOWHERE", user: "U0ALICE", text: "x" })))
          .error,
        "channel_not_found",
      );
      assert.equal(
        (await platformError(web.chat.postEphemeral({ channel: "C0OPS", user: "U0NOBODY", text: "x" })))
          .error,
        "user_not_in_channel",
      );
    });

    await t.step("metadata without event_type and event_payload is refused", async () => {
      assert.equal(
        (await platformError(
          web.chat.postMessage({
            channel: "C0OPS",
            text: "x",
            metadata: { event_type: "bad type" } as never,
          }),
        )).error,
        "invalid_metadata_format",
      );
    });

    const post = async (url: string, body: Record<string, unknown>) => {
      const r = await fetch(url, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(body),
      });
      return { status: r.status, body: await r.json() };
    };

    await t.step("a response_url takes 5 posts; the sixth is refused and reaches nobody", async () => {
      const url = slack.responseUrl({ user: "U0ALICE", channel: "C0OPS" });
      const before = slack.ephemerals.length;
      for (let i = 1; i <= 5; i++) {
        assert.deepEqual(await post(url, { text: `post ${i}` }), { status: 200, body: { ok: true } });
      }
      assert.deepEqual(await post(url, { text: "post 6" }), {
        status: 404,
        body: { ok: false, error: "used_url" },
      });
      assert.deepEqual(slack.ephemerals.slice(before).map((m) => m.text), [
        "post 1",
        "post 2",
        "post 3",
        "post 4",
        "post 5",
      ]);
      assert.ok(
        !slack.responses.some((r) => r.body.text === "post 6"),
        "a refused post is not among the accepted responses",
      );
      assert.equal(slack.calls.at(-1)?.error, "used_url");
    });

    await t.step("a response_url works for 30 minutes of the stand-in's clock, then is refused", async () => {
      const url = slack.responseUrl({ user: "U0ALICE", channel: "C0OPS" });
      slack.advanceClock(29 * 60_000);
      assert.equal((await post(url, { text: "in time" })).status, 200);
      slack.advanceClock(60_000 + 1);
      assert.deepEqual(await post(url, { text: "too late" }), {
        status: 404,
        body: { ok: false, error: "expired_url" },
      });
      assert.ok(!slack.ephemerals.some((m) => m.text === "too late"));
    });

    await t.step("a response_url post with invalid blocks is refused and spends a use", async () => {
      const url = slack.responseUrl({ user: "U0ALICE", channel: "C0OPS" });
      const r = await post(url, {
        text: "x",
        blocks: [{ type: "actions", elements: [button("a"), button("a")] }],
      });
      assert.equal(r.status, 400);
      assert.equal(r.body.error, "invalid_blocks");
      for (let i = 0; i < 4; i++) assert.equal((await post(url, { text: "ok" })).status, 200);
      assert.equal((await post(url, { text: "sixth" })).status, 404);
    });

    await t.step(
      "files.completeUploadExternal refuses a user ID as channel, a channel the bot is not in, and a second call",
      async () => {
        const upload = async (name: string) => {
          const bytes = new TextEncoder().encode(`a,b\n1,${name}\n`);
          const u = await web.files.getUploadURLExternal({ filename: name, length: bytes.length });
          const res = await fetch(u.upload_url!, { method: "POST", body: bytes });
          assert.equal(res.status, 200, await res.text());
          return u.file_id!;
        };
        const id = await upload("a.csv");
        const complete = (channel_id?: string) =>
          web.files.completeUploadExternal({
            files: [{ id, title: "A" }],
            ...(channel_id ? { channel_id } : {}),
          });
        assert.equal((await platformError(complete("U0ALICE"))).error, "invalid_arguments", "a user ID");
        assert.equal((await platformError(complete("C0AWAY"))).error, "not_in_channel");
        assert.equal((await platformError(complete("C0NOWHERE"))).error, "channel_not_found");
        assert.equal(slack.files.find((f) => f.id === id)?.completed, false, "nothing shared yet");
        const dm = (await web.conversations.open({ users: "U0ALICE" })).channel!.id!;
        await complete(dm);
        const f = slack.files.find((x) => x.id === id)!;
        assert.deepEqual([f.completed, f.channel, typeof f.shared_ts], [true, dm, "string"]);
        assert.equal((await platformError(complete(dm))).error, "invalid_arguments", "only once");
        assert.equal(slack.directMessageOf("U0ALICE"), dm);
        assert.equal(slack.canSee("U0ALICE", dm), true);
        assert.equal(slack.canSee(slack.botUserId, dm), false, "another person does not see alice's DM");
        assert.equal(slack.canSee("U0ALICE", "C0OPS"), true);
        assert.equal(slack.canSee("U0NOBODY", "C0OPS"), false);
      },
    );
  } finally {
    await slack.stop();
  }
});
