import assert from "node:assert/strict";
import { startCluster } from "../../standins/cluster.ts";
import { waitFor } from "../../standins/wait.ts";
import { APPROVER_GROUP, OPS_CHANNEL, TEAM, USERS } from "../support/bot.ts";
import { type BotProcess, spawnBot, writeConfigFile } from "../support/bot_process.ts";
import { SlackStandIn } from "../../standins/slack.ts";

/** Every job but the digest off; the digest every second, so 20 slots take 20 seconds. */
const SCHEDULES = {
  digest: { cron: "* * * * * *" },
  lag_check: { enabled: false },
  backup_status: { enabled: false },
  restore_test: { enabled: false },
  credential_age: { enabled: false },
  slow_query_review: { enabled: false },
  audit_anomaly: { enabled: false },
  cleanup: { enabled: false },
  approval_expiry: { enabled: false },
};

Deno.test("scheduler: three bot processes run each digest slot once, and killing the one mid-run does not stop the next slots", async (t) => {
  await using cluster = await startCluster({ name: "sched-kill" });
  const slack = await SlackStandIn.start({
    teamId: TEAM,
    users: { [USERS.alice]: { name: "alice" }, [USERS.bob]: { name: "bob" } },
    usergroups: { [APPROVER_GROUP]: [] },
  });
  const stateDb = await cluster.createDatabase("state");
  const state = cluster.primary.sql(stateDb);
  const lease = 2;
  const configFile = await writeConfigFile({
    workspace: { team_id: TEAM },
    slack: { ops_channel: OPS_CHANNEL },
    access: { operators: { users: [USERS.alice] }, approvers: { users: [USERS.bob] } },
    targets: {
      main: {
        primary: { host: "127.0.0.1", port: cluster.primary.port, user: "postgres", sslmode: "disable" },
      },
    },
    alerts: { lag_check: { enabled: false } },
    schedules: SCHEDULES,
    scheduler: { lease_seconds: lease, stop_grace_seconds: 1 },
  });
  const env = {
    SLACK_SIGNING_SECRET: slack.signingSecret,
    SLACK_BOT_TOKEN: slack.botToken,
    SLACK_API_URL: slack.apiUrl,
    DATABASE_URL: cluster.primary.url({ database: stateDb }),
  };
  const procs: BotProcess[] = [];
  const digests = () =>
    slack.messages.filter((m) => m.channel === OPS_CHANNEL && /^Daily digest/.test(m.text ?? ""));
  const runner = (p: BotProcess) => new RegExp(`:${p.pid}:`);
  try {
    // The leader-to-be hangs inside its first digest run (the scheduler.in_job fault point) until killed.
    const [doomed, ...survivors] = await Promise.all([
      spawnBot({ configFile, env: { ...env, BISMAN_FAILPOINT: "scheduler.in_job" }, readyTimeoutMs: 60_000 }),
      spawnBot({ configFile, env, readyTimeoutMs: 60_000 }),
      spawnBot({ configFile, env, readyTimeoutMs: 60_000 }),
    ]);
    procs.push(doomed, ...survivors);

    let killedAt = 0;
    await t.step(
      "the replica that claims a slot hangs mid-run, and the others skip while its lease lives",
      async () => {
        await doomed.waitForLine(/failpoint reached.*scheduler\.in_job/, 60_000);
        // Its heartbeat keeps the lease alive, so the other replicas record the next slots as skipped.
        await waitFor(async () => {
          const [r] = await state<{ n: number }[]>`
          select count(*)::int as n from bisman_ops.job_runs where job = 'digest' and outcome = 'skipped'`;
          return r.n >= 2;
        }, { timeoutMs: 10_000, what: "slots skipped while the hung run's lease lives" });
        await doomed.kill();
        killedAt = Date.now();
      },
    );

    await t.step("after the kill the lease lapses and the next 20 slots run on the survivors", async () => {
      await waitFor(async () => {
        const [r] = await state<{ n: number }[]>`
          select count(*)::int as n from bisman_ops.job_runs
           where job = 'digest' and outcome = 'ok' and slot > ${new Date(killedAt)}`;
        return r.n >= 20;
      }, { timeoutMs: 45_000, intervalMs: 250, what: "20 digest slots after the kill" });
      for (const p of survivors) await p.stop();
    });

    await t.step("every slot ran once, and every run posted exactly one digest", async () => {
      const rows = await state<{ slot: Date; runner: string; outcome: string; error: string | null }[]>`
        select slot, runner, outcome, error from bisman_ops.job_runs where job = 'digest' order by slot`;
      const ok = rows.filter((r) => r.outcome === "ok");
      assert.equal(digests().length, ok.length, "one Slack message per successful run, none twice");
      const afterKill = ok.filter((r) => new Date(r.slot).getTime() > killedAt);
      assert.ok(afterKill.length >= 20);
      for (const r of afterKill) {
        assert.ok(survivors.some((p) => runner(p).test(r.runner)), `run after the kill by ${r.runner}`);
      }
      // The slots after the kill are consecutive seconds: each was claimed by one survivor, none lost.
      const seconds = afterKill.map((r) => new Date(r.slot).getTime() / 1000);
      const span = seconds.at(-1)! - seconds[0] + 1;
      assert.ok(seconds.length >= span - 2, `${seconds.length} runs over ${span} seconds`);
      // The first run after the kill came once the lease had lapsed, not later than a slot after that.
      const first = new Date(afterKill[0].slot).getTime();
      assert.ok(first - killedAt <= (lease + 2) * 1000, `first slot ${first - killedAt} ms after the kill`);
    });

    await t.step(
      "the dead replica's run is recorded interrupted and posted once, then the recovery once",
      async () => {
        const dead = await state<{ runner: string; error: string | null }[]>`
        select runner, error from bisman_ops.job_runs where job = 'digest' and outcome = 'interrupted'`;
        assert.equal(dead.length, 1);
        assert.match(dead[0].runner, runner(doomed));
        assert.match(dead[0].error ?? "", /stopped renewing its lease/);
        const posts = slack.messages.filter((m) =>
          /^:x: Job digest run \d+ .*was interrupted/.test(m.text ?? "")
        );
        assert.equal(posts.length, 1);
        assert.equal(slack.messages.filter((m) => /Job digest succeeded again/.test(m.text ?? "")).length, 1);
      },
    );
  } finally {
    for (const p of procs) await p.kill();
    await Deno.remove(configFile).catch(() => undefined);
    await slack.stop();
  }
});
