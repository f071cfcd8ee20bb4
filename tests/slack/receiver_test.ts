import assert from "node:assert/strict";
import { startCluster } from "../../standins/cluster.ts";
import { waitFor } from "../../standins/wait.ts";
import { startTestBot, TEAM, USERS } from "../support/bot.ts";

Deno.test("POST /slack/events refuses forged, stale, unsigned and altered requests before any handler", async (t) => {
  await using cluster = await startCluster({ name: "receiver" });
  const tb = await startTestBot(cluster);
  try {
    const commandsRun = async () =>
      (await tb.bot.deps.audit.rows()).filter((r) => r.action === "command.received").length;
    const base = { text: "help", user_id: USERS.alice, team_id: TEAM };

    await t.step("a valid request is answered (control)", async () => {
      const res = await tb.slack.sendCommand(tb.eventsUrl, base);
      assert.equal(res.status, 200);
      await res.body?.cancel();
    });
    // The control command is audited after its ack: wait for that row so it is not counted below.
    const before = await waitFor(async () => (await commandsRun()) === 1 && 1, {
      what: "the control command's audit row",
    });
    const callsBefore = tb.slack.calls.length;

    await t.step("a signature made with the wrong secret gets 401", async () => {
      const res = await tb.slack.sendCommand(tb.eventsUrl, base, { secret: "not-the-signing-secret" });
      assert.equal(res.status, 401);
      assert.equal((await res.json()).error, "bad_signature");
    });
    await t.step("a timestamp 6 minutes old gets 401", async () => {
      const res = await tb.slack.sendCommand(tb.eventsUrl, base, {
        timestamp: Math.floor(Date.now() / 1000) - 6 * 60,
      });
      assert.equal(res.status, 401);
      assert.equal((await res.json()).error, "stale_timestamp");
    });
    await t.step("missing signature headers get 401", async () => {
      const res = await tb.slack.sendCommand(tb.eventsUrl, base, { omitHeaders: true });
      assert.equal(res.status, 401);
      assert.equal((await res.json()).error, "missing_headers");
    });
    await t.step("a body altered after signing gets 401", async () => {
      const res = await tb.slack.sendCommand(tb.eventsUrl, base, {
        tamper: (b) => b.replace("help", "status"),
      });
      assert.equal(res.status, 401);
      assert.equal((await res.json()).error, "bad_signature");
    });
    await t.step("a signed but malformed body gets 400", async () => {
      const body = "payload=%7Bnot-json";
      const ts = Math.floor(Date.now() / 1000);
      const res = await fetch(tb.eventsUrl, {
        method: "POST",
        headers: { "content-type": "application/x-www-form-urlencoded", ...tb.slack.sign(body, ts) },
        body,
      });
      assert.equal(res.status, 400);
      await res.body?.cancel();
    });
    await t.step("none of them reached a handler, and each was counted and audited", async () => {
      assert.equal(await commandsRun(), before);
      assert.equal(tb.slack.calls.length, callsBefore, "no Slack call was made for a refused request");
      const metrics = await (await fetch(`${tb.bot.url}/metrics`)).text();
      assert.match(metrics, /bisman_slack_rejected_total\{reason="bad_signature"\} 2/);
      assert.match(metrics, /bisman_slack_rejected_total\{reason="stale_timestamp"\} 1/);
      assert.match(metrics, /bisman_slack_rejected_total\{reason="missing_headers"\} 1/);
      assert.match(metrics, /bisman_slack_rejected_total\{reason="malformed_body"\} 1/);
      const refused = await waitFor(async () => {
        const rows = (await tb.bot.deps.audit.rows()).filter((r) => r.action === "slack.request_refused");
        return rows.length === 5 ? rows : undefined;
      }, { what: "5 refusal audit rows" });
      assert.deepEqual(refused.map((r) => r.details.reason).sort(), [
        "bad_signature",
        "bad_signature",
        "malformed_body",
        "missing_headers",
        "stale_timestamp",
      ]);
    });

    await t.step(
      "Slack's ssl_check request gets a bare 200, unsigned, and is neither refused nor run",
      async () => {
        const res = await fetch(tb.eventsUrl, {
          method: "POST",
          headers: { "content-type": "application/x-www-form-urlencoded" },
          body: "ssl_check=1&token=legacy-verification-token",
        });
        assert.equal(res.status, 200);
        assert.equal(await res.text(), "");
        // The same body with ssl_check=0 is an ordinary unsigned request: refused.
        const other = await fetch(tb.eventsUrl, {
          method: "POST",
          headers: { "content-type": "application/x-www-form-urlencoded" },
          body: "ssl_check=0&token=legacy-verification-token",
        });
        assert.equal(other.status, 401);
        await other.body?.cancel();
        const metrics = await (await fetch(`${tb.bot.url}/metrics`)).text();
        assert.match(
          metrics,
          /bisman_slack_rejected_total\{reason="missing_headers"\} 2/,
          "only ssl_check=0",
        );
        assert.equal(await commandsRun(), before);
      },
    );
  } finally {
    await tb.stop();
  }
});

Deno.test("a request still without its ack when Slack's 3 seconds are up is logged and counted, and answered when the listener ends", async () => {
  await using cluster = await startCluster({ name: "receiver-unacked" });
  let finished = false;
  const tb = await startTestBot(cluster, {
    start: {
      slackAckDeadlineMs: 500,
      // A click listener that forgets ack() and works for 2.5 s (none of the bot's own does: a guard).
      registrations: [(app) =>
        app.action("test_forgets_ack", async () => {
          await new Promise((r) => setTimeout(r, 2_500));
          finished = true;
        })],
    },
  });
  try {
    // An acknowledged request first: it must never be reported, however long after its ack.
    const help = await tb.command("help");
    assert.equal(help.status, 200);
    const answer = tb.slack.sendBlockAction(tb.eventsUrl, {
      user_id: USERS.alice,
      team_id: TEAM,
      action_id: "test_forgets_ack",
      value: "x",
      channel_id: "C0OPS",
      message_ts: "1.000001",
    });
    const late = (l: string) => l.includes("not acknowledged within Slack's 3 seconds");
    const line = await waitFor(() => tb.logs.find(late), { what: "the error line at the deadline" });
    assert.equal(finished, false, "reported while the listener still works");
    assert.match(line, /"kind":"block_actions"/);
    assert.match(line, /"level":"error"/);
    const metrics = await (await fetch(`${tb.bot.url}/metrics`)).text();
    assert.match(metrics, /bisman_slack_unacknowledged_total\{kind="block_actions"\} 1/);
    assert.doesNotMatch(metrics, /bisman_slack_unacknowledged_total\{kind="command"\}/);
    assert.equal(tb.logs.filter(late).length, 1, "the acknowledged command is not reported");
    const res = await answer;
    await res.body?.cancel();
    assert.equal(finished, true, "answered once the listener ended");
    assert.equal(res.status, 200, "an empty 200, as for any request no listener acknowledged");
  } finally {
    await tb.stop();
  }
});
