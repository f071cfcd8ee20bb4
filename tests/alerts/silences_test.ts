import assert from "node:assert/strict";
import { startCluster } from "../../standins/cluster.ts";
import { OPS_CHANNEL, startTestBot, type TestBot, testConfig, USERS } from "../support/bot.ts";
import { startAlertmanager } from "../../standins/alertmanager.ts";
import { waitFor } from "../../standins/wait.ts";
import { ephemeralTo } from "../support/gate.ts";
import { silenceActionId, THREAD_ACTIONS } from "../../views/actions.ts";
import { alertmanagerBase, fromConfiguredAlertmanager, matchersOf } from "../../alerts/silences.ts";
import { NotConfigured } from "../../core/errors.ts";
import { freePort } from "../../standins/ports.ts";
import { postDelivery } from "../support/alert_storm.ts";
import { threadButtonsBlock } from "../../views/alerts.ts";
import type { Block } from "../../views/reply.ts";
import type { ActionsBlock, Button } from "@slack/types";
import type { StoredMessage } from "../../standins/slack.ts";

const TOKEN = "silences-test-token-77c1";

Deno.test("matchersOf() matches exactly the alert's label set; alertmanagerBase() is only ever the configured Alertmanager", () => {
  assert.deepEqual(matchersOf({ instance: "db1:5432", alertname: "X" }), [
    { name: "alertname", value: "X", isRegex: false, isEqual: true },
    { name: "instance", value: "db1:5432", isRegex: false, isEqual: true },
  ]);
  const config = testConfigless();
  const withAm = { ...config, alerts: { ...config.alerts, alertmanager_url: "https://AM.example:9093/" } };
  // The alert's own externalURL is never a destination on its own…
  assert.throws(
    () => alertmanagerBase(config, "http://am.local:9093/"),
    (err) =>
      err instanceof NotConfigured && /no Alertmanager is configured/.test(err.userMessage) &&
      /does not send silences there/.test(err.userMessage),
  );
  assert.throws(() => alertmanagerBase(config, ""), /set alerts\.alertmanager_url/);
  assert.throws(() => alertmanagerBase(config, "javascript:alert(1)"), /set alerts\.alertmanager_url/);
  // …the configured one is, whether the externalURL names it, names another server or is absent.
  for (const ext of ["https://am.example:9093", "http://elsewhere.example", "javascript:alert(1)", null]) {
    assert.equal(alertmanagerBase(withAm, ext), "https://am.example:9093", String(ext));
  }
  assert.equal(fromConfiguredAlertmanager(withAm, "https://am.example:9093/"), true);
  assert.equal(fromConfiguredAlertmanager(withAm, "https://am.example:9093.evil.example/"), false);
  assert.equal(fromConfiguredAlertmanager(withAm, "https://user@am.example:9093/"), false);
  assert.equal(fromConfiguredAlertmanager(config, "https://am.example:9093/"), false);
});

Deno.test("threadButtonsBlock(): I'm on it always; silences only for Alertmanager's alerts; Expire while silenced", () => {
  const labels = (b: Block) => (((b as ActionsBlock).elements as Button[]).map((e) => e.text.text)).join("|");
  assert.equal(labels(threadButtonsBlock("ab12", { threadButtons: { silenceable: false } })), "I'm on it");
  assert.equal(
    labels(threadButtonsBlock("ab12", { threadButtons: { silenceable: true } })),
    "I'm on it|Silence 1 h|Silence 4 h|Silence 24 h",
  );
  const until = new Date(Date.now() + 3600_000).toISOString();
  assert.equal(
    labels(threadButtonsBlock("ab12", {
      threadButtons: { silenceable: true },
      owner: { id: "U0BOB" },
      silence: { id: "s1", until },
    })),
    "I'm on it (take over)|Expire silence",
  );
});

/** A parsed config without a cluster (alertmanagerBase reads only alerts.alertmanager_url). */
function testConfigless() {
  return testConfig({ primary: { port: 5432 } } as never);
}

function button(m: StoredMessage, action: string, text?: string): string | undefined {
  for (const b of (m.blocks ?? []) as any[]) {
    for (const e of b.elements ?? []) {
      if (e.action_id === action && (!text || e.text.text === text)) return e.value;
    }
  }
  return undefined;
}

