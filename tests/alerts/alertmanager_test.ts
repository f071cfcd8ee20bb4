import assert from "node:assert/strict";
import { Hono } from "hono";
import type { HttpEnv } from "../../http/app.ts";
import { startCluster } from "../../standins/cluster.ts";
import { OPS_CHANNEL, startTestBot, TEAM, testConfig, USERS } from "../support/bot.ts";
import { startAlertmanager } from "../../standins/alertmanager.ts";
import { waitFor } from "../../standins/wait.ts";
import { ephemeralTo } from "../support/gate.ts";
import { alertmanagerRoute, webhookSchema } from "../../alerts/alertmanager.ts";
import { ALERT_ACTIONS } from "../../views/actions.ts";
import type { StoredMessage } from "../../standins/slack.ts";

const TOKEN = "alerts-test-token-4f8a2c";

/** A version 4 payload as Alertmanager sends it. */
function payload(
  alerts: { fingerprint: string; labels: Record<string, string>; status?: "firing" | "resolved" }[],
) {
  return {
    receiver: "bot",
    status: "firing",
    alerts: alerts.map((a) => ({
      status: a.status ?? "firing",
      labels: a.labels,
      annotations: { summary: `${a.labels.alertname} on ${a.labels.instance ?? "?"}` },
      startsAt: "2026-01-01T10:00:00.123456789Z",
      endsAt: "0001-01-01T00:00:00Z",
      generatorURL: "",
      fingerprint: a.fingerprint,
    })),
    groupLabels: {},
    commonLabels: {},
    commonAnnotations: {},
    externalURL: "http://am.example",
    version: "4",
    groupKey: `{}:{alertname="${alerts[0]?.labels.alertname}"}`,
    truncatedAlerts: 0,
  };
}

function buttonsOf(m: StoredMessage): { action_id: string; text: string; value: string }[] {
  const out = [];
  for (const b of (m.blocks ?? []) as any[]) {
    // The runbook buttons only: "I'm on it" and the silences are their own row (alerts/ownership.ts).
    if (b.type !== "actions" || b.block_id === "bisman.thread.buttons") continue;
    for (const e of b.elements) out.push({ action_id: e.action_id, text: e.text.text, value: e.value });
  }
  return out;
}

