import assert from "node:assert/strict";
import { startCluster } from "../../standins/cluster.ts";
import { waitFor } from "../../standins/wait.ts";
import { startTestBot, testConfig, USERS } from "../support/bot.ts";
import { ask } from "../support/gate.ts";
import { ACTIONS } from "../../views/actions.ts";
import { runLagCheck } from "../../jobs/lag_check.ts";
import { TcpProxy } from "./_tcp_proxy.ts";

Deno.test("target faults: a primary down and a replica removed are reported clearly, nothing half-runs, and all is well once they are back", async (t) => {
  await using cluster = await startCluster({
    name: "fault-targets",
    replica: true,
    preload: ["pg_stat_statements"],
  });
  const sql = cluster.primary.sql();
  await sql`create extension if not exists pg_stat_statements`;
  const statsReset = async () =>
    (await sql<{ r: string }[]>`select stats_reset::text as r from pg_stat_statements_info`)[0].r;
  // The bot reaches the target's primary through a proxy that can play a dead server (its own state
  // database stays up, on the real port); the replica is stopped for real.
  const proxy = TcpProxy.start(cluster.primary.port);
  const tb = await startTestBot(cluster, {
    config: testConfig(cluster, (doc) => {
      doc.targets.main.primary.port = proxy.port;
      // The steps run the lag check themselves and assert what each run opened or resolved; the scheduled
      // run (every minute on the minute) could get there first and leave them nothing to find, as it did in
      // one CI run that crossed a minute between "replica back" and its check.
      doc.alerts = { lag_check: { enabled: false } };
    }),
    start: { probeIntervalMs: 300 },
  });
  /** Runs the scheduled lag check once and waits until its posts are in the channel. */
  const lagCheck = async () => {
    const r = await runLagCheck(tb.bot.deps, tb.bot.alerts);
    await tb.bot.alerts.idle();
    return r;
  };
  /** The channel's alert threads' parent messages about `what`. */
  const alertsAbout = (what: RegExp) =>
    tb.slack.messages.filter((m) => !m.thread_ts && what.test(m.text ?? ""));
  const readyz = async () => {
    const r = await fetch(`${tb.bot.url}/readyz`);
    return { status: r.status, body: await r.json() };
  };
  try {
    let pending: number;
    await t.step("a request waits for approval while everything is up", async () => {
      const r = await ask(tb, "reset-stats");
      assert.ok(r.id, r.text);
      pending = r.id!;
    });
    const resetBefore = await statsReset();

    await t.step(
      "primary down: status names it unreachable and the replica still answers; /readyz stays 200",
      async () => {
        await proxy.down();
        const r = await ask(tb, "status");
        assert.match(r.text, /primary/);
        assert.match(r.text, /does not answer|unreachable/i);
        assert.match(r.text, /replica1/);
        const ready = await waitFor(async () => {
          const x = await readyz();
          return x.body.targets?.["main/primary"]?.status === "unreachable" ? x : undefined;
        }, { what: "/readyz reporting the primary unreachable" });
        assert.equal(ready.status, 200, "a target never makes the bot unready");
        assert.equal(ready.body.targets["main/replica1"].status, "ok");
        const check = await lagCheck();
        assert.ok(check.opened.length >= 1, JSON.stringify(check));
        assert.ok(alertsAbout(/ReplicationFailure/).length >= 1, "the channel is told by an alert thread");
      },
    );

    await t.step(
      "a new destructive request on the down primary is refused with the reason; nothing is recorded",
      async () => {
        const before = (await tb.bot.deps.state`select id from bisman_ops.requests`).length;
        const r = await ask(tb, "reset-stats");
        assert.equal(r.id, undefined, r.text);
        assert.match(r.text, /main\/primary .*does not answer/);
        assert.equal((await tb.bot.deps.state`select id from bisman_ops.requests`).length, before);
      },
    );

    await t.step("approving while the primary is down runs nothing and says why", async () => {
      assert.equal(await tb.click(ACTIONS.approve, pending!, USERS.carol), 200);
      await waitFor(async () => {
        const s = (await tb.bot.gate.view(pending!))!.request.state;
        return s !== "pending" && s !== "approved" && s !== "running" ? s : undefined;
      }, { what: `request #${pending!} to settle` });
      await tb.bot.gate.idle();
      const v = (await tb.bot.gate.view(pending!))!.request;
      assert.ok(["stale", "failed"].includes(v.state), v.state);
      assert.match(tb.approvalMessage(pending!)!.text ?? "", /does not answer/);
      assert.equal(await statsReset(), resetBefore, "nothing ran on the target");
    });

    await t.step("primary back: status is all ok and a new reset runs once", async () => {
      proxy.up();
      await waitFor(async () => (await readyz()).body.targets?.["main/primary"]?.status === "ok", {
        what: "/readyz reporting the primary ok",
      });
      const r = await ask(tb, "reset-stats");
      assert.ok(r.id, r.text);
      assert.equal(await tb.click(ACTIONS.approve, r.id!, USERS.carol), 200);
      await tb.waitForState(r.id!, "succeeded");
      assert.notEqual(await statsReset(), resetBefore);
    });

    await t.step("replica removed: status and lag name it, /readyz reports it and stays 200", async () => {
      await cluster.replica!.stop("fast");
      const status = await ask(tb, "status");
      assert.match(status.text, /replica1.*(does not answer|unreachable)/is);
      const lag = await ask(tb, "lag");
      assert.match(lag.text, /replica1/);
      assert.doesNotMatch(lag.text, /Internal error/);
      const ready = await waitFor(async () => {
        const x = await readyz();
        return x.body.targets?.["main/replica1"]?.status === "unreachable" ? x : undefined;
      }, { what: "/readyz reporting the replica unreachable" });
      assert.equal(ready.status, 200);
      const about = /ReplicationFailure[\s\S]*replica1|replica1[\s\S]*ReplicationFailure/;
      const posted = alertsAbout(about).length;
      const check = await lagCheck();
      assert.ok(check.opened.some((k) => /replica1/.test(k)), JSON.stringify(check));
      assert.equal(alertsAbout(about).length, posted + 1, "one alert thread for the missing replica");
    });

    await t.step("replica back: it streams again and status and lag are clean", async () => {
      await cluster.replica!.start();
      await cluster.waitForReplay(30_000);
      await waitFor(async () => (await readyz()).body.targets?.["main/replica1"]?.status === "ok", {
        what: "/readyz reporting the replica ok",
        timeoutMs: 30_000,
      });
      const status = await ask(tb, "status");
      assert.doesNotMatch(status.text, /does not answer|unreachable/i);
      const lag = await ask(tb, "lag");
      assert.match(lag.text, /replica1/);
      assert.doesNotMatch(lag.text, /does not answer|unreachable|Internal error/i);
      const check = await lagCheck();
      assert.ok(check.resolved.some((k) => /replica1/.test(k)), JSON.stringify(check));
      assert.equal(check.opened.length, 0);
    });

    await t.step("afterwards: no request is left running and the audit chain verifies", async () => {
      assert.equal(
        (await tb.bot.deps.state`select id from bisman_ops.requests where state = 'running'`).length,
        0,
      );
      const verdict = await tb.bot.deps.audit.verify();
      assert.ok(verdict.ok, JSON.stringify(verdict));
    });
  } finally {
    await tb.stop();
    await proxy.close();
  }
});
