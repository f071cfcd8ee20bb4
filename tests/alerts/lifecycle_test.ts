import assert from "node:assert/strict";
import { startCluster } from "../../standins/cluster.ts";
import { OPS_CHANNEL, startTestBot, type TestBot, testConfig, USERS } from "../support/bot.ts";
import { startAlertmanager } from "../../standins/alertmanager.ts";
import { freePort } from "../../standins/ports.ts";
import { waitFor } from "../../standins/wait.ts";
import { silenceActionId, THREAD_ACTIONS } from "../../views/actions.ts";
import type { StoredMessage } from "../../standins/slack.ts";

const TOKEN = "lifecycle-test-token-3f9a";

/** Clicks the button of `m` whose action is `action` (and text `text`, when given) as `user`. */
async function click(tb: TestBot, m: StoredMessage, action: string, user: string, text?: string) {
  let value: string | undefined;
  for (const b of (m.blocks ?? []) as any[]) {
    for (const e of b.elements ?? []) {
      if (e.action_id === action && (!text || e.text.text === text)) value = e.value;
    }
  }
  if (!value) throw new Error(`No ${text ?? action} button on ${m.text}`);
  const res = await tb.slack.sendBlockAction(tb.eventsUrl, {
    user_id: user,
    action_id: action,
    value,
    channel_id: m.channel,
    message_ts: m.ts,
  });
  await res.body?.cancel();
}

// Alertmanager, the bot and its alert state are shared by the steps, which run in order.
Deno.test("alert threads follow Alertmanager: a silenced alert's resolve reaches its thread and the digest; a re-fired alert opens a fresh thread at the bottom", async (t) => {
  await using cluster = await startCluster({ name: "alert-lifecycle" });
  // Silences go only to the configured Alertmanager: its port is chosen first, so the config can name it.
  const amPort = await freePort();
  const config = testConfig(cluster, (doc) => {
    doc.alerts = {
      lag_check: { enabled: false },
      slack_per_channel_per_second: 50,
      alertmanager_url: `http://127.0.0.1:${amPort}`,
    };
  });
  const tb = await startTestBot(cluster, { config, env: { ALERTS_TOKEN: TOKEN } });
  const am = await startAlertmanager({
    webhookUrl: `${tb.bot.url}/alerts`,
    token: TOKEN,
    repeatInterval: "2s",
    port: amPort,
  });
  const parents = (name: string) =>
    tb.slack.messages.filter((m) => m.channel === OPS_CHANNEL && !m.thread_ts && m.text?.includes(name));
  const replies = (m: StoredMessage) => tb.slack.messages.filter((x) => x.thread_ts === m.ts);
  const deliveriesOf = async (name: string) =>
    (await tb.bot.deps.audit.rows()).filter((r) =>
      r.action === "alerts.received" && (r.details.alertnames as string[]).includes(name)
    ).length;
  const lag = { alertname: "HighReplicationLag", instance: "db7:5432", target: "main" };
  const fpOf = async (name: string) =>
    (await am.alerts()).find((a) => a.labels.alertname === name)?.fingerprint;
  try {
    let parent!: StoredMessage;
    let fp = "";
    await t.step(
      "an alert fires; an operator silences it for 1 h (a real Alertmanager silence)",
      async () => {
        await am.push({ alertname: "SlowQueries", target: "main" }, { summary: "control alert" });
        await am.push(lag, { summary: "replica db7 is 40 s behind" });
        parent = await waitFor(() => parents("HighReplicationLag")[0], {
          what: "the lag alert's thread",
          timeoutMs: 20_000,
        });
        fp = (await fpOf("HighReplicationLag"))!;
        await click(tb, parent, silenceActionId(1), USERS.bob, "Silence 1 h");
        await waitFor(
          async () => (await am.alerts()).find((a) => a.fingerprint === fp)?.status.state === "suppressed",
          {
            what: "Alertmanager to suppress the alert",
          },
        );
      },
    );

    await t.step(
      "it resolves in Alertmanager: no notification comes (it is silenced), so the webhook alone leaves it FIRING",
      async () => {
        await am.resolve(lag, { summary: "replica db7 is 40 s behind" });
        await waitFor(async () => !(await am.alerts()).some((a) => a.fingerprint === fp), {
          what: "Alertmanager to stop listing the resolved alert",
        });
        // The control group is notified every 2 s: two more deliveries of it show time passing.
        const control = await deliveriesOf("SlowQueries");
        await waitFor(async () => (await deliveriesOf("SlowQueries")) >= control + 2, {
          what: "two more notifications of the control alert",
          timeoutMs: 20_000,
        });
        assert.equal((await tb.bot.alerts.thread(fp))?.status, "firing", "Alertmanager sent no resolve");
      },
    );

    await t.step(
      "the sync with Alertmanager's API resolves the thread and the digest's firing list",
      async () => {
        const r = await tb.bot.alerts.syncWithAlertmanager({ minUptimeMs: 0 });
        assert.deepEqual(r.resolved, [fp]);
        assert.deepEqual(r.skipped, []);
        await waitFor(() => /^RESOLVED/.test(parent.text ?? ""), { what: "the parent edited to RESOLVED" });
        await waitFor(() => replies(parent).find((m) => /^Resolved at/.test(m.text ?? "")), {
          what: "the resolve in the thread",
        });
        const firing = await tb.bot.alerts.firing("alertmanager");
        assert.ok(!firing.some((a) => a.fingerprint === fp), "not in the digest's firing list");
        assert.ok(firing.some((a) => a.labels.alertname === "SlowQueries"), "the control alert still fires");
        const audit = (await tb.bot.deps.audit.rows()).filter((x) => x.action === "alerts.resolved_from_api");
        assert.deepEqual(audit.map((x) => x.details.fingerprints), [[fp]]);
        // Asked again, nothing more changes.
        assert.deepEqual((await tb.bot.alerts.syncWithAlertmanager({ minUptimeMs: 0 })).resolved, []);
      },
    );

    await t.step("a just-started Alertmanager's absences are not trusted", async () => {
      const other = { alertname: "TooManyConnections", target: "main" };
      await am.push(other, { summary: "95 of 100" });
      await waitFor(() => parents("TooManyConnections")[0], { what: "its thread", timeoutMs: 20_000 });
      await am.resolve(other);
      const r = await tb.bot.alerts.syncWithAlertmanager({ minUptimeMs: 3600_000 });
      assert.equal(r.resolved.length, 0);
      assert.match(r.skipped.join("; "), /up \d+ s only, its alerts may be incomplete/);
    });

    await t.step(
      "an alert that resolved fires again: a fresh thread opens at the bottom of the channel; the old one says so",
      async () => {
        const sus = { alertname: "SuspiciousQueries", target: "main", instance: "db7:5432" };
        await am.push(sus, { summary: "odd statements from 10.9.8.7" });
        const first = await waitFor(() => parents("SuspiciousQueries")[0], {
          what: "its first thread",
          timeoutMs: 20_000,
        });
        await click(tb, first, THREAD_ACTIONS.take, USERS.carol);
        await waitFor(() => /Owner: <@U0CAROL>/.test(JSON.stringify(first.blocks)), { what: "the owner" });
        await am.resolve(sus, { summary: "odd statements from 10.9.8.7" });
        await waitFor(() => replies(first).find((m) => /^Resolved at/.test(m.text ?? "")), {
          what: "the webhook's resolve in the thread",
          timeoutMs: 20_000,
        });
        const oldReplies = replies(first).length;
        await am.push(sus, { summary: "odd statements from 10.9.8.7 again" });
        const fresh = await waitFor(() => parents("SuspiciousQueries").find((m) => m.ts !== first.ts), {
          what: "a second parent for the re-fired alert",
          timeoutMs: 20_000,
        });
        assert.match(fresh.text ?? "", /^FIRING: SuspiciousQueries/);
        await tb.bot.alerts.idle();
        const topLevel = tb.slack.messages.filter((m) => m.channel === OPS_CHANNEL && !m.thread_ts);
        assert.equal(topLevel.at(-1), fresh, "at the bottom of the channel");
        const note = replies(first).slice(oldReplies);
        assert.equal(note.length, 1, note.map((m) => m.text).join(" | "));
        assert.match(note[0].text ?? "", /^Fired again since .*: followed in a new thread at the bottom/);
        assert.match(first.text ?? "", /^RESOLVED/, "the old parent still shows the earlier episode");
        const state = await tb.bot.alerts.thread((await fpOf("SuspiciousQueries"))!);
        assert.equal(state?.threadTs, fresh.ts, "the buttons of the new parent act on the new thread");
        assert.doesNotMatch(
          JSON.stringify(fresh.blocks),
          /Owner:/,
          "the earlier owner belonged to the earlier episode",
        );
      },
    );
  } finally {
    await am.stop();
    await tb.stop();
  }
});

