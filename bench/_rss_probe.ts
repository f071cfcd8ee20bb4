/**
 * The bot's resident memory after start, as main.ts with a test config (throwaway cluster, Slack stand-in),
 * with extra deno flags to compare: prints VmRSS every 2.5 s for 10 s, RssAnon/RssFile and V8's heap.
 *
 *   FLAGS="--v8-flags=--max-semi-space-size=1" deno run -A bench/_rss_probe.ts      (ARENA=n: MALLOC_ARENA_MAX;
 *   other MALLOC_* variables are passed to the bot as given)
 */
import { startCluster } from "../standins/cluster.ts";
import { TEAM, testConfigDoc, USERS } from "../tests/support/bot.ts";
import { spawnBot, writeConfigFile } from "../tests/support/bot_process.ts";
import { SlackStandIn } from "../standins/slack.ts";
import { IntegrityKeys } from "../core/keys.ts";
await using cluster = await startCluster({ name: "rss-probe" });
const slack = await SlackStandIn.start({ teamId: TEAM, users: { [USERS.alice]: { name: "alice" } } });
const stateDb = await cluster.createDatabase("state");
const configFile = await writeConfigFile(testConfigDoc(cluster));
const flags = (Deno.env.get("FLAGS") ?? "").split(" ").filter(Boolean);
const bot = await spawnBot({
  configFile,
  denoFlags: flags,
  env: {
    SLACK_SIGNING_SECRET: slack.signingSecret,
    BISMAN_SIGNING_KEY: IntegrityKeys.generate(),
    SLACK_BOT_TOKEN: slack.botToken,
    SLACK_API_URL: slack.apiUrl,
    DATABASE_URL: cluster.primary.url({ database: stateDb }),
    LOG_LEVEL: "info",
    ...(Deno.env.get("ARENA") ? { MALLOC_ARENA_MAX: Deno.env.get("ARENA")! } : {}),
    // Any other glibc malloc tunable given to the probe is passed on (MALLOC_TRIM_THRESHOLD_, …).
    ...Object.fromEntries(Object.entries(Deno.env.toObject()).filter(([k]) => k.startsWith("MALLOC_"))),
  },
});
const rss = async () =>
  Number(/VmRSS:\s+(\d+)/.exec(await Deno.readTextFile(`/proc/${bot.pid}/status`))![1]) / 1024;
for (let i = 0; i < 4; i++) {
  await new Promise((r) => setTimeout(r, 2500));
  console.log(`t+${(i + 1) * 2.5}s RSS ${(await rss()).toFixed(1)} MiB`);
}
console.log(
  (await Deno.readTextFile(`/proc/${bot.pid}/status`)).split("\n").filter((l) => /^(Rss|VmRSS)/.test(l)).join(
    "\n",
  ),
);
const m = await (await fetch(`${bot.url}/metrics`)).text();
console.log(
  m.split("\n").filter((l) => /^(nodejs_heap_size|nodejs_external|process_resident)/.test(l)).join("\n"),
);
await bot.stop(20000);
await slack.stop();
