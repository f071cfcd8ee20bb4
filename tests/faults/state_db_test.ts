import assert from "node:assert/strict";
import { startCluster } from "../../standins/cluster.ts";
import { waitFor } from "../../standins/wait.ts";
import { startTestBot, USERS } from "../support/bot.ts";
import { ask } from "../support/gate.ts";
import { ACTIONS } from "../../views/actions.ts";
import { TcpProxy } from "./_tcp_proxy.ts";

/** Outage length in the suite; `STATE_OUTAGE_SECONDS=30` gives the full 30 seconds. */
const OUTAGE_MS = Number(Deno.env.get("STATE_OUTAGE_SECONDS") ?? "4") * 1000;

Deno.test("state database down: commands answer 'state database unavailable', nothing is half-run, and everything works again after", async (t) => {
  await using cluster = await startCluster({ name: "fault-state", preload: ["pg_stat_statements"] });
  const target = cluster.primary.sql();
  await target`create extension if not exists pg_stat_statements`;
  const statsReset = async () =>
    (await target<{ r: string }[]>`select stats_reset::text as r from pg_stat_statements_info`)[0].r;
  // The bot reaches its own state database through a proxy that can play a dead server; targets stay up.
  const stateDb = await cluster.createDatabase("state");
  const proxy = TcpProxy.start(cluster.primary.port);
  const tb = await startTestBot(cluster, {
    stateDb,
    env: { DATABASE_URL: `postgres://postgres@127.0.0.1:${proxy.port}/${stateDb}` },
  });
  const state = cluster.primary.sql(stateDb); // the test's own view, around the proxy
  const resetBefore = await statsReset();
  try {
    const pending = await t.step("a request made before the outage waits for approval", async () => {
      const r = await ask(tb, "reset-stats");
      assert.ok(r.id, r.text);
    });
    assert.ok(pending);
    const id = tb.lastRequestId();
    const auditBefore = (await tb.bot.deps.audit.rows()).length;

    const outage = Date.now();
    await proxy.down();

    await t.step("/readyz turns 503 naming the state database; /healthz stays 200", async () => {
      const body = await waitFor(async () => {
        const r = await fetch(`${tb.bot.url}/readyz`);
        const b = await r.json();
        return r.status === 503 ? b : undefined;
      }, { what: "/readyz 503" });
      assert.equal(body.state, "unreachable");
      assert.equal((await fetch(`${tb.bot.url}/healthz`)).status, 200);
    });

    await t.step(
      "a new destructive request answers 'state database unavailable' and records nothing",
      async () => {
        const r = await ask(tb, "reset-stats");
        assert.match(r.text, /state database unavailable/i);
        assert.equal(r.id, undefined);
      },
    );

    await t.step(
      "a read-only command still answers; its answer says nothing of the state database",
      async () => {
        const r = await ask(tb, "status");
        assert.match(r.text, /main/);
        // Its audit entry could not be written: the log line is its record, with who asked what.
        const lost = await waitFor(
          () =>
            tb.logs.map((l) => JSON.parse(l)).find((l) =>
              l.msg === "audit entry not written; this line is its record" &&
              l.entry?.details?.subcommand === "status"
            ),
          { what: "the log line of the status command's lost audit entry" },
        );
        assert.equal(lost.entry.actor, USERS.alice);
        assert.equal(lost.entry.action, "command.received");
        assert.equal(lost.level, "error");
      },
    );

    await t.step(
      "an approval click answers 'state database unavailable' and does not run anything",
      async () => {
        const before = tb.slack.ephemerals.length;
        assert.equal(await tb.click(ACTIONS.approve, id, USERS.carol), 200);
        const told = await waitFor(
          () => tb.slack.ephemerals.slice(before).find((e) => e.ephemeral_user === USERS.carol),
          { what: "an answer to the click" },
        );
        assert.match(told.text ?? "", /state database unavailable/i);
        assert.equal(await statsReset(), resetBefore, "nothing ran on the target");
      },
    );

    // Hold the outage for its full length, then bring the database back.
    await new Promise((r) => setTimeout(r, Math.max(0, OUTAGE_MS - (Date.now() - outage))));
    proxy.up();

    await t.step(
      "after the outage: ready again, the request is still pending, and approving runs it once",
      async () => {
        await waitFor(
          async () =>
            (await fetch(`${tb.bot.url}/readyz`).then((r) => r.body?.cancel().then(() => r.status))) === 200,
          {
            what: "/readyz 200 again",
            timeoutMs: 30_000,
          },
        );
        const [row] = await state<
          { state: string }[]
        >`select state from bisman_ops.requests where id = ${id}`;
        assert.equal(row.state, "pending", "the click during the outage changed nothing");
        assert.equal(
          (await state`select id from bisman_ops.requests`).length,
          1,
          "the request refused during the outage was not recorded",
        );
        assert.equal(await tb.click(ACTIONS.approve, id, USERS.carol), 200);
        await tb.waitForState(id, "succeeded");
        assert.notEqual(await statsReset(), resetBefore);
        const r = await ask(tb, "reset-stats");
        assert.ok(r.id, `new requests work again: ${r.text}`);
      },
    );

    await t.step("the audit chain is intact and shows no half-run operation", async () => {
      const verdict = await tb.bot.deps.audit.verify();
      assert.ok(verdict.ok, JSON.stringify(verdict));
      const rows = (await tb.bot.deps.audit.rows()).slice(auditBefore);
      const started = rows.filter((r) => r.action === "op.started").map((r) => r.request_id);
      assert.deepEqual(started, [id], "only the approved request started, once");
      assert.equal((await state`select id from bisman_ops.requests where state = 'running'`).length, 0);
    });
  } finally {
    await tb.stop();
    await proxy.close();
  }
});

Deno.test("the state database restarted under a burst of commands: the bot keeps running, and works again after", async (t) => {
  // A real restart (fast shutdown): PostgreSQL ends every session with an error, audit appends in flight
  // included. postgres.js would then write ROLLBACK to the dead socket and crash the process (the test
  // process, for this in-process bot); core/pg_tx.ts keeps it from touching the connection again.
  await using cluster = await startCluster({ name: "fault-state-restart" });
  const tb = await startTestBot(cluster);
  try {
    let sent = 0;
    let stopping = false;
    const burst = Array.from({ length: 8 }, async () => {
      while (!stopping) {
        const r = await tb.command("help").catch(() => undefined);
        if (r) sent++;
      }
    });
    await waitFor(() => sent >= 50, { what: "the burst under way" });

    await t.step("a fast restart of the state database during the burst", async () => {
      await cluster.primary.stop("fast");
      await cluster.primary.start();
      await waitFor(() => sent >= 150, { what: "commands answered after the restart", timeoutMs: 20_000 });
      stopping = true;
      await Promise.all(burst);
    });

    await t.step("the bot is ready again, records new commands, and its audit chain verifies", async () => {
      await waitFor(async () =>
        (await fetch(`${tb.bot.url}/readyz`).then(async (r) => {
          await r.body?.cancel();
          return r.status;
        })) === 200, { what: "/readyz 200 again", timeoutMs: 20_000 });
      const received = async () =>
        (await tb.bot.deps.audit.rows()).filter((r) => r.action === "command.received").length;
      const before = await received();
      const r = await ask(tb, "status");
      assert.match(r.text, /main/);
      await waitFor(async () => (await received()) > before, { what: "the new command's audit row" });
      const verdict = await tb.bot.deps.audit.verify();
      assert.ok(verdict.ok, JSON.stringify(verdict));
      assert.ok(verdict.checked <= sent + 1, "no row twice");
    });
  } finally {
    await tb.stop();
  }
});
