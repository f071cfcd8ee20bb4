import assert from "node:assert/strict";
import { startCluster, type TestCluster } from "../../standins/cluster.ts";
import { startTestBot, type TestBot, testConfig, USERS } from "../support/bot.ts";
import { ask, ephemeralTo } from "../support/gate.ts";
import { waitFor } from "../../standins/wait.ts";
import { pgDump } from "../support/dumps.ts";
import { ACTIONS } from "../../views/actions.ts";
import { getRestoreTest } from "../../ops/restore_history.ts";

/**
 * A dump whose restore takes many seconds however small it is: an index on an immutable function that
 * sleeps 10 ms a row, so the test can stop pg_restore mid-way without a big data set.
 */
async function slowDump(cluster: TestCluster): Promise<{ folder: string; db: string }> {
  const db = await cluster.createDatabase("slowsrc");
  // The function sleeps unless the session says otherwise: building the index here is instant, restoring it
  // (a fresh session) takes 30 s.
  await cluster.primary.psql(
    `create function public.slow_id(i int) returns int language plpgsql immutable as
       $$ begin
            if current_setting('bisman.fast', true) is distinct from 'on' then perform pg_sleep(0.01); end if;
            return i;
          end $$;
     create table public.slow (i int);
     insert into public.slow select generate_series(1, 3000);
     create table public.other (x int);
     insert into public.other values (1);
     set bisman.fast = 'on';
     create index slow_idx on public.slow (public.slow_id(i));`,
    db,
  );
  const folder = `${cluster.dir}/dumps`;
  await Deno.mkdir(folder, { recursive: true });
  await pgDump(cluster, db, `${folder}/bisman_slow.dump`);
  return { folder, db };
}

async function scratchDatabases(cluster: TestCluster): Promise<string[]> {
  const out = await cluster.primary.psql(
    "select datname from pg_database where datname like 'bisman\\_rt\\_%'",
  );
  return out.split("\n").map((l) => l.trim()).filter(Boolean);
}

/** Waits until pg_restore is working inside a scratch database (a backend busy in it). */
async function restoring(cluster: TestCluster): Promise<string> {
  return await waitFor(async () => {
    const out = await cluster.primary.psql(
      "select datname from pg_stat_activity where datname like 'bisman\\_rt\\_%' and state = 'active' limit 1",
    );
    return out.trim() || undefined;
  }, { what: "pg_restore at work in a scratch database", timeoutMs: 30_000 });
}