Deno.test("POST /alerts: Alertmanager's webhook opens one thread per alert with its runbook buttons, and resolves it", async (t) => {
  await using cluster = await startCluster({ name: "alerts-am" });
  const config = testConfig(cluster, (doc) => {
    doc.alerts = { lag_check: { enabled: false }, slack_per_channel_per_second: 50 };
  });
  const tb = await startTestBot(cluster, { config, env: { ALERTS_TOKEN: TOKEN } });
  const alertsUrl = `${tb.bot.url}/alerts`;
  const state = cluster.primary.sql((new URL(tb.bot.deps.env.databaseUrl)).pathname.slice(1));
  const stateCount = async () => (await state`select count(*)::int as n from bisman_ops.alert_state`)[0].n;
  const parents = () =>
    tb.slack.messages.filter((m) =>
      m.channel === OPS_CHANNEL && !m.thread_ts && /FIRING|RESOLVED/.test(m.text ?? "")
    );
  try {
    await t.step("without ALERTS_TOKEN the route answers not configured", async () => {
      const app = new Hono<HttpEnv>();
      alertmanagerRoute(tb.bot.alerts, {
        ...tb.bot.deps,
        env: { ...tb.bot.deps.env, alertsToken: undefined },
      })(app);
      const res = await app.request("/alerts", { method: "POST", body: "{}" });
      assert.equal(res.status, 503);
      assert.match((await res.json()).message, /not configured: set ALERTS_TOKEN/);
    });

    await t.step(
      "a bad or missing token gets 401 and a malformed body 400; neither changes anything",
      async () => {
        const body = JSON.stringify(
          payload([{ fingerprint: "aa01", labels: { alertname: "HighReplicationLag" } }]),
        );
        for (const auth of [undefined, "Bearer wrong-token", `Basic ${btoa(`x:${TOKEN}`)}`, TOKEN]) {
          const res = await fetch(alertsUrl, {
            method: "POST",
            headers: { "content-type": "application/json", ...(auth ? { authorization: auth } : {}) },
            body,
          });
          assert.equal(res.status, 401, `auth ${auth}`);
          assert.equal(res.headers.get("www-authenticate"), 'Bearer realm="bisman-ops"');
          await res.body?.cancel();
        }
        const headers = { "content-type": "application/json", authorization: `Bearer ${TOKEN}` };
        const bad = [
          "{not json",
          JSON.stringify({ ...payload([]), version: "3" }),
          JSON.stringify(payload([{ fingerprint: "NOT-HEX", labels: { alertname: "X" } }])),
          JSON.stringify(payload([{ fingerprint: "aa02", labels: { instance: "no alertname" } }])),
        ];
        for (const b of bad) {
          const res = await fetch(alertsUrl, { method: "POST", headers, body: b });
          assert.equal(res.status, 400, b);
          assert.match((await res.json()).error, /malformed_body/);
        }
        assert.equal(await stateCount(), 0);
        assert.equal(tb.slack.calls.filter((c) => c.method.startsWith("chat.")).length, 0);
      },
    );

    await t.step(
      "a flood of refused deliveries is counted in full but audited at most 60 a minute",
      async () => {
        // Refusals of this route only (the first step's stand-alone route refused one of its own).
        const audited = async () =>
          (await tb.bot.deps.audit.rows()).filter((r) =>
            r.action === "alerts.refused" && r.details.reason !== "not_configured"
          ).length;
        const counted = async () => {
          const metrics = await (await fetch(`${tb.bot.url}/metrics`)).text();
          return [...metrics.matchAll(/bisman_alerts_rejected_total\{reason="[a-z_]+"\} (\d+)/g)]
            .reduce((n, m) => n + Number(m[1]), 0);
        };
        const before = await counted();
        // The step above had 8 refused; 70 more in the same minute go past the budget of 60.
        for (let i = 0; i < 70; i++) {
          const res = await fetch(alertsUrl, { method: "POST", headers: { authorization: "Bearer flood" } });
          assert.equal(res.status, 401);
          await res.body?.cancel();
        }
        assert.equal((await counted()) - before, 70, "every refusal is counted");
        await waitFor(async () => (await audited()) === 60, { what: "60 audited refusals" });
        await new Promise((r) => setTimeout(r, 200));
        assert.equal(await audited(), 60, "no more than 60 in the audit log this minute");
      },
    );

    await t.step(
      "the payload schema accepts what Alertmanager 0.25 sends (nanosecond times, zero endsAt)",
      () => {
        assert.equal(
          webhookSchema.safeParse(payload([{ fingerprint: "304ffdb0e058c0a1", labels: { alertname: "A" } }]))
            .success,
          true,
        );
      },
    );

    await t.step(
      "a delivery with UTF-8 label names (Alertmanager 0.27+) is accepted and opens its thread",
      async () => {
        // Debian's Alertmanager (0.25) cannot send these: since 0.27 a label name is any UTF-8 string, so
        // the delivery is posted as 0.27+ would post it. A 400 here would lose the alert.
        const labels = {
          alertname: "TooManyConnections",
          instance: `127.0.0.1:${cluster.primary.port}`,
          "service.name": "bisman-db",
          "région": "eu-west-3",
          "задача": "ops",
          "🔥 level": "hot",
          "": "empty name",
        };
        const body = payload([{ fingerprint: "c0ffee0000000001", labels }]);
        body.groupLabels = { "service.name": "bisman-db" };
        body.commonLabels = labels;
        const res = await fetch(alertsUrl, {
          method: "POST",
          headers: { "content-type": "application/json", authorization: `Bearer ${TOKEN}` },
          body: JSON.stringify(body),
        });
        assert.equal(res.status, 200, await res.clone().text());
        assert.deepEqual(await res.json(), { status: "ok", received: 1, queued: 1 });
        const parent = await waitFor(() => parents().find((m) => /TooManyConnections/.test(m.text ?? "")), {
          timeoutMs: 20_000,
          what: "the TooManyConnections parent message",
        });
        assert.match(parent.text ?? "", /^FIRING: TooManyConnections/);
        const shown = JSON.stringify(parent.blocks);
        for (const name of ["service.name", "région", "задача", "🔥 level"]) {
          assert.ok(shown.includes(name), `the label ${name} is shown in the thread`);
        }
        assert.equal(buttonsOf(parent)[0]?.text, "Show connections", "with the runbook's buttons");
        // The bot records the parent's ts after Slack accepted the message: wait for the record, not only the post.
        const stored = await waitFor(async () => {
          const [row] = await state<{ labels: Record<string, string>; thread_ts: string | null }[]>`
            select labels, thread_ts from bisman_ops.alert_state where fingerprint = 'c0ffee0000000001'`;
          return row?.thread_ts ? row : undefined;
        }, { timeoutMs: 20_000, what: "the alert's thread recorded" });
        assert.deepEqual(stored.labels, labels, "every label is kept as sent");
        assert.equal(stored.thread_ts, parent.ts, "the alert is threaded under its parent");
      },
    );

    const am = await startAlertmanager({
      webhookUrl: alertsUrl,
      token: TOKEN,
      groupWait: "1s",
      groupInterval: "1s",
      repeatInterval: "2s",
    });
    try {
      const labels = {
        alertname: "HighReplicationLag",
        instance: `127.0.0.1:${cluster.primary.port}`,
        severity: "warning",
      };
      let parent!: StoredMessage;

      await t.step(
        "a firing alert from Alertmanager opens a thread with Show lag and Promote replica",
        async () => {
          await am.push(labels, { summary: "Replica is 45 s behind" });
          parent = await waitFor(() => parents().find((m) => /HighReplicationLag/.test(m.text ?? "")), {
            timeoutMs: 20_000,
            what: "the HighReplicationLag parent message",
          });
          assert.match(parent.text ?? "", /^FIRING: HighReplicationLag: Replica is 45 s behind/);
          const buttons = buttonsOf(parent);
          assert.deepEqual(buttons.map((b) => b.action_id), [
            ALERT_ACTIONS.show_lag,
            ALERT_ACTIONS.promote_replica,
          ]);
          assert.deepEqual(buttons.map((b) => b.text), ["Show lag", "Promote replica"]);
          const shown = JSON.stringify(parent.blocks);
          assert.ok(shown.includes(`127.0.0.1:${cluster.primary.port}`), "the instance label is shown");
          assert.ok(
            !shown.includes(TOKEN) && !tb.logs.join("\n").includes(TOKEN),
            "the token appears nowhere",
          );
        },
      );

      await t.step("repeats and a second push of the same alert do not open a second thread", async () => {
        const received = () =>
          tb.bot.deps.metrics.value("bisman_alerts_received_total", {
            source: "alertmanager",
            status: "firing",
          });
        const before = received();
        await am.push(labels, { summary: "Replica is 45 s behind" });
        // repeat_interval 2 s: Alertmanager re-sends the group; wait for two more deliveries.
        await waitFor(() => received() >= before + 2, {
          timeoutMs: 20_000,
          what: "two repeated notifications",
        });
        await tb.bot.alerts.idle();
        assert.equal(parents().filter((m) => /HighReplicationLag/.test(m.text ?? "")).length, 1);
        assert.equal(parent.edits, 0, "an unchanged repeat does not even edit the parent");
      });

      await t.step("an unknown alert name gets the generic diagnostics in its own thread", async () => {
        await am.push({ alertname: "DiskAlmostFull", instance: "db1:9100" });
        const m = await waitFor(() => parents().find((x) => /DiskAlmostFull/.test(x.text ?? "")), {
          timeoutMs: 20_000,
          what: "the DiskAlmostFull parent",
        });
        assert.deepEqual(buttonsOf(m).map((b) => b.text), [
          "Status",
          "Show lag",
          "Show connections",
          "Top slow queries",
        ]);
      });

      await t.step("clicking Show lag answers in the alert's thread", async () => {
        const b = buttonsOf(parent).find((x) => x.action_id === ALERT_ACTIONS.show_lag)!;
        const res = await tb.slack.sendBlockAction(tb.eventsUrl, {
          user_id: USERS.dave, // read-only: anyone in the channel
          team_id: TEAM,
          action_id: b.action_id,
          value: b.value,
          channel_id: OPS_CHANNEL,
          message_ts: parent.ts,
        });
        assert.equal(res.status, 200);
        await res.body?.cancel();
        const answer = await waitFor(
          () =>
            tb.slack.messages.find((m) =>
              m.thread_ts === parent.ts && /Replication lag|no replicas/i.test(JSON.stringify(m.blocks))
            ),
          { what: "the lag answer in the thread" },
        );
        assert.match(JSON.stringify(answer.blocks), /pressed \*Show lag\*/);
      });

      await t.step(
        "resolving in Alertmanager edits the parent to resolved and notes it in the thread",
        async () => {
          await am.resolve(labels, { summary: "Replica is 45 s behind" });
          await waitFor(() => /^RESOLVED/.test(parent.text ?? "") ? true : undefined, {
            timeoutMs: 20_000,
            what: "the parent to say RESOLVED",
          });
          assert.equal(buttonsOf(parent).length, 0, "no buttons on a resolved alert");
          await waitFor(
            () =>
              tb.slack.messages.find((m) => m.thread_ts === parent.ts && /^Resolved at/.test(m.text ?? "")),
            {
              what: "the resolved note in the thread",
            },
          );
          assert.equal(
            parents().filter((m) => /HighReplicationLag/.test(m.text ?? "")).length,
            1,
          );
          const [row] =
            await state`select status, thread_ts from bisman_ops.alert_state where alertname = 'HighReplicationLag'`;
          assert.deepEqual({ ...row }, { status: "resolved", thread_ts: parent.ts });
        },
      );
    } finally {
      await am.stop();
    }

    await t.step(
      "the security buttons reach their operations through the gate (Terminate sessions from this client address)",
      async () => {
        const res = await fetch(alertsUrl, {
          method: "POST",
          headers: { "content-type": "application/json", authorization: `Bearer ${TOKEN}` },
          body: JSON.stringify(
            payload([{
              fingerprint: "bb01",
              labels: { alertname: "UnexpectedDbUser", client_addr: "10.9.8.7" },
            }]),
          ),
        });
        assert.equal(res.status, 200);
        assert.deepEqual(await res.json(), { status: "ok", received: 1, queued: 1 });
        const m = await waitFor(() => parents().find((x) => /UnexpectedDbUser/.test(x.text ?? "")), {
          what: "the parent",
        });
        const buttons = buttonsOf(m);
        assert.deepEqual(buttons.map((b) => b.text), [
          "Show audit trail",
          "Rotate all credentials",
          "Terminate sessions from this client address",
        ]);
        const term = buttons.find((b) => b.action_id === ALERT_ACTIONS.terminate_client)!;
        const since = tb.slack.ephemerals.length;
        const r = await tb.slack.sendBlockAction(tb.eventsUrl, {
          user_id: USERS.alice,
          team_id: TEAM,
          action_id: term.action_id,
          value: term.value,
          channel_id: OPS_CHANNEL,
          message_ts: m.ts,
        });
        await r.body?.cancel();
        // The security engineer's terminate_client plans from the alert's client_addr; with no session from it
        // the gate answers the clicker (no session to terminate) instead of posting a request.
        const text = await ephemeralTo(tb, USERS.alice, /10\.9\.8\.7/, since);
        assert.doesNotMatch(text, /not available yet|Internal error/);
        const clicks = (await tb.bot.deps.audit.rows()).filter((r) => r.action === "alert.button_clicked");
        assert.deepEqual(clicks.at(-1)?.details, {
          button: "terminate_client",
          fingerprint: "bb01",
          does: "terminate_client",
        });
      },
    );
  } finally {
    await tb.stop();
  }
});
