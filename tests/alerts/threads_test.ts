import assert from "node:assert/strict";
import { startCluster } from "../../standins/cluster.ts";
import { APPROVER_GROUP, OPS_CHANNEL, startTestBot, TEAM, testConfig, USERS } from "../support/bot.ts";
import { waitFor } from "../../standins/wait.ts";
import { ackSummary, resolveStorm, sendStorm, type StormPlan } from "../support/alert_storm.ts";
import { SlackStandIn } from "../../standins/slack.ts";
import { contentHash } from "../../alerts/threads.ts";

const TOKEN = "storm-test-token-77b2";

Deno.test("contentHash() ignores endsAt, and startsAt once resolved", async () => {
  const a = {
    fingerprint: "ab",
    status: "firing" as const,
    labels: { alertname: "X" },
    annotations: {},
    startsAt: "2026-01-01T00:00:00Z",
    endsAt: null,
    groupKey: "g",
  };
  assert.equal(await contentHash(a), await contentHash({ ...a, endsAt: "2026-01-02T00:00:00Z" }));
  assert.notEqual(await contentHash(a), await contentHash({ ...a, startsAt: "2026-01-03T00:00:00Z" }));
  const r = { ...a, status: "resolved" as const };
  assert.equal(await contentHash(r), await contentHash({ ...r, startsAt: "2026-01-05T00:00:00Z" }));
  assert.notEqual(await contentHash(a), await contentHash({ ...a, annotations: { summary: "changed" } }));
});

