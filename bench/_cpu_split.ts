/**
 * CPU per `/bisman help` split by process: the bot (started as the image starts it), its state database's
 * PostgreSQL (every backend and the postmaster), and this load generator. Sends REQUESTS signed commands at
 * concurrency 50, waits until the audit log holds one row per command, and prints CPU ms per request of
 * each. CPU time, unlike requests per second, barely moves with what else the machine does, so this is the
 * quick A/B figure while changing the ack path; `deno task bench load` is the comparison with Bolt.
 *
 *   deno run -A bench/_cpu_split.ts            (REQUESTS=40000, REPEAT=3)
 */

import { startCluster } from "../standins/cluster.ts";
import { TEAM, testConfigDoc, USERS } from "../tests/support/bot.ts";
import { spawnBot, writeConfigFile } from "../tests/support/bot_process.ts";
import { SlackStandIn } from "../standins/slack.ts";
import { loadRaw } from "./_http_load.ts";
import { botEnv, signedHelpRequests } from "./_bot.ts";
import { waitFor } from "../standins/wait.ts";
import { imageCmdFlags, imageMallocEnv } from "./_image.ts";

const REQUESTS = Number(Deno.env.get("REQUESTS") ?? "40000");
const REPEAT = Number(Deno.env.get("REPEAT") ?? "3");

/** utime + stime (and, with `children`, cutime + cstime of reaped children) in ms. */
function cpuOf(pid: number, children = false): number {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    const own = Number(f[11]) + Number(f[12]);
    return (children ? own + Number(f[13]) + Number(f[14]) : own) * 10;
  } catch {
    return 0;
  }
}

/** The postmaster's CPU with its reaped children's, plus each live child's. */
function postgresCpu(postmaster: number): number {
  let total = cpuOf(postmaster, true);
  for (const entry of Deno.readDirSync("/proc")) {
    const pid = Number(entry.name);
    if (!Number.isInteger(pid)) continue;
    try {
      const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      if (ppid === postmaster) total += cpuOf(pid);
    } catch {
      // gone
    }
  }
  return total;
}

if (import.meta.main) {
  await using cluster = await startCluster({ name: "bench-cpu-split" });
  const slack = await SlackStandIn.start({ teamId: TEAM, users: { [USERS.alice]: { name: "alice" } } });
  const stateDb = await cluster.createDatabase("state");
  const state = cluster.primary.sql(stateDb);
  const configFile = await writeConfigFile(testConfigDoc(cluster));
  const bot = await spawnBot({
    configFile,
    denoFlags: await imageCmdFlags(),
    env: { ...botEnv(slack, cluster.primary.url({ database: stateDb })), ...(await imageMallocEnv()) },
  });
  const postmaster = Number(
    (await Deno.readTextFile(`${cluster.primary.dataDir}/postmaster.pid`)).split("\n")[0],
  );
  try {
    const make = (n: number) => signedHelpRequests(slack, bot.eventsUrl, n);
    const audited = async () =>
      Number(
        (await state`select count(*)::int as n from bisman_ops.audit_log where action = 'command.received'`)[
          0
        ].n,
      );
    await loadRaw(bot.eventsUrl, make(2000), 50);
    await waitFor(async () => (await audited()) >= 2000, { timeoutMs: 60_000 });
    const requests = make(REQUESTS);
    for (let r = 0; r < REPEAT; r++) {
      const before = { bot: cpuOf(bot.pid), pg: postgresCpu(postmaster), me: cpuOf(Deno.pid) };
      const startRows = await audited();
      const res = await loadRaw(bot.eventsUrl, requests, 50);
      await waitFor(async () => (await audited()) >= startRows + REQUESTS, { timeoutMs: 120_000 });
      const per = (ms: number) => (ms / REQUESTS).toFixed(3);
      const botMs = cpuOf(bot.pid) - before.bot, pgMs = postgresCpu(postmaster) - before.pg;
      console.log(
        `${REQUESTS} requests in ${res.seconds.toFixed(2)} s (${
          (REQUESTS / res.seconds).toFixed(0)
        } req/s): ` +
          `CPU ms/request bot ${per(botMs)}, postgres ${per(pgMs)}, bot+postgres ${per(botMs + pgMs)}, ` +
          `load generator ${per(cpuOf(Deno.pid) - before.me)}`,
      );
    }
  } finally {
    await state.end();
    await bot.stop(30_000);
    await slack.stop();
    await Deno.remove(configFile).catch(() => undefined);
  }
}
