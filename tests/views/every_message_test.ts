/**
 * Every message the bot can send, rendered with realistic and with maximal data, is one Slack accepts: each goes
 * through the Slack stand-in's validation as a pure function and through chat.postMessage / views.open with the
 * bot's own Web API client. A renderer no case renders fails the test, and so does a module outside views/ that
 * builds Block Kit without being covered here.
 */

import assert from "node:assert/strict";
import { WebClient } from "@slack/web-api";
import { loadConfig } from "../../core/config.ts";
import { SlackStandIn, validateMessage, validateView } from "../../standins/slack.ts";
import { CASES, type MessageBody, NOT_MESSAGES, requestView } from "./_messages.ts";
import { SlackApprovalNotifier } from "../../slack/approval_messages.ts";
import { ALL_STATES } from "../../gate/store.ts";
import { hostile } from "./_messages.ts";

const ROOT = new URL("../../", import.meta.url);

/**
 * Modules outside views/ that build Block Kit themselves, and what covers them. A new one fails the test
 * until it is covered by a case or said why it needs none.
 */
const BUILT_ELSEWHERE: Record<string, string> = {
  "slack/share.ts":
    "case: a query result with its Post to channel button (withShareButtonBlocks, sharedAnswer)",
  "slack/approval_messages.ts": "step: approval messages through SlackApprovalNotifier",
  "slack/answers.ts": "case: long work's message (workMessageContent)",
  "commands/config.ts":
    "a header and mrkdwnSection()s of config lines, at most 45 sections; mrkdwnSection cuts safely",
  "commands/freeze.ts": "one mrkdwnSection() of a short sentence",
  "commands/cancel.ts": "one mrkdwnSection() of a short sentence",
  "commands/audit_log.ts": "one mrkdwnSection() of the verify verdict",
  "commands/digest.ts": "one mrkdwnSection() of a short sentence",
  "commands/jobs.ts": "one mrkdwnSection() of a short sentence",
};

/** Every runtime export of every module in views/. */
async function viewsExports(): Promise<string[]> {
  const out: string[] = [];
  for await (const e of Deno.readDir(new URL("views/", ROOT))) {
    if (!e.isFile || !e.name.endsWith(".ts")) continue;
    const mod = await import(new URL(`views/${e.name}`, ROOT).href);
    for (const name of Object.keys(mod)) out.push(`views/${e.name}#${name}`);
  }
  return out.sort();
}

