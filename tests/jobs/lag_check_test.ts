import assert from "node:assert/strict";
import { startCluster } from "../../standins/cluster.ts";
import { OPS_CHANNEL, startTestBot, testConfig } from "../support/bot.ts";
import { waitFor } from "../../standins/wait.ts";
import { ALERT_ACTIONS } from "../../views/actions.ts";

Deno.test("the scheduled lag check opens one thread when paused replay lets lag grow, resolves it on resume, and ignores an idle primary", async (t) => {
  await using cluster = await startCluster({ name: "lag-check", replica: true });
  // The bot's own state (job runs, alert rows) lives on another server: written on the target, it would keep
  // the target's primary busy, and the test needs a primary that is really idle.
  await using stateCluster = await startCluster({ name: "lag-check-state" });
  const replica = cluster.replica!;
  const config = testConfig(cluster, (doc) => {
    doc.thresholds = { lag: { bytes_warning: 1024 * 1024, seconds_warning: 2 } };
    doc.alerts = { lag_check: { enabled: true, interval_seconds: 1 }, slack_per_channel_per_second: 50 };
  });
  const tb = await startTestBot(cluster, {
    config,
    env: { DATABASE_URL: stateCluster.primary.url({ database: await stateCluster.createDatabase("state") }) },
  });
  const primary = cluster.primary.sql();
  const runs = () => tb.bot.deps.metrics.value("bisman_lag_checks_total");
  const lagThreads = () =>
    tb.slack.messages.filter((m) =>
      m.channel === OPS_CHANNEL && !m.thread_ts && /ReplicationLag|ReplicationFailure/.test(m.text ?? "")
    );
  try {
    await primary`create table lagcheck_t (id serial primary key, pad text)`;
    await primary`insert into lagcheck_t (pad) values ('x')`;
    await cluster.waitForReplay();

    await t.step(
      "an idle primary raises nothing, although the last replay grows older than 2 s",
      async () => {
        const start = runs();
        const rsql = replica.sql();
        await waitFor(async () => {
          const [r] =
            await rsql`select extract(epoch from now() - pg_last_xact_replay_timestamp())::float8 as s`;
          return runs() >= start + 3 && r.s > 3;
        }, {
          timeoutMs: 20_000,
          intervalMs: 250,
          what: "three checks on an idle primary, last replay over 3 s old",
        });
        assert.equal(lagThreads().length, 0);
        assert.ok(
          tb.bot.deps.metrics.value("bisman_replication_lag_bytes", {
            target: "main",
            replica: "replica1",
          }) === 0,
        );
      },
    );

    await t.step("paused replay while writing: the scheduled check opens exactly one thread", async () => {
      await replica.psql("select pg_wal_replay_pause()");
      const parent = await waitFor(async () => {
        await primary`insert into lagcheck_t (pad) select repeat('y', 500) from generate_series(1, 2000)`;
        return lagThreads()[0];
      }, { timeoutMs: 30_000, intervalMs: 300, what: "the HighReplicationLag thread" });
      assert.match(
        parent.text ?? "",
        /^FIRING: HighReplicationLag: Replication lag of main\/replica1 is over the warning threshold/,
      );
      const actions = (parent.blocks as any[]).find((b) => b.type === "actions").elements.map((e: any) =>
        e.action_id
      );
      assert.deepEqual(actions, [ALERT_ACTIONS.show_lag, ALERT_ACTIONS.promote_replica]);
      // Lag keeps growing through several more checks: still one thread, not edited, nothing in it.
      const seen = runs();
      await waitFor(async () => {
        await primary`insert into lagcheck_t (pad) select repeat('z', 500) from generate_series(1, 2000)`;
        return runs() >= seen + 3;
      }, { timeoutMs: 20_000, intervalMs: 300, what: "three more checks while lagging" });
      await tb.bot.alerts.idle();
      assert.equal(lagThreads().length, 1);
      assert.equal(parent.edits, 0);
      assert.equal(tb.slack.messages.filter((m) => m.thread_ts === parent.ts).length, 0);
    });

    await t.step("resumed replay: the check resolves the same thread", async () => {
      await replica.psql("select pg_wal_replay_resume()");
      await cluster.waitForReplay();
      const parent = lagThreads()[0];
      await waitFor(() => /^RESOLVED/.test(parent.text ?? ""), {
        timeoutMs: 20_000,
        what: "the thread to resolve",
      });
      await waitFor(
        () => tb.slack.messages.find((m) => m.thread_ts === parent.ts && /^Resolved at/.test(m.text ?? "")),
        {
          what: "the resolved note",
        },
      );
      assert.equal(lagThreads().length, 1);
      const audit = (await tb.bot.deps.audit.rows()).filter((r) => r.action === "lag_check.changed");
      assert.deepEqual(audit.map((r) => [r.details.opened, r.details.resolved]), [
        [["main:replica1"], []],
        [[], ["main:replica1"]],
      ]);
    });

    await t.step(
      "the replica stops: ReplicationFailure opens a thread of its own; nothing is written into the resolved lag thread",
      async () => {
        const lagParent = lagThreads()[0];
        const repliesBefore = tb.slack.messages.filter((m) => m.thread_ts === lagParent.ts).length;
        const editsBefore = lagParent.edits;
        await replica.stop("fast");
        const failure = await waitFor(
          () => lagThreads().find((m) => /^FIRING: ReplicationFailure/.test(m.text ?? "")),
          { timeoutMs: 30_000, what: "the ReplicationFailure thread" },
        );
        assert.notEqual(failure.ts, lagParent.ts, "a new parent, at the bottom of the channel");
        assert.equal(
          tb.slack.messages.filter((m) => m.channel === OPS_CHANNEL && !m.thread_ts).at(-1)?.ts,
          failure.ts,
        );
        await tb.bot.alerts.idle();
        assert.equal(tb.slack.messages.filter((m) => m.thread_ts === lagParent.ts).length, repliesBefore);
        assert.equal(lagParent.edits, editsBefore, "the old lag thread is left as it was");
        assert.match(lagParent.text ?? "", /^RESOLVED: HighReplicationLag/);
      },
    );
  } finally {
    await tb.stop();
  }
});
