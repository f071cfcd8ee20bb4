import assert from "node:assert/strict";
import { startCluster } from "../../standins/cluster.ts";
import { waitFor } from "../../standins/wait.ts";
import { startTestBot, USERS } from "../support/bot.ts";
import { ask } from "../support/gate.ts";
import { ACTIONS } from "../../views/actions.ts";
import { REQUEST_EVENT_TYPE } from "../../slack/approval_messages.ts";

const ALERTS_TOKEN = "fault-slack-alerts-token";

Deno.test("Slack answering 500 or timing out: posts, edits and replies are retried with backoff, and every message arrives exactly once", async (t) => {
  await using cluster = await startCluster({ name: "fault-slack", preload: ["pg_stat_statements"] });
  await cluster.primary.sql()`create extension if not exists pg_stat_statements`;
  // A 1-second Slack timeout keeps the test short; production uses 10 s.
  const tb = await startTestBot(cluster, { env: { ALERTS_TOKEN }, start: { slackTimeoutMs: 1000 } });
  const slack = tb.slack;
  const approvalMessagesOf = (id: number) =>
    slack.messages.filter((m) => {
      const meta = m.metadata as { event_type?: string; event_payload?: { request_id?: number } } | undefined;
      return meta?.event_type === REQUEST_EVENT_TYPE && meta.event_payload?.request_id === id;
    });
  const callsOf = (method: string, since: number) =>
    slack.calls.slice(since).filter((c) => c.method === method);
  try {
    let id = 0;
    await t.step(
      "chat.postMessage answers 500 twice: the approval message is posted once, after backoff",
      async () => {
        const since = slack.calls.length;
        slack.failNext("chat.postMessage", { status: 500 }, 2);
        const r = await ask(tb, "reset-stats");
        assert.ok(r.id, r.text);
        id = r.id!;
        await waitFor(() => approvalMessagesOf(id).length === 1 || undefined, {
          what: "the approval message",
        });
        const posts = callsOf("chat.postMessage", since);
        assert.deepEqual(posts.map((c) => c.status), [500, 500, 200]);
        assert.ok(
          posts[1].at - posts[0].at >= 150 && posts[2].at - posts[1].at >= 150,
          "retried with backoff",
        );
      },
    );

    await t.step(
      "chat.update times out once: the edits of the approval message are retried and land",
      async () => {
        const since = slack.calls.length;
        // A gateway that answers only after the client has given up, without having applied the edit.
        // It hangs far longer than the client's timeout: only a timeout and a retry get the edit through in time.
        slack.failNext("chat.update", { delayMs: 15_000, status: 504 });
        assert.equal(await tb.click(ACTIONS.approve, id, USERS.carol), 200);
        await tb.waitForState(id, "succeeded", 10_000);
        await waitFor(() => /succeeded/i.test(approvalMessagesOf(id)[0]?.text ?? "") || undefined, {
          what: "the approval message edited to its result",
          timeoutMs: 10_000,
        });
        const updates = callsOf("chat.update", since);
        assert.ok(updates.length >= 2, `the timed-out edit was retried (${updates.map((c) => c.status)})`);
        assert.equal(approvalMessagesOf(id).length, 1, "still one message: edits, not new posts");
      },
    );

    await t.step("the response_url answers 500: the command's reply is retried and delivered", async () => {
      const since = slack.calls.length;
      slack.failNext("response_url", { status: 500 });
      const res = await tb.command("status");
      assert.match(res.body.text, /Working on/);
      const delivered = await waitFor(
        () =>
          callsOf("response_url", since).find((c) => c.status === 200 && /main/.test(JSON.stringify(c.args))),
        { what: "the status reply delivered" },
      );
      assert.match(JSON.stringify(delivered.args), /primary/);
      assert.deepEqual(callsOf("response_url", since).map((c) => c.status), [500, 200]);
    });

    await t.step(
      "Slack failing for longer than the client's retries: the alert thread is posted once it is back",
      async () => {
        const since = slack.calls.length;
        slack.failNext("chat.postMessage", { status: 500 }, 2);
        const res = await fetch(`${tb.bot.url}/alerts`, {
          method: "POST",
          headers: { authorization: `Bearer ${ALERTS_TOKEN}`, "content-type": "application/json" },
          body: JSON.stringify({
            version: "4",
            groupKey: '{}:{alertname="TooManyConnections"}',
            truncatedAlerts: 0,
            status: "firing",
            receiver: "bisman-ops",
            groupLabels: { alertname: "TooManyConnections" },
            commonLabels: { alertname: "TooManyConnections" },
            commonAnnotations: {},
            externalURL: "http://alertmanager:9093",
            alerts: [{
              status: "firing",
              labels: { alertname: "TooManyConnections", target: "main", severity: "warning" },
              annotations: { summary: "120 connections on main" },
              startsAt: new Date().toISOString(),
              endsAt: "0001-01-01T00:00:00Z",
              generatorURL: "",
              fingerprint: "00000000000000f1",
            }],
          }),
        });
        assert.equal(res.status, 200, await res.text());
        const parents = () =>
          slack.messages.filter((m) => !m.thread_ts && /TooManyConnections/.test(m.text ?? ""));
        await waitFor(() => parents().length > 0 || undefined, {
          what: "the alert thread",
          timeoutMs: 40_000,
        });
        await tb.bot.alerts.idle();
        assert.equal(parents().length, 1, "posted exactly once");
        assert.ok(callsOf("chat.postMessage", since).filter((c) => c.status === 500).length === 2);
      },
    );

    await t.step("every log line is JSON, the Slack SDK's warnings about retried calls included", () => {
      const lines = tb.logs.map((l) => JSON.parse(l));
      assert.ok(
        lines.some((l) => ["bolt", "slack-web-api"].includes(l.component) && /timeout/i.test(l.msg)),
        "the timed-out call is logged as a JSON line",
      );
      assert.ok(lines.some((l) => l.msg === "response_url post failed; retrying" && l.status === 500));
    });
  } finally {
    await tb.stop();
  }
});