Deno.test("cancel: a restore test stopped mid-way drops its scratch database and is recorded cancelled", async (t) => {
  await using cluster = await startCluster({ name: "cancel" });
  const { folder, db } = await slowDump(cluster);
  const config = (requiresApproval: boolean) =>
    testConfig(cluster, (doc) => {
      doc.targets.main.primary.database = db;
      doc.targets.main.backups = { dump_folder: { path: folder, pattern: "bisman_*.dump" } };
      doc.targets.main.restore_test = {
        server: { host: "127.0.0.1", port: cluster.primary.port, user: "postgres", sslmode: "disable" },
        allow_on_primary: true,
        requires_approval: requiresApproval,
        jobs: 2,
        verify: [{ name: "slow", sql: "select count(*) from slow" }],
      };
    });
  const withBot = async (requiresApproval: boolean, fn: (tb: TestBot) => Promise<void>) => {
    const tb = await startTestBot(cluster, { config: config(requiresApproval) });
    try {
      await fn(tb);
    } finally {
      await tb.stop();
    }
  };

  await t.step("without approval: /bisman cancel restore-test stops it from another request", async (t) => {
    await withBot(false, async (tb) => {
      const since = Number(tb.slack.messages.at(-1)?.ts ?? 0);
      const started = await tb.command("restore-test main", USERS.alice);
      assert.match(started.body.text, /Working on/);
      const scratch = await restoring(cluster);

      await t.step("an outsider may not stop it", async () => {
        const r = await ask(tb, "cancel restore-test main", USERS.dave);
        assert.match(r.text, /Stopping a restore test is for operators/);
      });

      await t.step("an operator stops it; pg_restore ends and the answer says cancelled", async () => {
        const r = await ask(tb, "cancel restore-test", USERS.bob);
        assert.match(r.text, /Stopping restore test run \d+ of main/);
        // A restore test answers in its message in the channel (slack/answers.ts), not on the response_url.
        const final = await waitFor(
          () =>
            tb.slack.messages.filter((m) => Number(m.ts) > since && !m.thread_ts).map((m) => ({
              text: m.text ?? "",
            }))
              .find((b) => /Restore test of main (cancelled|passed|failed)/.test(b.text)),
          { what: "the restore test's final answer", timeoutMs: 30_000 },
        );
        assert.match(final.text, /Restore test of main cancelled/);
        assert.match(
          final.text,
          /stopped at restoring: cancelled by U0BOB while restoring \(\d+ of \d+ objects restored\)/,
        );
        assert.match(final.text, new RegExp(`scratch database ${scratch} dropped`));
      });

      await t.step(
        "no scratch database is left, and the run is recorded cancelled, with how far it got",
        async () => {
          assert.deepEqual(await scratchDatabases(cluster), []);
          const [row] = await tb.bot.deps.state<{ id: string }[]>`
          select id from bisman_ops.restore_tests order by id desc limit 1`;
          const rec = (await getRestoreTest(tb.bot.deps.state, Number(row.id)))!;
          assert.equal(rec.status, "cancelled");
          assert.equal(rec.scratchDropped, true);
          assert.match(
            rec.error ?? "",
            /restoring: cancelled by U0BOB while restoring \(\d+ of \d+ objects restored\)/,
          );
          const audit = (await tb.bot.deps.audit.rows()).filter((x) => x.action.startsWith("restore_test."));
          assert.deepEqual(audit.map((x) => `${x.action}:${x.outcome}`), [
            "restore_test.stop_requested:ok",
            "restore_test.finished:cancelled",
          ]);
          const again = await ask(tb, "cancel restore-test main", USERS.bob);
          assert.match(again.text, /No restore test of main is running: nothing to stop/);
        },
      );
    });
  });

  await t.step(
    "through the gate: the message offers Stop while it runs; the requester stops it",
    async (t) => {
      await withBot(true, async (tb) => {
        const id = (await ask(tb, "restore-test main", USERS.alice)).id!;
        assert.equal(await tb.click(ACTIONS.approve, id, USERS.carol), 200);
        await restoring(cluster);
        await waitFor(() => /"text":"Stop"/.test(JSON.stringify(tb.approvalMessage(id)?.blocks)), {
          what: "the Stop button on the running request",
        });

        await t.step("an outsider's Stop is refused and nothing stops", async () => {
          const before = tb.slack.ephemerals.length;
          assert.equal(await tb.click(ACTIONS.cancel, id, USERS.dave), 200);
          await ephemeralTo(tb, USERS.dave, /for operators/, before);
          assert.equal((await tb.bot.gate.view(id))!.request.state, "running");
        });

        await t.step(
          "the requester's Stop ends it as cancelled, with its scratch database dropped",
          async () => {
            assert.equal(await tb.click(ACTIONS.cancel, id, USERS.alice), 200);
            await tb.waitForState(id, "cancelled", 30_000);
            const view = (await tb.bot.gate.view(id))!;
            assert.match(
              view.request.summary ?? "",
              /Stopped by alice: restore test of main cancelled by the approval gate's Stop while restoring/,
            );
            assert.match(view.request.summary ?? "", /scratch database dropped/);
            assert.match(tb.approvalMessage(id)!.text!, /stopped while running/);
            assert.deepEqual(await scratchDatabases(cluster), []);
            const actions = (await tb.bot.deps.audit.rows({ requestId: id })).map((x) => x.action)
              .filter((a) => a !== "approval.refused");
            assert.deepEqual(actions.slice(-3), ["op.started", "request.stop_requested", "op.cancelled"]);
            const [row] = await tb.bot.deps.state<{ status: string }[]>`
          select status from bisman_ops.restore_tests order by id desc limit 1`;
            assert.equal(row.status, "cancelled");
          },
        );
      });
    },
  );
});
