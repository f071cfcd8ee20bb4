/**
 * What holds the idle bot's resident memory: starts main.ts as the image's CMD runs it (plus `--inspect`),
 * waits SETTLE seconds, then prints
 *   - /proc/<pid>/smaps_rollup and the smaps mappings grouped (deno binary, anonymous, heap, stacks),
 *   - the scripts V8 parsed (Debugger.scriptParsed), by npm package / project folder, with source sizes,
 *   - a heap snapshot (HeapProfiler.takeHeapSnapshot) summarized by node type and constructor.
 *
 *   deno run -A bench/_mem_breakdown.ts        (FLAGS="..." extra deno flags; SNAPSHOT=file keeps the snapshot;
 *   DIGEST=1 measures after a full /bisman digest; RECLAIM=<expression> evaluates it in the bot first;
 *   ANON=<script> runs it with the bot's pid)
 */
import { startCluster } from "../standins/cluster.ts";
import { OPS_CHANNEL, TEAM, testConfigDoc, USERS } from "../tests/support/bot.ts";
import { waitFor } from "../standins/wait.ts";
import { spawnBot, writeConfigFile } from "../tests/support/bot_process.ts";
import { SlackStandIn } from "../standins/slack.ts";
import { IntegrityKeys } from "../core/keys.ts";
import { freePort } from "../standins/ports.ts";
import { imageCmdFlags } from "./_image.ts";
import { formatGroups, smapsByMapping } from "./_smaps.ts";

const MiB = 1024 * 1024;
// The Dockerfile CMD's permissions (its other flags come from FLAGS, so each can be measured alone).
const imageFlags = (await imageCmdFlags()).filter((f) => f.startsWith("--allow-"));
await using cluster = await startCluster({ name: "mem-breakdown" });
const slack = await SlackStandIn.start({ teamId: TEAM, users: { [USERS.alice]: { name: "alice" } } });
const stateDb = await cluster.createDatabase("state");
const configFile = await writeConfigFile(testConfigDoc(cluster));
const inspectPort = await freePort();
const extra = (Deno.env.get("FLAGS") ?? "").split(" ").filter(Boolean);
const bot = await spawnBot({
  configFile,
  denoFlags: [
    ...imageFlags,
    ...extra,
    ...(Deno.env.get("NO_INSPECT") ? [] : [`--inspect=127.0.0.1:${inspectPort}`]),
  ],
  env: {
    SLACK_SIGNING_SECRET: slack.signingSecret,
    BISMAN_SIGNING_KEY: IntegrityKeys.generate(),
    SLACK_BOT_TOKEN: slack.botToken,
    SLACK_API_URL: slack.apiUrl,
    DATABASE_URL: cluster.primary.url({ database: stateDb }),
    LOG_LEVEL: Deno.env.get("BOT_LOG_LEVEL") ?? "info",
  },
});
/** One line: VmRSS, RssAnon, RssFile and the malloc heap's resident size, now. */
async function summary(label: string): Promise<void> {
  const status = await Deno.readTextFile(`/proc/${bot.pid}/status`);
  const kb = (k: string) => Number(new RegExp(`${k}:\\s+(\\d+)`).exec(status)?.[1] ?? NaN) / 1024;
  const smaps = await Deno.readTextFile(`/proc/${bot.pid}/smaps`);
  const heap = /\[heap\]\n(?:.*\n)*?Rss:\s+(\d+)/.exec(smaps);
  console.log(
    `${label}: VmRSS ${kb("VmRSS").toFixed(1)} MiB, RssAnon ${kb("RssAnon").toFixed(1)}, RssFile ${
      kb("RssFile").toFixed(1)
    }, malloc [heap] ${(Number(heap?.[1] ?? NaN) / 1024).toFixed(1)}`,
  );
}
await new Promise((r) => setTimeout(r, Number(Deno.env.get("SETTLE") ?? 5) * 1000));
await summary("after start");
if (Deno.env.get("DIGEST")) {
  // As bench/load.ts: a full /bisman digest, then SETTLE seconds after its recorded end.
  const state = cluster.primary.sql(stateDb);
  const res = await slack.sendCommand(bot.eventsUrl, {
    text: "digest",
    user_id: USERS.alice,
    team_id: TEAM,
    channel_id: OPS_CHANNEL,
  });
  await res.body?.cancel();
  const outcome = await waitFor(async () => {
    const [r] = await state<{ outcome: string }[]>`
      select outcome from bisman_ops.job_runs where job = 'digest' order by id desc limit 1`;
    return r && r.outcome !== "running" ? r.outcome : undefined;
  }, { what: "the digest to finish", timeoutMs: 120_000, intervalMs: 100 });
  console.log(`digest: ${outcome}`);
  await new Promise((r) => setTimeout(r, Number(Deno.env.get("SETTLE") ?? 5) * 1000));
  await summary("after the digest");
  if (Deno.env.get("LATER")) {
    await new Promise((r) => setTimeout(r, Number(Deno.env.get("LATER")) * 1000));
    await summary(`${Deno.env.get("LATER")} s later`);
  }
}

