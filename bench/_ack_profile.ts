/**
 * Where the bot's time goes on the ack path: starts the bot as in production (`deno run -A main.ts` with a
 * config, the Slack stand-in, a throwaway cluster for its state), sends signed `/bisman help` at
 * concurrency 50 while V8's sampling profiler runs (over `--inspect`, the Chrome DevTools protocol), and
 * prints self time by package and by function, and inclusive time of the functions that own the most.
 * Writes the raw profile (open it in Chrome DevTools) to bench/out/ack.cpuprofile.
 *
 * With RESTORE=1 a restore test runs in the bot the whole time (a new one is asked for every second, as in
 * `deno task bench load`'s busy rounds), and the longest stretches of uninterrupted work on the bot's main
 * thread (what holds an ack back) are printed with the frames they spent most samples in.
 *
 *   deno run -A bench/_ack_profile.ts            (REQUESTS=20000, RESTORE unset)
 */

import { startCluster } from "../standins/cluster.ts";
import { OPS_CHANNEL, TEAM, testConfigDoc, USERS } from "../tests/support/bot.ts";
import { spawnBot, writeConfigFile } from "../tests/support/bot_process.ts";
import { SlackStandIn } from "../standins/slack.ts";
import { freePort } from "../standins/ports.ts";
import { loadRaw } from "./_http_load.ts";
import { botEnv, signedHelpRequests } from "./_bot.ts";
import { applyTargetSql } from "../tests/support/bisman_schema.ts";
import { pgDump, withSampleRestoreTest } from "../tests/support/dumps.ts";

const REQUESTS = Number(Deno.env.get("REQUESTS") ?? "20000");

const RESTORE = Boolean(Deno.env.get("RESTORE"));

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount: number;
  children?: number[];
}

/** A minimal Chrome DevTools protocol session. */
async function devtools(port: number) {
  const [target] = await (await fetch(`http://127.0.0.1:${port}/json/list`)).json();
  const ws = new WebSocket(target.webSocketDebuggerUrl);
  await new Promise((r) => ws.addEventListener("open", r, { once: true }));
  let id = 0;
  const waiting = new Map<number, (v: any) => void>();
  ws.addEventListener("message", (e) => {
    const msg = JSON.parse(e.data);
    if (msg.id && waiting.has(msg.id)) waiting.get(msg.id)!(msg.result);
  });
  return {
    send: (method: string, params: Record<string, unknown> = {}) =>
      new Promise<any>((resolve) => {
        waiting.set(++id, resolve);
        ws.send(JSON.stringify({ id, method, params }));
      }),
    close: () => ws.close(),
  };
}

function where(url: string): string {
  const npm = /node_modules\/\.deno\/([^/]+)\//.exec(url) ??
    /registry\.npmjs\.org\/([^/]+(?:\/[^/]+)?)\//.exec(url);
  if (npm) return `npm:${npm[1]}`;
  const own = /\/perf\/(.+)$/.exec(url) ?? /file:\/\/.*?\/([^/]+\/[^/]+\.ts)$/.exec(url);
  if (own) return own[1];
  if (url.startsWith("ext:") || url.startsWith("node:")) return url.split("/").slice(0, 2).join("/");
  return url || "(native/V8)";
}

function summarize(profile: { nodes: ProfileNode[]; startTime: number; endTime: number; samples: number[] }) {
  const total = profile.samples.length;
  const usPerSample = (profile.endTime - profile.startTime) / total;
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const self = new Map<string, number>();
  const byPkg = new Map<string, number>();
  for (const n of profile.nodes) {
    const f = n.callFrame;
    const name = `${f.functionName || "(anonymous)"} ${where(f.url)}:${f.lineNumber + 1}`;
    self.set(name, (self.get(name) ?? 0) + n.hitCount);
    const pkg = f.url ? where(f.url) : f.functionName;
    byPkg.set(pkg, (byPkg.get(pkg) ?? 0) + n.hitCount);
  }
  // Inclusive: each function counted once per sample stack.
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const incl = new Map<string, number>();
  const counts = new Map<number, number>();
  for (const s of profile.samples) counts.set(s, (counts.get(s) ?? 0) + 1);
  for (const [leaf, hits] of counts) {
    const seen = new Set<string>();
    for (let id: number | undefined = leaf; id !== undefined; id = parent.get(id)) {
      const f = byId.get(id)!.callFrame;
      if (!f.url) continue;
      const name = `${f.functionName || "(anonymous)"} ${where(f.url)}:${f.lineNumber + 1}`;
      if (seen.has(name)) continue;
      seen.add(name);
      incl.set(name, (incl.get(name) ?? 0) + hits);
    }
  }
  const pct = (n: number) => `${((100 * n) / total).toFixed(1).padStart(5)}%`;
  const top = (m: Map<string, number>, k: number) => [...m].sort((a, b) => b[1] - a[1]).slice(0, k);
  console.log(`${total} samples, ${usPerSample.toFixed(0)} µs each`);
  console.log("\nself time by package/file:");
  for (const [k, v] of top(byPkg, 25)) console.log(`  ${pct(v)}  ${k}`);
  console.log("\nself time by function:");
  for (const [k, v] of top(self, 40)) console.log(`  ${pct(v)}  ${k}`);
  console.log("\ninclusive time by function:");
  for (const [k, v] of top(incl, 60)) console.log(`  ${pct(v)}  ${k}`);
}