/** Source files (outside views/, standins/, tests/) that build blocks. */
async function blockBuilders(): Promise<string[]> {
  const out: string[] = [];
  const builds =
    /(?<![.\w])(mrkdwnSection|header|fieldsSection|context)\(|type: "(section|actions|header|context|input|modal|divider)"/;
  for (const dir of ["alerts", "slack", "commands", "jobs", "gate", "http", "cli", "core", "ops"]) {
    for await (const e of Deno.readDir(new URL(`${dir}/`, ROOT))) {
      if (!e.isFile || !e.name.endsWith(".ts")) continue;
      const text = await Deno.readTextFile(new URL(`${dir}/${e.name}`, ROOT));
      if (builds.test(text)) out.push(`${dir}/${e.name}`);
    }
  }
  return out.sort();
}

/** Text a cut left broken: a `<…>` link or mention, or an `&…;` entity, cut before its end (at a "…"). */
function brokenCuts(text: string): string[] {
  const bad: string[] = [];
  for (let i = text.indexOf("…"); i >= 0; i = text.indexOf("…", i + 1)) {
    const before = text.slice(0, i);
    if (before.lastIndexOf("<") > before.lastIndexOf(">")) {
      bad.push(`a link or mention cut: …${before.slice(-40)}…`);
    }
    if (/&[a-zA-Z#0-9]{0,6}$/.test(before)) bad.push(`an entity cut: …${before.slice(-20)}…`);
  }
  // An odd number of ``` leaves a code block open for the rest of the message.
  if (((text.match(/```/g) ?? []).length % 2) === 1) {
    bad.push(`an unclosed code block: ${text.slice(0, 60)}…`);
  }
  return bad;
}

/** Every mrkdwn text of a message: its blocks' text objects. */
function mrkdwnTexts(v: unknown, out: string[] = []): string[] {
  if (Array.isArray(v)) { for (const x of v) mrkdwnTexts(x, out); }
  else if (v && typeof v === "object") {
    const o = v as Record<string, unknown>;
    if (o.type === "mrkdwn" && typeof o.text === "string") out.push(o.text);
    for (const x of Object.values(o)) if (typeof x === "object") mrkdwnTexts(x, out);
  }
  return out;
}

function problems(name: string, m: MessageBody): string[] {
  const refused = validateMessage(m);
  const out = refused ? [`${name}: ${refused.error} ${JSON.stringify(refused.errors ?? [])}`] : [];
  for (const t of mrkdwnTexts(m.blocks)) out.push(...brokenCuts(t).map((b) => `${name}: ${b}`));
  return out;
}

Deno.test("every message the bot can send is one Slack accepts", async (t) => {
  const config = await loadConfig(new URL("bisman.example.yaml", ROOT).pathname);

  await t.step("every export of views/ is rendered by a case or said not to be a message", async () => {
    const covered = new Set(CASES.flatMap((c) => c.covers));
    const missing = (await viewsExports()).filter((e) =>
      !covered.has(e) && !(e in NOT_MESSAGES) && !(e.split("#")[0] in NOT_MESSAGES)
    );
    assert.deepEqual(missing, [], "renderers no case renders: add them to tests/views/_messages.ts");
    const known = new Set(await viewsExports());
    const stale = [...covered].filter((c) => c.startsWith("views/") && !known.has(c));
    assert.deepEqual(stale, [], "cases that name exports views/ no longer has");
  });

  await t.step("every module outside views/ that builds Block Kit is covered", async () => {
    const uncovered = (await blockBuilders()).filter((f) => !(f in BUILT_ELSEWHERE));
    assert.deepEqual(
      uncovered,
      [],
      "modules that build blocks: cover them here or say why they need nothing",
    );
  });

  const slack = await SlackStandIn.start({ users: { U0ALICE: { name: "alice" }, U0BOB: { name: "bob" } } });
  const web = new WebClient(slack.botToken, { slackApiUrl: slack.apiUrl, retryConfig: { retries: 0 } });
  try {
    for (const c of CASES) {
      await t.step(c.name, async () => {
        const r = c.render(config);
        assert.ok(r.messages.length + r.views.length > 0, "the case renders something");
        const found: string[] = [];
        for (const m of r.messages) found.push(...problems(m.name, m.body));
        for (const v of r.views) {
          const refused = validateView(v.view);
          if (refused) {
            found.push(`${v.name}: ${JSON.stringify(refused.response_metadata?.messages ?? refused.error)}`);
          }
        }
        assert.deepEqual(found, [], `${c.name}: Slack would refuse these`);
        // The same through the bot's Web API client, as it posts them.
        for (const m of r.messages) {
          const res = await web.chat.postMessage({
            channel: "C0OPS",
            text: m.body.text,
            blocks: m.body.blocks as never,
          })
            .catch((e) => ({
              ok: false,
              error: (e as { data?: { error?: string } }).data?.error ?? String(e),
            }));
          assert.equal(res.ok, true, `${m.name}: ${JSON.stringify(res)}`);
        }
        for (const v of r.views) {
          const res = await web.views.open({ trigger_id: slack.triggerId(), view: v.view as never });
          assert.equal(res.ok, true, v.name);
        }
      });
    }

    await t.step(
      "approval messages through SlackApprovalNotifier: post, every state, reminder, announcement",
      async () => {
        const notifier = new SlackApprovalNotifier(web, { scrub: (s: string) => s } as never);
        // Every state but "approved": the gate never leaves a request in it (pending to running in one claim).
        const states = ALL_STATES.filter((st) => st !== "approved");
        for (const long of [false, true]) {
          const v = requestView(
            long ? { id: 2_147_483_647, summary: hostile(5000), error: hostile(5000) } : {},
          );
          const where = await notifier.post(v, { channel: "C0OPS" });
          for (const state of states) {
            await notifier.update({
              ...v,
              request: {
                ...v.request,
                state,
                channel: where.channel,
                message_ts: where.ts,
                started_at: new Date(),
              },
            });
          }
          const placed = { ...v, request: { ...v.request, channel: where.channel, message_ts: where.ts } };
          await notifier.remind(placed, 20);
          await notifier.announce(
            placed,
            long ? hostile(10_000, "announce") : "The bot restarted while this ran",
          );
        }
        const refused = slack.calls.filter((c) => c.error);
        assert.deepEqual(refused.map((c) => `${c.method}: ${c.error}`), []);
      },
    );
  } finally {
    await slack.stop();
  }
});
