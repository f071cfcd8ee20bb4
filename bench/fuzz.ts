/**
 * Fuzzing the bot's entry points: 10,000 random and mutated cases in all (6,000 to POST /slack/events,
 * 2,500 to POST /alerts, 1,500 Socket Mode envelopes): valid signatures on invalid content, invalid
 * signatures on valid content, huge bodies, wrong content types. Every case must get a 4xx or a clean 200
 * (every envelope an ack), the bots must stay up and answer, and nothing may run: no request past pending,
 * the freeze, the target's roles and pg_hba rules as before, the audit chains intact. A fresh seed each run
 * (printed); `FUZZ_SEED=<n>` replays one. The suite runs a few hundred of the same cases
 * (tests/fuzz/entry_points_test.ts).
 *
 *   deno task bench fuzz              (FUZZ_SEED=<n> FUZZ_CASES=10000)
 */

import { startCluster } from "../standins/cluster.ts";
import { TEAM, USERS } from "../tests/support/bot.ts";
import { alertCase, slackCase } from "../tests/fuzz/_cases.ts";
import {
  describe,
  fuzzHttp,
  fuzzSocket,
  requestsPastPending,
  snapshot,
  startFuzzBots,
} from "../tests/fuzz/_run.ts";

const ALERTS_TOKEN = "bench-fuzz-alerts-token-0123456789";

export async function run(): Promise<void> {
  const seed = Number(Deno.env.get("FUZZ_SEED") ?? Math.floor(Math.random() * 1e9));
  const total = Number(Deno.env.get("FUZZ_CASES") ?? "10000");
  const nSlack = Math.round(total * 0.6);
  const nAlerts = Math.round(total * 0.25);
  const nSocket = total - nSlack - nAlerts;
  console.log(`seed ${seed} (replay with FUZZ_SEED=${seed})`);

  await using cluster = await startCluster({ name: "bench-fuzz" });
  const { tb, socketBot, ids } = await startFuzzBots(cluster, { ALERTS_TOKEN, LOG_LEVEL: "warn" });
  const target = cluster.primary.sql();
  const before = await snapshot(tb, target);
  const problems: string[] = [];
  try {
    const slack = await fuzzHttp(
      tb.bot.url,
      nSlack,
      seed,
      (r) => slackCase(r, tb.slack.signingSecret, ids),
      16,
    );
    console.log(describe("POST /slack/events", slack));
    if (slack.wrong.length) problems.push(`slack: ${JSON.stringify(slack.wrong.slice(0, 5))}`);

    const alerts = await fuzzHttp(tb.bot.url, nAlerts, seed + 1, (r) => alertCase(r, ALERTS_TOKEN), 16);
    console.log(describe("POST /alerts", alerts));
    if (alerts.wrong.length) problems.push(`alerts: ${JSON.stringify(alerts.wrong.slice(0, 5))}`);

    await tb.slack.waitForSockets(1);
    const socket = await fuzzSocket(tb.slack, ids, nSocket, seed + 2, 16);
    console.log(
      `Socket Mode envelopes: ${socket.sent} sent in ${
        socket.seconds.toFixed(1)
      } s, ${socket.acked} acknowledged, ${socket.failures.length} without an ack`,
    );
    if (socket.failures.length) problems.push(`socket: ${JSON.stringify(socket.failures.slice(0, 5))}`);

    // Still alive and answering, over both transports.
    const help = await tb.command("help");
    if (help.status !== 200 || !/status/.test(help.body?.text ?? "")) {
      problems.push("HTTP bot no longer answers");
    }
    const ack = await tb.slack.sendCommandSocket({ text: "help", user_id: USERS.alice, team_id: TEAM });
    if (!/status/.test(String(ack.payload.text))) problems.push("Socket Mode bot no longer answers");

    await socketBot.bot.socket!.drain(30_000);
    const ran = [...await requestsPastPending(tb), ...await requestsPastPending(socketBot)];
    if (ran.length) problems.push(`requests got past pending: ${JSON.stringify(ran)}`);
    const after = await snapshot(tb, target);
    if (JSON.stringify(after) !== JSON.stringify(before)) {
      problems.push("the freeze, roles or pg_hba changed");
    }
    for (const b of [tb, socketBot]) {
      const v = await b.bot.deps.audit.verify();
      if (!v.ok) problems.push(`audit chain: ${JSON.stringify(v)}`);
    }
    const pending = (await tb.bot.deps.state<{ n: number }[]>`
      select count(*)::int as n from bisman_ops.requests where state = 'pending'`)[0].n;
    console.log(
      `afterwards: both bots answer; ${pending} fuzzed requests wait for approval (none ran); audit chains intact: ${
        problems.length ? "NO" : "yes"
      }`,
    );
  } finally {
    await socketBot.stop();
    await tb.stop();
  }
  if (problems.length) throw new Error(`fuzzing found problems:\n${problems.join("\n")}`);
  console.log(`fuzz: ${total.toLocaleString("en")} cases, no crash, no 5xx, nothing ran`);
}

if (import.meta.main) await run();
