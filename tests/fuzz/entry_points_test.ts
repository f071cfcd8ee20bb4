import assert from "node:assert/strict";
import { startCluster } from "../../standins/cluster.ts";
import { OPS_CHANNEL, TEAM, USERS } from "../support/bot.ts";
import { waitFor } from "../../standins/wait.ts";
import { alertCase, slackCase } from "./_cases.ts";
import { describe, fuzzHttp, fuzzSocket, requestsPastPending, snapshot, startFuzzBots } from "./_run.ts";

/** Fixed so the suite is reproducible; `FUZZ_SEED=<n>` tries other sequences (bench/fuzz.ts uses fresh ones). */
const SEED = Number(Deno.env.get("FUZZ_SEED") ?? 20_251_126);
const ALERTS_TOKEN = "fuzz-alerts-token-0123456789";

Deno.test("fuzzed Slack requests, Socket Mode envelopes and Alertmanager bodies each get a 4xx or a clean answer, the bot stays up, and nothing runs", async (t) => {
  await using cluster = await startCluster({ name: "fuzz" });
  const { tb, socketBot, ids } = await startFuzzBots(cluster, { ALERTS_TOKEN });
  const target = cluster.primary.sql();
  const before = await snapshot(tb, target);
  try {
    await t.step(`POST /slack/events: 300 cases (seed ${SEED})`, async () => {
      const report = await fuzzHttp(tb.bot.url, 300, SEED, (r) => slackCase(r, tb.slack.signingSecret, ids));
      console.log(describe("slack", report));
      assert.deepEqual(report.wrong, []);
      assert.equal(Object.keys(report.byKind).length, 7, "every kind of case was tried");
      // Every refusal is counted; only a bounded number per minute is written to the audit log, so a flood of
      // forged requests cannot flood the database.
      const metrics = await (await fetch(`${tb.bot.url}/metrics`)).text();
      const refused = [...metrics.matchAll(/^bisman_slack_rejected_total\{[^}]*\} (\d+)$/gm)]
        .reduce((n, m) => n + Number(m[1]), 0);
      assert.ok(refused > 60, `${refused} refusals`);
      const audited = await waitFor(async () => {
        const n = (await tb.bot.deps.audit.rows()).filter((r) => r.action === "slack.request_refused").length;
        return n >= 60 ? n : undefined;
      }, { what: "the refusals' audit rows" });
      assert.equal(audited, 60, "at most 60 refusals a minute are audited one by one");
    });

    await t.step(`POST /alerts: 150 cases (seed ${SEED + 1})`, async () => {
      const report = await fuzzHttp(tb.bot.url, 150, SEED + 1, (r) => alertCase(r, ALERTS_TOKEN));
      console.log(describe("alerts", report));
      assert.deepEqual(report.wrong, []);
      assert.ok((report.byKind["bad-token"]?.["401"] ?? 0) > 0);
    });

    await t.step(`Socket Mode: 150 envelopes (seed ${SEED + 2}), every one acknowledged`, async () => {
      await tb.slack.waitForSockets(1);
      const report = await fuzzSocket(tb.slack, ids, 150, SEED + 2);
      assert.deepEqual(report.failures, []);
      assert.equal(report.acked, 150);
    });

    await t.step(
      "hostile text (NUL, broken surrogates, non-string names) is audited as storable text and never breaks the chain",
      async () => {
        const hostile = "help \u0000 \ud800 end";
        const res = await tb.command(hostile);
        assert.equal(res.status, 200);
        await tb.slack.sendEnvelope("slash_commands", {
          command: "/bisman",
          text: "status \u0000",
          user_id: USERS.alice,
          user_name: [1, { a: 2 }],
          team_id: TEAM,
          channel_id: OPS_CHANNEL,
          response_url: ids.responseUrl(),
        }, true);
        await socketBot.bot.socket!.drain(10_000);
        const rows = await waitFor(async () => {
          const r = (await tb.bot.deps.audit.rows()).filter((x) =>
            x.details.text === "help \uFFFD \uFFFD end"
          );
          return r.length ? r : undefined;
        }, { what: "the hostile command's audit row" });
        assert.equal(rows[0].details.text, "help \uFFFD \uFFFD end");
        const socketRows = await waitFor(async () => {
          const r = (await socketBot.bot.deps.audit.rows()).filter((x) => x.details.text === "status \uFFFD");
          return r.length ? r : undefined;
        }, { what: "the socket command's audit row" });
        assert.equal(socketRows[0].actor_name, null);
        const body = JSON.stringify({
          version: "4",
          groupKey: "g",
          status: "firing",
          receiver: "r",
          alerts: [],
        })
          .replace('"r"', '"r\\u0000"');
        const alert = await fetch(`${tb.bot.url}/alerts`, {
          method: "POST",
          headers: { authorization: `Bearer ${ALERTS_TOKEN}`, "content-type": "application/json" },
          body,
        });
        assert.equal(alert.status, 400, await alert.text());
        for (const b of [tb, socketBot]) assert.ok((await b.bot.deps.audit.verify()).ok);
      },
    );

    await t.step("both bots are alive and still answer", async () => {
      assert.equal((await fetch(`${tb.bot.url}/healthz`)).status, 200);
      const help = await tb.command("help");
      assert.equal(help.status, 200);
      assert.match(help.body.text, /status/);
      const ack = await tb.slack.sendCommandSocket({ text: "help", user_id: USERS.alice, team_id: TEAM });
      assert.match(String(ack.payload.text), /status/);
    });

    await t.step(
      "nothing ran: no request past pending, freeze, roles and pg_hba as before, audit chain intact",
      async () => {
        await socketBot.bot.socket!.drain(10_000);
        assert.deepEqual(await requestsPastPending(tb), []);
        assert.deepEqual(await requestsPastPending(socketBot), []);
        assert.deepEqual(await snapshot(tb, target), before);
        for (const b of [tb, socketBot]) {
          const verdict = await b.bot.deps.audit.verify();
          assert.ok(verdict.ok, JSON.stringify(verdict));
        }
      },
    );

    await t.step(
      "every log line is one JSON object, deliveries carry a request id, and no secret is written",
      () => {
        const secrets = [tb.slack.signingSecret, tb.slack.botToken, tb.slack.appToken, ALERTS_TOKEN];
        let deliveries = 0;
        for (const line of [...tb.logs, ...socketBot.logs]) {
          const j = JSON.parse(line);
          assert.ok(j.time && j.level && typeof j.msg === "string", line.slice(0, 200));
          if (j.msg === "http request" || j.msg === "slack request") {
            deliveries++;
            assert.match(String(j.request_id), /^[A-Za-z0-9._:-]{1,64}$/, line.slice(0, 200));
          }
          for (const s of secrets) assert.ok(!line.includes(s), `a secret in the log: ${line.slice(0, 200)}`);
        }
        assert.ok(deliveries >= 450, `${deliveries} delivery lines`);
      },
    );
  } finally {
    await socketBot.stop();
    await tb.stop();
  }
});
