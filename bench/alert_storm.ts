/**
 * Alert storm at Slack's real pace: 500 Alertmanager alerts in 30 s (100 deliveries, as the storm test sends
 * them) to the in-process bot, with the Slack stand-in limiting chat.postMessage/chat.update to 1 per second
 * per channel (Slack's documented limit) and the bot pacing itself to the same. Prints how many Slack calls the
 * storm cost, how many were answered 429, how long the backlog took to drain after the last delivery, and the
 * same for resolving all 500 at once. Posting one message per alert would take 500 s at this pace.
 *
 *   deno task bench alert_storm
 *   BENCH_ALERTS=250 BENCH_SLACK_RATE=5 deno task bench alert_storm     (a smaller or faster run)
 */

import { startCluster } from "../standins/cluster.ts";
import { APPROVER_GROUP, startTestBot, TEAM, testConfig, USERS } from "../tests/support/bot.ts";
import { waitFor } from "../standins/wait.ts";
import { ackSummary, resolveStorm, sendStorm } from "../tests/support/alert_storm.ts";
import { SlackStandIn } from "../standins/slack.ts";

const TOKEN = "bench-alert-storm-token";

export async function run(): Promise<void> {
  const total = Number(Deno.env.get("BENCH_ALERTS") ?? 500);
  const rate = Number(Deno.env.get("BENCH_SLACK_RATE") ?? 1);
  await using cluster = await startCluster({ name: "bench-storm" });
  const slack = await SlackStandIn.start({
    teamId: TEAM,
    users: { [USERS.alice]: { name: "alice" } },
    usergroups: { [APPROVER_GROUP]: [] },
    rateLimit: { perChannelPerSecond: rate },
  });
  const config = testConfig(cluster, (doc) => {
    doc.alerts = { lag_check: { enabled: false }, slack_per_channel_per_second: rate, storm_group_at: 5 };
  });
  const tb = await startTestBot(cluster, { config, slack, env: { ALERTS_TOKEN: TOKEN } });
  const state = cluster.primary.sql(new URL(tb.bot.deps.env.databaseUrl).pathname.slice(1));
  const drained = async () => {
    const [r] = await state`select count(*)::int as n from bisman_ops.alert_outbox where done_at is null`;
    if (r.n) return false;
    await tb.bot.alerts.idle();
    return true;
  };
  const chat = () => slack.calls.filter((c) => c.method === "chat.postMessage" || c.method === "chat.update");
  const timeout = (total * 2 / rate + 120) * 1000;
  try {
    console.log(
      `alert storm: ${total} alerts in 30 s, Slack limit ${rate}/s per channel, bot paced at ${rate}/s`,
    );
    const storm = await sendStorm({ botUrls: [tb.bot.url], token: TOKEN, total, seconds: 30 });
    await waitFor(drained, { timeoutMs: timeout, intervalMs: 250, what: "the storm backlog to drain" });
    const drainS = (performance.now() - storm.lastAt) / 1000;
    const stormCalls = chat();
    const top = slack.messages.filter((m) => !m.thread_ts).length;
    console.log(
      `  firing: ${total} alerts sent in ${
        storm.sentSeconds.toFixed(1)
      } s (${storm.ackMs.length} deliveries, ack ${ackSummary(storm.ackMs)})`,
    );
    console.log(
      `  firing: ${stormCalls.length} Slack calls (${
        stormCalls.filter((c) => c.status === 429).length
      } answered 429), ${top} top-level messages, backlog drained ${
        drainS.toFixed(1)
      } s after the last delivery`,
    );
    const t0 = performance.now();
    await resolveStorm(storm.plan, [tb.bot.url], TOKEN);
    await waitFor(drained, { timeoutMs: timeout, intervalMs: 250, what: "the resolutions to drain" });
    const resolveCalls = chat().slice(stormCalls.length);
    console.log(
      `  resolve: ${total} resolutions in ${resolveCalls.length} Slack calls (${
        resolveCalls.filter((c) => c.status === 429).length
      } answered 429), drained in ${((performance.now() - t0) / 1000).toFixed(1)} s`,
    );
    console.log(
      `  one message per alert would have taken ${
        (total / rate).toFixed(0)
      } s to post at ${rate}/s, and as long again to resolve`,
    );
  } finally {
    await tb.stop();
    await slack.stop();
  }
}

if (import.meta.main) await run();