async function click(
  tb: TestBot,
  m: StoredMessage,
  action: string,
  user: string,
  text?: string,
): Promise<void> {
  const value = button(m, action, text);
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

Deno.test("alert threads with a real Alertmanager: I'm on it, Silence 1 h (amtool lists it, the next notification is suppressed), Expire silence, runbook links", async (t) => {
  await using cluster = await startCluster({ name: "silences" });
  // The bot's config names Alertmanager's URL, so its port is chosen before either starts.
  const amPort = await freePort();
  const config = testConfig(cluster, (doc) => {
    doc.alerts = {
      alertmanager_url: `http://127.0.0.1:${amPort}/`,
      lag_check: { enabled: false },
      slack_per_channel_per_second: 50,
      runbook_urls: { default: "https://wiki.example/runbooks/db" },
    };
  });
  const tb = await startTestBot(cluster, { config, env: { ALERTS_TOKEN: TOKEN } });
  const am = await startAlertmanager({
    webhookUrl: `${tb.bot.url}/alerts`,
    token: TOKEN,
    repeatInterval: "2s",
    port: amPort,
  });
  // A server an alert may name as its externalURL: it must never hear from the bot.
  const trapHits: string[] = [];
  const trap = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, (req) => {
    trapHits.push(`${req.method} ${new URL(req.url).pathname}`);
    return Response.json({ silenceID: "trap" });
  });
  const parent = (name: string) =>
    tb.slack.messages.find((m) => m.channel === OPS_CHANNEL && !m.thread_ts && m.text?.includes(name));
  const thread = (m: StoredMessage) => tb.slack.messages.filter((x) => x.thread_ts === m.ts);
  const lag = { alertname: "HighReplicationLag", instance: "db9:5432", target: "main" };
  const amAlert = async (name: string) => (await am.alerts()).find((a) => a.labels.alertname === name);
  const deliveriesOf = async (name: string) =>
    (await tb.bot.deps.audit.rows()).filter((r) =>
      r.action === "alerts.received" && (r.details.alertnames as string[]).includes(name)
    ).length;
  try {
    let lagParent!: StoredMessage;
    await t.step("the parent offers I'm on it and silences, and links the alert's own runbook", async () => {
      await am.push(lag, { summary: "replica db9 is 40 s behind", runbook_url: "https://wiki.example/lag" });
      lagParent = await waitFor(() => parent("HighReplicationLag"), {
        what: "the lag alert's thread",
        timeoutMs: 20_000,
      });
      const blocks = JSON.stringify(lagParent.blocks);
      assert.match(blocks, /<https:\/\/wiki\.example\/lag\|Runbook>/);
      assert.ok(button(lagParent, THREAD_ACTIONS.take), "I'm on it");
      assert.ok(button(lagParent, silenceActionId(1), "Silence 1 h"));
      assert.ok(button(lagParent, silenceActionId(24), "Silence 24 h"));
    });

    await t.step("an alert without a runbook_url annotation links the configured one", async () => {
      await am.push({ alertname: "SlowQueries", target: "main" }, { summary: "mean 2 s" });
      const slow = await waitFor(() => parent("SlowQueries"), {
        what: "the slow-queries thread",
        timeoutMs: 20_000,
      });
      assert.match(JSON.stringify(slow.blocks), /<https:\/\/wiki\.example\/runbooks\/db\|Runbook>/);
    });

    await t.step(
      "I'm on it records the owner, shows it on the parent, says so in the thread, audited",
      async () => {
        await click(tb, lagParent, THREAD_ACTIONS.take, USERS.carol);
        await waitFor(() => thread(lagParent).find((m) => /<@U0CAROL> is on it/.test(m.text ?? "")), {
          what: "the thread note",
        });
        await waitFor(() => /Owner: <@U0CAROL>/.test(JSON.stringify(lagParent.blocks)), {
          what: "the owner on the parent",
        });
        const rows = (await tb.bot.deps.audit.rows()).filter((r) => r.action === "alert.taken");
        assert.equal(rows.length, 1);
        assert.equal(rows[0].actor, USERS.carol);
      },
    );

    await t.step("Silence is for operators: anyone else is refused and no silence exists", async () => {
      // Control for the suppression below: unsilenced, the alert is notified again every repeat_interval.
      await waitFor(async () => (await deliveriesOf("HighReplicationLag")) >= 2, {
        what: "the lag alert notified twice",
        timeoutMs: 20_000,
      });
      const before = tb.slack.ephemerals.length;
      await click(tb, lagParent, silenceActionId(1), USERS.carol, "Silence 1 h");
      await ephemeralTo(tb, USERS.carol, /Silencing alerts is for operators/, before);
      assert.equal((await am.amtool("silence", "query", "-o", "json")).trim(), "[]");
    });

    let silenceId = "";
    await t.step(
      "Silence 1 h creates a real silence that amtool lists, with its author and the thread link",
      async () => {
        await click(tb, lagParent, silenceActionId(1), USERS.bob, "Silence 1 h");
        const note = await waitFor(
          () =>
            thread(lagParent).find((m) => /silenced this alert in Alertmanager for 1 h/.test(m.text ?? "")),
          { what: "the silence in the thread" },
        );
        silenceId = /silence `([^`]+)`/.exec(note.text!)![1];
        const silences = JSON.parse(await am.amtool("silence", "query", "-o", "json")) as {
          id: string;
          createdBy: string;
          comment: string;
          matchers: { name: string; value: string }[];
          endsAt: string;
          startsAt: string;
        }[];
        assert.equal(silences.length, 1);
        const s = silences[0];
        assert.equal(s.id, silenceId);
        assert.equal(s.createdBy, "bob (U0BOB) via bisman-ops");
        assert.match(
          s.comment,
          /^Silenced from Slack for 1 h: https:\/\/bisman-standin\.slack\.com\/archives\/C0OPS\/p\d+$/,
        );
        assert.deepEqual(
          s.matchers.map((m) => `${m.name}=${m.value}`).sort(),
          ["alertname=HighReplicationLag", "instance=db9:5432", "target=main"],
        );
        const hours = (Date.parse(s.endsAt) - Date.parse(s.startsAt)) / 3600_000;
        assert.ok(Math.abs(hours - 1) < 0.01, `${hours} h`);
        await waitFor(() => /Silenced until .* by <@U0BOB>/.test(JSON.stringify(lagParent.blocks)), {
          what: "the silence on the parent",
        });
        assert.ok(button(lagParent, THREAD_ACTIONS.unsilence), "Expire silence replaces the silence buttons");
        const audit = (await tb.bot.deps.audit.rows()).filter((r) => r.action === "alert.silenced");
        assert.equal(audit.length, 1);
        assert.equal(audit[0].details.silence_id, silenceId);
      },
    );

    await t.step(
      "the silence suppresses the alert's next notifications; a control alert's keep coming",
      async () => {
        await waitFor(async () => (await amAlert("HighReplicationLag"))?.status.state === "suppressed", {
          what: "Alertmanager to mark the alert suppressed",
        });
        const silencedBy =
          ((await amAlert("HighReplicationLag")) as unknown as { status: { silencedBy: string[] } })
            .status.silencedBy;
        assert.deepEqual(silencedBy, [silenceId]);
        // Every group is notified again each repeat_interval (2 s here): the control group's repeats show time
        // passing, the silenced group's stop.
        const lagBefore = await deliveriesOf("HighReplicationLag");
        const slowBefore = await deliveriesOf("SlowQueries");
        await waitFor(async () => (await deliveriesOf("SlowQueries")) >= slowBefore + 2, {
          what: "two more notifications of the unsilenced alert",
          timeoutMs: 20_000,
        });
        assert.equal(
          await deliveriesOf("HighReplicationLag"),
          lagBefore,
          "no notification of the silenced alert",
        );
      },
    );

    await t.step("Expire silence removes it; the alert is notified again", async () => {
      await click(tb, lagParent, THREAD_ACTIONS.unsilence, USERS.bob);
      await waitFor(() => thread(lagParent).find((m) => /expired silence/.test(m.text ?? "")), {
        what: "the expiry in the thread",
      });
      assert.equal((await am.amtool("silence", "query", "-o", "json")).trim(), "[]", "no active silence");
      await waitFor(async () => (await amAlert("HighReplicationLag"))?.status.state === "active", {
        what: "the alert active again",
      });
      const lagBefore = await deliveriesOf("HighReplicationLag");
      await waitFor(async () => (await deliveriesOf("HighReplicationLag")) > lagBefore, {
        what: "a notification of the alert again",
        timeoutMs: 20_000,
      });
      await waitFor(() => button(lagParent, silenceActionId(4), "Silence 4 h"), {
        what: "silence buttons back",
      });
      assert.doesNotMatch(JSON.stringify(lagParent.blocks), /Silenced until/);
      const audit = (await tb.bot.deps.audit.rows()).filter((r) => r.action === "alert.silence_expired");
      assert.deepEqual(audit.map((r) => r.details.silence_id), [silenceId]);
    });

    await t.step(
      "an alert naming another server as its externalURL is silenced at the configured Alertmanager; that server hears nothing",
      async () => {
        const labels = { alertname: "ForeignURL", instance: "db7:5432", target: "main" };
        await postDelivery(tb.bot.url, TOKEN, {
          version: "4",
          groupKey: '{}:{alertname="ForeignURL"}',
          status: "firing",
          receiver: "bot",
          externalURL: `http://127.0.0.1:${trap.addr.port}/`,
          alerts: [{
            status: "firing",
            labels,
            annotations: { summary: "from a delivery that names another server" },
            startsAt: new Date().toISOString(),
            endsAt: "0001-01-01T00:00:00Z",
            fingerprint: "f0e1d2c3b4a59687",
          }],
        });
        const p = await waitFor(() => parent("ForeignURL"), {
          what: "the ForeignURL thread",
          timeoutMs: 20_000,
        });
        await click(tb, p, silenceActionId(4), USERS.bob, "Silence 4 h");
        await waitFor(
          () => thread(p).find((m) => /silenced this alert in Alertmanager for 4 h/.test(m.text ?? "")),
          {
            what: "the silence in the thread",
          },
        );
        const silences = JSON.parse(await am.amtool("silence", "query", "-o", "json")) as {
          matchers: { name: string; value: string }[];
        }[];
        assert.ok(
          silences.some((s) => s.matchers.some((m) => m.name === "alertname" && m.value === "ForeignURL")),
          "the configured Alertmanager holds the silence",
        );
        assert.deepEqual(trapHits, []);
        const audit = (await tb.bot.deps.audit.rows()).filter((r) =>
          r.action === "alert.silenced" && r.details.alertname === "ForeignURL"
        );
        assert.equal(audit.length, 1);
        assert.equal(audit[0].details.external_url_matched, false);
        assert.equal(audit[0].details.alertmanager, `http://127.0.0.1:${amPort}`);
      },
    );
  } finally {
    await trap.shutdown();
    await am.stop();
    await tb.stop();
  }
});