/**
 * The longest stretches of consecutive non-idle samples (one task or several back to back, with no idle
 * sample between), each with its most sampled frames: what kept the main thread from taking the next ack.
 */
function longestBusy(
  profile: { nodes: ProfileNode[]; samples: number[]; timeDeltas: number[] },
  k = 12,
): void {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const frameOf = (id: number) => {
    // The innermost frame of the project or a package, else the leaf.
    for (let i: number | undefined = id; i !== undefined; i = parent.get(i)) {
      const f = byId.get(i)!.callFrame;
      if (f.url && !f.url.startsWith("ext:") && !f.url.startsWith("node:")) {
        return `${f.functionName || "(anonymous)"} ${where(f.url)}:${f.lineNumber + 1}`;
      }
    }
    const f = byId.get(id)!.callFrame;
    return `${f.functionName || "(anonymous)"} ${where(f.url)}`;
  };
  const stretches: { ms: number; frames: Map<string, number> }[] = [];
  let cur: { ms: number; frames: Map<string, number> } | undefined;
  profile.samples.forEach((id, i) => {
    const name = byId.get(id)!.callFrame.functionName;
    const dt = (profile.timeDeltas[i] ?? 0) / 1000;
    if (name === "(idle)") {
      if (cur) stretches.push(cur);
      cur = undefined;
      return;
    }
    cur ??= { ms: 0, frames: new Map() };
    cur.ms += dt;
    const f = frameOf(id);
    cur.frames.set(f, (cur.frames.get(f) ?? 0) + dt);
  });
  if (cur) stretches.push(cur);
  console.log(`\nlongest busy stretches of the main thread (of ${stretches.length}):`);
  for (const s of stretches.sort((a, b) => b.ms - a.ms).slice(0, k)) {
    const top = [...s.frames].sort((a, b) => b[1] - a[1]).slice(0, 4)
      .map(([f, ms]) => `${f} ${ms.toFixed(1)}`).join("; ");
    console.log(`  ${s.ms.toFixed(1).padStart(6)} ms  ${top}`);
  }
}

if (import.meta.main) {
  await using cluster = await startCluster({ name: "bench-profile" });
  const slack = await SlackStandIn.start({ teamId: TEAM, users: { [USERS.alice]: { name: "alice" } } });
  const stateDb = await cluster.createDatabase("state");
  let restoreServer: Awaited<ReturnType<typeof startCluster>> | undefined;
  let doc = testConfigDoc(cluster);
  if (RESTORE) {
    const src = await cluster.createDatabase("bisman");
    const rows = { clients: 60_000, invoices: 60_000, payment_requests: 120_000, payments: 120_000 };
    await applyTargetSql(cluster.primary.sql(src), { parts: ["sample_schema", "audit"], sample: true, rows });
    const dumps = `${cluster.dir}/dumps`;
    await Deno.mkdir(dumps);
    await pgDump(cluster, src, `${dumps}/bisman_bench.dump`);
    restoreServer = await startCluster({ name: "bench-profile-restore", nice: 19 });
    doc = testConfigDoc(cluster, (d) =>
      withSampleRestoreTest(d, {
        cluster,
        src,
        dumps,
        serverPort: restoreServer!.primary.port,
        restoreTest: { jobs: 2 },
      }));
  }
  const configFile = await writeConfigFile(doc);
  const inspect = await freePort();
  const bot = await spawnBot({
    configFile,
    denoFlags: [
      `--inspect=127.0.0.1:${inspect}`,
      ...(Deno.env.get("BOT_V8_FLAGS") ? [`--v8-flags=${Deno.env.get("BOT_V8_FLAGS")}`] : []),
    ],
    env: botEnv(slack, cluster.primary.url({ database: stateDb })),
  });
  try {
    const make = (n: number) => signedHelpRequests(slack, bot.eventsUrl, n);
    await loadRaw(bot.eventsUrl, make(2000), 50);
    const dt = await devtools(inspect);
    await dt.send("Profiler.enable");
    await dt.send("Profiler.setSamplingInterval", { interval: 200 });
    let restoring = RESTORE;
    const restores = (async () => {
      while (restoring) {
        const res = await slack.sendCommand(bot.eventsUrl, {
          text: "restore-test main",
          user_id: USERS.alice,
          team_id: TEAM,
          channel_id: OPS_CHANNEL,
          response_url: slack.responseUrl({ user: USERS.alice, channel: OPS_CHANNEL }),
        });
        await res.body?.cancel();
        await new Promise((r) => setTimeout(r, 1000));
      }
    })();
    if (RESTORE) await new Promise((r) => setTimeout(r, 2000));
    await dt.send("Profiler.start");
    const r = await loadRaw(bot.eventsUrl, make(REQUESTS), 50);
    restoring = false;
    await restores;
    await new Promise((res) => setTimeout(res, 1000));
    const { profile } = await dt.send("Profiler.stop");
    dt.close();
    console.log(`${REQUESTS} requests, ${(REQUESTS / r.seconds).toFixed(0)} req/s`);
    await Deno.mkdir(new URL("./out/", import.meta.url), { recursive: true });
    await Deno.writeTextFile(new URL("./out/ack.cpuprofile", import.meta.url), JSON.stringify(profile));
    summarize(profile);
    longestBusy(profile);
  } finally {
    await restoreServer?.[Symbol.asyncDispose]();
    await bot.stop(30_000);
    await slack.stop();
    await Deno.remove(configFile).catch(() => undefined);
  }
}
