import assert from "node:assert/strict";
import { startCluster } from "../../standins/cluster.ts";
import { waitFor } from "../../standins/wait.ts";
import { startTestBot, type TestBot, testConfig, testConfigDoc, USERS } from "../support/bot.ts";
import {
  approveVia,
  type BotProcess,
  requestVia,
  spawnBot,
  writeConfigFile,
} from "../support/bot_process.ts";
import { SlackStandIn } from "../../standins/slack.ts";
import { TcpProxy } from "./_tcp_proxy.ts";

/** The bot's JSON log lines with `msg` matching. */
function logged(p: BotProcess, msg: RegExp): Record<string, unknown>[] {
  return p.stderr.flatMap((l) => {
    try {
      const j = JSON.parse(l);
      return msg.test(String(j.msg)) ? [j] : [];
    } catch {
      return [];
    }
  });
}

Deno.test("SIGTERM mid-operation: the bot stops taking requests, lets the approved operation finish within the bound, or leaves it to be marked interrupted and reconciled", async (t) => {
  await using cluster = await startCluster({ name: "shutdown", preload: ["pg_stat_statements"] });
  const sql = cluster.primary.sql();
  await sql`create extension if not exists pg_stat_statements`;
  const statsReset = async () =>
    (await sql<{ r: string }[]>`select stats_reset::text as r from pg_stat_statements_info`)[0].r;
  // The bot reaches the target through a proxy, so a test can stall its queries mid-operation.
  const proxy = TcpProxy.start(cluster.primary.port);
  const viaProxy = (doc: Record<string, any>) => {
    doc.targets.main.primary.port = proxy.port;
    // The lag check every second: when the proxy stalls, one of its runs is stalled as well, and shutdown
    // must close the listener without waiting for it (CI once timed out waiting for the listener).
    doc.schedules = { lag_check: { cron: "* * * * * *" } };
  };
  const slack = await SlackStandIn.start({
    users: { [USERS.alice]: { name: "alice" }, [USERS.carol]: { name: "carol" } },
  });
  const stateDb = await cluster.createDatabase("state");
  const state = cluster.primary.sql(stateDb);
  const configFile = await writeConfigFile(testConfigDoc(cluster, viaProxy));
  const env = (graceSeconds: number) => ({
    SLACK_SIGNING_SECRET: slack.signingSecret,
    SLACK_BOT_TOKEN: slack.botToken,
    SLACK_API_URL: slack.apiUrl,
    DATABASE_URL: cluster.primary.url({ database: stateDb }),
    BISMAN_SHUTDOWN_GRACE_SECONDS: String(graceSeconds),
  });
  const stateOf = async (id: number) =>
    (await state<{ state: string }[]>`select state from bisman_ops.requests where id = ${id}`)[0]?.state;

  /** Requests a reset, stalls the target, approves, and waits until the gate has the request running. */
  async function approvedAndStalled(p: BotProcess): Promise<number> {
    const id = await requestVia(slack, p, "reset-stats", USERS.alice);
    proxy.hold();
    assert.equal(await approveVia(slack, p, id, USERS.carol), 200);
    await waitFor(async () => (await stateOf(id)) === "running", { what: `request #${id} running` });
    return id;
  }

  let restarted: TestBot | undefined;
  try {
    await t.step(
      "within the bound: new requests are refused, the running reset finishes, exit 0",
      async () => {
        const p = await spawnBot({ configFile, env: env(20) });
        try {
          const before = await statsReset();
          const id = await approvedAndStalled(p);
          await waitFor(
            async () =>
              (await state`
                select 1 from bisman_ops.job_runs
                where job = 'lag_check' and outcome = 'running' and started_at > now() - interval '1 second'
              `).length > 0,
            { what: "a lag check stalled on the target" },
          );
          const signalled = Date.now();
          Deno.kill(p.pid, "SIGTERM");
          await p.waitForLine(/"msg":"shutting down"/);
          // The listener is closed: a new request cannot even connect.
          await waitFor(
            async () => (await fetch(`${p.url}/healthz`).then((r) => r.body?.cancel()).then(
              () => false,
              () => true,
            )),
            {
              what: "the HTTP listener to close",
            },
          );
          // The operation is still waiting on its target, and the process waits for it.
          assert.equal(await stateOf(id), "running");
          let exited = false;
          void p.exited.then(() => (exited = true));
          await new Promise((r) => setTimeout(r, 500));
          assert.equal(exited, false, "the process waits for the running operation");
          proxy.resume();
          const status = await p.exited;
          assert.equal(status.code, 0, p.stderr.slice(-10).join("\n"));
          assert.ok(Date.now() - signalled < 20_000, "well inside the grace period");
          assert.equal(await stateOf(id), "succeeded");
          assert.notEqual(await statsReset(), before, "the reset took effect");
          assert.deepEqual(logged(p, /^stopped$/).map((l) => l.unfinished), [0]);
          const msg = slack.messages.findLast((m) =>
            JSON.stringify(m.metadata ?? {}).includes(`"request_id":${id}`)
          );
          assert.match(msg?.text ?? "", /succeeded/i, "the approval message shows the result");
        } finally {
          proxy.resume();
          await p.kill();
        }
      },
    );

    await t.step(
      "past the bound: exit 0 at the bound, the reset never reaches the target, the next start marks it interrupted and reconciles it",
      async () => {
        const p = await spawnBot({ configFile, env: env(1) });
        let id: number;
        const before = await statsReset();
        try {
          id = await approvedAndStalled(p);
          const signalled = Date.now();
          Deno.kill(p.pid, "SIGTERM");
          const status = await p.exited;
          assert.equal(status.code, 0, p.stderr.slice(-10).join("\n"));
          assert.ok(Date.now() - signalled < 8_000, `exited ${Date.now() - signalled} ms after SIGTERM`);
          assert.equal(logged(p, /stopping with work still running/).length, 1);
          assert.deepEqual(logged(p, /^stopped$/).map((l) => l.unfinished), [1]);
        } finally {
          await p.kill();
        }
        // The stalled query died with the process: nothing was reset.
        proxy.cut();
        proxy.resume();
        assert.equal(await statsReset(), before);
        assert.equal(await stateOf(id), "running", "left for the next replica: nobody has touched it yet");

        restarted = await startTestBot(cluster, {
          slack,
          stateDb,
          config: testConfig(cluster, viaProxy),
          start: { sweepIntervalMs: 200 },
        });
        await restarted.waitForState(id, "interrupted");
        await waitFor(async () => (await restarted!.bot.gate.view(id))!.request.reconcile, {
          what: "the reconcile verdict",
        });
        await restarted.bot.gate.idle();
        assert.equal((await restarted.bot.gate.view(id))!.request.reconcile!.status, "not_done");
        assert.equal(await statsReset(), before, "reconcile did not rerun it");
        const actions = (await restarted.bot.deps.audit.rows({ requestId: id })).map((r) => r.action);
        // It stalled in the gate's re-validation, before the operation started: interrupted, never run.
        assert.deepEqual(actions.slice(-2), ["request.interrupted", "op.reconciled"]);
        assert.ok(!actions.includes("op.succeeded") && !actions.includes("op.failed"), actions.join(", "));
        assert.equal((await state`select id from bisman_ops.requests where state = 'running'`).length, 0);
      },
    );
  } finally {
    await restarted?.stop();
    await proxy.close();
    await slack.stop();
    await Deno.remove(configFile).catch(() => undefined);
  }
});