Deno.test("a notification whose alert name changed for a known fingerprint never writes into the old thread", async () => {
  await using cluster = await startCluster({ name: "alert-rename" });
  const config = testConfig(cluster, (doc) => {
    doc.alerts = { lag_check: { enabled: false }, slack_per_channel_per_second: 50 };
  });
  const tb = await startTestBot(cluster, { config });
  try {
    const base = {
      fingerprint: "f00dcafe00000001",
      annotations: { summary: "x" },
      startsAt: new Date().toISOString(),
      endsAt: null,
      groupKey: "g",
    };
    const labels = (alertname: string) => ({ alertname, target: "main", severity: "warning" });
    await tb.bot.alerts.ingest(
      [{ ...base, status: "firing", labels: labels("HighReplicationLag") }],
      "lag_check",
    );
    await tb.bot.alerts.idle();
    const first = tb.slack.messages.find((m) => !m.thread_ts && /HighReplicationLag/.test(m.text ?? ""))!;
    await tb.bot.alerts.ingest([{
      ...base,
      status: "resolved",
      endsAt: new Date().toISOString(),
      labels: labels("HighReplicationLag"),
    }], "lag_check");
    await tb.bot.alerts.idle();
    const before = tb.slack.messages.filter((m) => m.thread_ts === first.ts).length;
    await tb.bot.alerts.ingest(
      [{ ...base, status: "firing", labels: labels("ReplicationFailure") }],
      "lag_check",
    );
    await tb.bot.alerts.idle();
    const second = tb.slack.messages.find((m) => !m.thread_ts && /ReplicationFailure/.test(m.text ?? ""));
    assert.ok(second, "a parent of its own");
    assert.notEqual(second!.ts, first.ts);
    assert.equal(
      tb.slack.messages.filter((m) => m.thread_ts === first.ts).length,
      before,
      "old thread untouched",
    );
    assert.match(first.text ?? "", /^RESOLVED: HighReplicationLag/);
    assert.equal((await tb.bot.alerts.thread(base.fingerprint))?.threadTs, second!.ts);
  } finally {
    await tb.stop();
  }
});
