import assert from "node:assert/strict";
import boltAppModule from "@slack/bolt/dist/App.js";
import { SlackEventsReceiver } from "../../slack/receiver.ts";
import { signSlackBody } from "../../slack/verify.ts";
import { createLogger, Secrets } from "../../core/log.ts";
import { Metrics } from "../../core/metrics.ts";

const App = (boltAppModule as unknown as { default: new (o: object) => object }).default;
const SECRET = "receiver-failure-signing-secret";

Deno.test("a slash command whose listener fails before its ack tells the asker, instead of an empty 200", async () => {
  const lines: string[] = [];
  const receiver = new SlackEventsReceiver({
    signingSecret: SECRET,
    log: createLogger(new Secrets(), { sink: (l) => lines.push(l) }),
    metrics: new Metrics(),
  });
  // A real Bolt App on the receiver, as the bot builds it (no token check, no auth.test).
  new App({ token: "xoxb-test", receiver, tokenVerificationEnabled: false, botId: "B1", botUserId: "U1" });
  receiver.answerCommand("/bisman", () => Promise.reject(new Error("listener broke before its ack")));
  let acked = false;
  receiver.answerCommand("/quiet", async (_command, ack) => {
    await ack();
    acked = true;
    throw new Error("listener broke after its ack");
  });

  const send = async (command: string) => {
    const body = new URLSearchParams({ command, text: "help", user_id: "U2", team_id: "T1" }).toString();
    const ts = Math.floor(Date.now() / 1000);
    const headers = new Headers({
      "content-type": "application/x-www-form-urlencoded",
      "x-slack-request-timestamp": String(ts),
      "x-slack-signature": await signSlackBody(SECRET, body, ts),
    });
    return await receiver.handle(body, headers);
  };

  const failed = await send("/bisman");
  assert.equal(failed.status, 200);
  const answer = await failed.json();
  assert.equal(answer.response_type, "ephemeral", "only the asker sees it");
  assert.match(answer.text, /could not handle \/bisman: an internal error/);
  assert.ok(lines.some((l) => l.includes("slack listener failed") && l.includes("before its ack")));

  // A listener that acked keeps its own answer; its later failure is only logged.
  const later = await send("/quiet");
  assert.equal(later.status, 200);
  assert.equal(await later.text(), "");
  assert.equal(await receiver.drain(1000), 0);
  assert.ok(acked);
  assert.ok(lines.some((l) => l.includes("after its ack")));
});