Deno.test("an alert storm of 500 alerts in 30 s under a per-channel rate limit: all posted, no thread twice, order kept, every 429 retried", async (t) => {
  await using cluster = await startCluster({ name: "alert-storm" });
  const slack = await SlackStandIn.start({
    teamId: TEAM,
    users: { [USERS.alice]: { name: "alice" }, [USERS.bob]: { name: "bob" } },
    usergroups: { [APPROVER_GROUP]: [] },
    rateLimit: { perChannelPerSecond: 20 },
  });
  const config = testConfig(cluster, (doc) => {
    // The bot paces above the stand-in's limit on purpose, so 429s happen and must be honoured.
    doc.alerts = { lag_check: { enabled: false }, slack_per_channel_per_second: 40, storm_group_at: 5 };
  });
  const env = { ALERTS_TOKEN: TOKEN };
  // No scheduled jobs: the test counts every message at the top of the channel, and backup_status posts
  // there on the hour (with no backup source configured) if the storm runs across it.
  const start = { jobs: [] };
  const a = await startTestBot(cluster, { config, slack, env, start });
  const stateDb = new URL(a.bot.deps.env.databaseUrl).pathname.slice(1);
  // A second replica on the same state database: both receive deliveries, only one may post per channel.
  const b = await startTestBot(cluster, { config, slack, env, stateDb, start });
  const urls = [a.bot.url, b.bot.url];
  const state = cluster.primary.sql(stateDb);
  const pending = async () =>
    (await state`select count(*)::int as n from bisman_ops.alert_outbox where done_at is null`)[0].n;
  /** The outbox is empty and neither replica's poster is still finishing (a storm parent's last edit). */
  const drained = async () => {
    if (await pending()) return false;
    await Promise.all([a.bot.alerts.idle(), b.bot.alerts.idle()]);
    return (await pending()) === 0;
  };
  const chatCalls = () =>
    slack.calls.filter((c) => c.method === "chat.postMessage" || c.method === "chat.update");
  const top = () => slack.messages.filter((m) => m.channel === OPS_CHANNEL && !m.thread_ts);
  let plan!: StormPlan;
  try {
    await t.step(
      "500 alerts arrive in 30 s through two replicas; every delivery is acknowledged at once",
      async () => {
        const storm = await sendStorm({ botUrls: urls, token: TOKEN, total: 500, seconds: 30 });
        plan = storm.plan;
        assert.ok(storm.sentSeconds <= 31, `sent in ${storm.sentSeconds.toFixed(1)} s`);
        await waitFor(drained, { timeoutMs: 60_000, intervalMs: 100, what: "the outbox to drain" });
        const drainMs = performance.now() - storm.lastAt;
        const calls = chatCalls();
        console.log(
          `storm: 500 alerts in ${
            storm.sentSeconds.toFixed(1)
          } s over ${storm.ackMs.length} deliveries; ack ${
            ackSummary(storm.ackMs)
          }; ${calls.length} Slack calls (${calls.filter((c) => c.status === 429).length} answered 429); ` +
            `backlog drained ${(drainMs / 1000).toFixed(1)} s after the last delivery`,
        );
        assert.ok(Math.max(...storm.ackMs) < 1000, "every delivery acknowledged within a second");
      },
    );

    await t.step(
      "every alert is in Slack, one parent per storm group, one per single alert, no thread twice",
      async () => {
        const stormParents = top().filter((m) => /^Alert storm/.test(m.text ?? ""));
        assert.equal(stormParents.length, 4, "one parent per storm group");
        assert.equal(top().filter((m) => /^FIRING: SingleAlert/.test(m.text ?? "")).length, 20);
        assert.equal(top().length, 24, "nothing else at the top of the channel");
        for (const p of stormParents) assert.match(p.text ?? "", /Alert storm: 120 of 120 \w+ alerts firing/);
        const rows = await state<{ fingerprint: string; thread_ts: string | null }[]>`
        select fingerprint, thread_ts from bisman_ops.alert_state`;
        assert.equal(rows.length, 500);
        assert.ok(rows.every((r) => r.thread_ts), "every alert has its thread");
        for (const g of plan.groups) {
          const mine = new Set(g.alerts.map((x) => x.fp));
          const threads = new Set(rows.filter((r) => mine.has(r.fingerprint)).map((r) => r.thread_ts));
          assert.equal(threads.size, 1, `${g.name}: one thread for its 120 alerts`);
        }
        const everything = slack.messages.map((m) => `${m.text} ${JSON.stringify(m.blocks ?? [])}`).join(
          "\n",
        );
        assert.deepEqual(
          rows.filter((r) => !everything.includes(r.fingerprint)),
          [],
          "every fingerprint is shown",
        );
      },
    );

    await t.step("within each storm thread the alerts appear in the order they arrived", () => {
      for (const g of plan.groups) {
        const parent = top().find((m) => (m.text ?? "").includes(` ${g.name} alerts`))!;
        const replies = slack.messages.filter((m) => m.thread_ts === parent.ts);
        const order = replies.flatMap((m) =>
          [...(m.text ?? "").matchAll(/firing: ([0-9a-f]+)/g)].map((x) => x[1])
        );
        assert.deepEqual(order, g.alerts.map((x) => x.fp), `${g.name}: thread order`);
        for (let i = 1; i < replies.length; i++) assert.ok(replies[i].ts > replies[i - 1].ts);
      }
    });

    await t.step(
      "resolving all 500 at once edits every parent; every 429 was retried, nothing failed",
      async () => {
        const callsBefore = chatCalls().length;
        const t0 = performance.now();
        await resolveStorm(plan, urls, TOKEN);
        await waitFor(drained, { timeoutMs: 60_000, intervalMs: 100, what: "the resolutions to drain" });
        const ms = performance.now() - t0;
        const calls = chatCalls();
        const limited = calls.filter((c) => c.status === 429).length;
        console.log(
          `resolve: 500 resolutions in ${calls.length - callsBefore} Slack calls, drained in ${
            (ms / 1000).toFixed(1)
          } s; ` +
            `whole test: ${calls.length} Slack calls, ${limited} answered 429 and retried`,
        );
        assert.equal(top().filter((m) => /^Alert storm over: all 120/.test(m.text ?? "")).length, 4);
        assert.equal(top().filter((m) => /^RESOLVED: SingleAlert/.test(m.text ?? "")).length, 20);
        assert.equal(top().length, 24, "resolving opened no new thread");
        assert.ok(limited > 0, "the stand-in's rate limit was hit (the test exercises Retry-After)");
        assert.deepEqual(calls.filter((c) => c.status !== 200 && c.status !== 429), [], "no other failure");
        const [bad] =
          await state`select count(*)::int as n from bisman_ops.alert_outbox where last_error is not null`;
        assert.equal(bad.n, 0);
        const retried = a.bot.alerts.calls.rateLimited + b.bot.alerts.calls.rateLimited;
        assert.equal(retried, limited, "every 429 was seen by a poster and retried");
        const [open] =
          await state`select count(*)::int as n from bisman_ops.alert_storms where closed_at is null`;
        assert.equal(open.n, 0, "the storms closed once everything resolved");
      },
    );
  } finally {
    await b.stop();
    await a.stop();
    await slack.stop();
  }
});
