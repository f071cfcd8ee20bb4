/**
 * Ack latency of `/bisman help`: signed slash commands sent to the in-process bot's `/slack/events`,
 * timed from send to the HTTP response (Slack's 3-second clock). Prints p50/p99.
 *
 *   deno task bench ack_latency            (200 requests, concurrency 1, then 2,000 at concurrency 50)
 */

import { startCluster } from "../standins/cluster.ts";
import { startTestBot } from "../tests/support/bot.ts";
import { latencySummary, pool } from "./_stats.ts";

export async function run(): Promise<void> {
  await using cluster = await startCluster({ name: "bench-ack" });
  const tb = await startTestBot(cluster);
  try {
    for (let i = 0; i < 20; i++) await tb.command("help"); // warm-up: JIT and connection pools
    const sequential = await pool(200, 1, async () => (await tb.command("help")).ms);
    console.log(`ack latency, /bisman help, 200 requests one at a time:   ${latencySummary(sequential)}`);
    const concurrent = await pool(2000, 50, async () => {
      const r = await tb.command("help");
      if (r.status !== 200) throw new Error(`status ${r.status}`);
      return r.ms;
    });
    console.log(`ack latency, /bisman help, 2,000 requests at concurrency 50: ${latencySummary(concurrent)}`);
  } finally {
    await tb.stop();
  }
}