Deno.test("shutdown is bounded while a client trickles a request body: the listener's wait does not hold the rest", async () => {
  await using cluster = await startCluster({ name: "shutdown-trickle" });
  const tb = await startTestBot(cluster, {});
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: tb.bot.port });
  try {
    // Headers and one chunk of a chunked body, then nothing more: the request is still being received.
    const head =
      `POST /slack/events HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-www-form-urlencoded\r\n` +
      `Transfer-Encoding: chunked\r\n\r\n5\r\ntoken\r\n`;
    await conn.write(new TextEncoder().encode(head));
    await new Promise((r) => setTimeout(r, 200));
    const started = Date.now();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const stopped = await Promise.race([
      tb.bot.stop({ graceMs: 1_000 }),
      new Promise<"hung">((r) => (timer = setTimeout(() => r("hung"), 10_000))),
    ]);
    clearTimeout(timer);
    assert.notEqual(stopped, "hung", "stop() still waiting for the trickling request after 10 s");
    if (stopped === "hung") return;
    const took = Date.now() - started;
    // The bound (1 s) plus the audit floor (2 s) at most, with room for a loaded machine; before, stop()
    // waited for the trickling request for as long as its client kept it open.
    assert.ok(took < 6_000, `stop() took ${took} ms`);
    assert.equal(stopped.unfinished, 0);
    assert.ok(tb.logs.some((l) => l.includes("stopping: the approval gate")), "the orderly end ran");
  } finally {
    conn.close();
    await tb.stop();
  }
});