if (Deno.env.get("RECLAIM")) {
  const l = await (await fetch(`http://127.0.0.1:${inspectPort}/json/list`)).json();
  const w = new WebSocket(l[0].webSocketDebuggerUrl);
  await new Promise((r) => w.addEventListener("open", r, { once: true }));
  const done = new Promise((r) => w.addEventListener("message", r, { once: true }));
  w.send(
    JSON.stringify({
      id: 1,
      method: "Runtime.evaluate",
      params: { expression: Deno.env.get("RECLAIM"), awaitPromise: true, returnByValue: true },
    }),
  );
  console.log("reclaim:", (await done as MessageEvent).data);
  w.close();
  await new Promise((r) => setTimeout(r, 500));
}
for (const l of bot.stderr.filter((l) => l.includes("reclaimed"))) console.log(l);
// smaps: grouped by what the mapping is.
console.log("== smaps_rollup");
console.log(await Deno.readTextFile(`/proc/${bot.pid}/smaps_rollup`));
const { groups, big } = await smapsByMapping(bot.pid);
console.log("== smaps by mapping (RSS MiB, anonymous MiB, mappings)");
console.log(formatGroups(groups));
console.log("== single mappings over 2 MiB resident (RSS MiB / size MiB)");
for (const b of big) {
  console.log(
    `${(b.rss / MiB).toFixed(1).padStart(7)} / ${(b.size / MiB).toFixed(1).padStart(7)}  ${b.name}`,
  );
}

if (Deno.env.get("ANON")) {
  await new Deno.Command(Deno.execPath(), { args: ["run", "-A", Deno.env.get("ANON")!, String(bot.pid)] })
    .spawn().status;
}
if (Deno.env.get("NO_INSPECT")) {
  await bot.stop(20000);
  await slack.stop();
  Deno.exit(0);
}
// The inspector.
const list = await (await fetch(`http://127.0.0.1:${inspectPort}/json/list`)).json();
const ws = new WebSocket(list[0].webSocketDebuggerUrl);
await new Promise((r) => ws.addEventListener("open", r, { once: true }));
let id = 0;
const pending = new Map<number, (v: any) => void>();
const scripts: { url: string; length: number }[] = [];
const chunks: string[] = [];
ws.addEventListener("message", (e) => {
  const msg = JSON.parse(e.data);
  if (msg.id && pending.has(msg.id)) {
    pending.get(msg.id)!(msg.result ?? msg.error);
    pending.delete(msg.id);
  } else if (msg.method === "Debugger.scriptParsed") {
    scripts.push({ url: msg.params.url, length: msg.params.length ?? 0 });
  } else if (msg.method === "HeapProfiler.addHeapSnapshotChunk") chunks.push(msg.params.chunk);
});
const call = (method: string, params: Record<string, unknown> = {}) =>
  new Promise<any>((resolve) => {
    pending.set(++id, resolve);
    ws.send(JSON.stringify({ id, method, params }));
  });
await call("Runtime.enable");
await call("Debugger.enable");
await call("Debugger.disable");
console.log(`== V8 heap (Runtime.getHeapUsage)`, await call("Runtime.getHeapUsage"));
const byPkg = new Map<string, { n: number; bytes: number }>();
for (const s of scripts) {
  const npm = /node_modules\/\.deno\/([^/]+)\//.exec(s.url) ??
    /node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(s.url);
  const key = npm
    ? `npm:${npm[1]}`
    : s.url.startsWith("file://")
    ? `project:${s.url.split("/").at(-2)}`
    : s.url.startsWith("ext:") || s.url.startsWith("node:")
    ? "deno runtime (ext:/node:)"
    : s.url || "(eval/anon)";
  const g = byPkg.get(key) ?? { n: 0, bytes: 0 };
  g.n++;
  g.bytes += s.length;
  byPkg.set(key, g);
}
const total = scripts.reduce((a, s) => a + s.length, 0);
console.log(
  `== scripts parsed: ${scripts.length}, ${(total / MiB).toFixed(1)} MiB of source; by package (top 30)`,
);
for (const [k, v] of [...byPkg].sort((a, b) => b[1].bytes - a[1].bytes).slice(0, 30)) {
  console.log(`${(v.bytes / 1024).toFixed(0).padStart(7)} KiB ${String(v.n).padStart(4)} scripts  ${k}`);
}

await call("HeapProfiler.enable");
await call("HeapProfiler.collectGarbage");
await call("HeapProfiler.takeHeapSnapshot", { reportProgress: false });
const snap = JSON.parse(chunks.join(""));
if (Deno.env.get("SNAPSHOT")) await Deno.writeTextFile(Deno.env.get("SNAPSHOT")!, chunks.join(""));
const f = snap.snapshot.meta.node_fields as string[];
const types = snap.snapshot.meta.node_types[0] as string[];
const nf = f.length;
const [iType, iName, iSize] = ["type", "name", "self_size"].map((x) => f.indexOf(x));
const byType = new Map<string, number>();
const byCtor = new Map<string, { n: number; bytes: number }>();
let all = 0;
for (let i = 0; i < snap.nodes.length; i += nf) {
  const t = types[snap.nodes[i + iType]];
  const sz = snap.nodes[i + iSize];
  all += sz;
  byType.set(t, (byType.get(t) ?? 0) + sz);
  const name = t === "object" || t === "closure" || t === "code" || t === "hidden"
    ? `${t}:${String(snap.strings[snap.nodes[i + iName]]).slice(0, 60)}`
    : t;
  const g = byCtor.get(name) ?? { n: 0, bytes: 0 };
  g.n++;
  g.bytes += sz;
  byCtor.set(name, g);
}
console.log(`== heap snapshot: ${(all / MiB).toFixed(1)} MiB self size; by node type`);
for (const [k, v] of [...byType].sort((a, b) => b[1] - a[1])) {
  console.log(`${(v / MiB).toFixed(2).padStart(7)} MiB  ${k}`);
}
console.log("== by constructor / name (top 30)");
for (const [k, v] of [...byCtor].sort((a, b) => b[1].bytes - a[1].bytes).slice(0, 30)) {
  console.log(`${(v.bytes / MiB).toFixed(2).padStart(7)} MiB ${String(v.n).padStart(7)}  ${k}`);
}
ws.close();
await bot.stop(20000);
await slack.stop();
