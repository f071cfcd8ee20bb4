import assert from "node:assert/strict";
import { startCluster, type TestCluster } from "../../standins/cluster.ts";
import { waitFor } from "../../standins/wait.ts";
import { OPS_CHANNEL, startTestBot, type TestBot, testConfig, USERS } from "../support/bot.ts";
import { SlackStandIn } from "../../standins/slack.ts";
import { connectState } from "../../core/state_db.ts";
import { migrate } from "../../core/migrate.ts";
import { claimSlot, finishRun, readRuns, recordJobState } from "../../jobs/run_store.ts";
import type { JobDefinition } from "../../jobs/types.ts";
import { OpsError } from "../../core/errors.ts";
import { type Config, ConfigError, parseConfig } from "../../core/config.ts";
import { intervalCron, resolveSchedules } from "../../jobs/scheduler.ts";
import { allJobs } from "../../jobs/registry.ts";

/** Every second: fast enough for 20+ slots in a test, and croner's 6-field patterns take seconds first. */
const EVERY_SECOND = "* * * * * *";

async function metricsOf(tb: TestBot): Promise<string> {
  return await (await fetch(`${tb.bot.url}/metrics`)).text();
}

function metricValue(text: string, series: string): number | undefined {
  const line = text.split("\n").find((l) => l.startsWith(`${series} `));
  return line ? Number(line.slice(series.length + 1)) : undefined;
}

// One cluster for the whole file (each test its own databases); the last test stops it.
let shared: Promise<TestCluster> | undefined;
const sharedCluster = () => shared ??= startCluster({ name: "sched" });

async function startSlack(): Promise<SlackStandIn> {
  return await SlackStandIn.start({
    teamId: "T0TEST",
    users: { [USERS.alice]: { name: "alice" }, [USERS.bob]: { name: "bob" }, [USERS.dave]: { name: "dave" } },
  });
}

Deno.test("scheduler: three bots sharing one state database run each slot exactly once", async (t) => {
  const cluster = await sharedCluster();
  const slack = await startSlack();
  const stateDb = await cluster.createDatabase("shared_state");
  const calls: { slot: string; bot: number }[] = [];
  const probe = (bot: number): JobDefinition => ({
    name: "probe",
    summary: "records which bot ran which slot",
    defaultCron: EVERY_SECOND,
    destructive: false,
    run: (ctx) => {
      calls.push({ slot: ctx.slot.toISOString(), bot });
      return Promise.resolve({ summary: `bot ${bot}` });
    },
  });
  const config = testConfig(cluster, (doc) => {
    doc.scheduler = { lease_seconds: 5 };
  });
  const bots: TestBot[] = [];
  try {
    for (const i of [0, 1, 2]) {
      bots.push(
        await startTestBot(cluster, {
          config,
          slack,
          env: { DATABASE_URL: cluster.primary.url({ database: stateDb }) },
          start: { jobs: [probe(i)], runnerId: `bot${i}` },
        }),
      );
    }
    const state = cluster.primary.sql(stateDb);

    await t.step("at least 20 slots are run while all three bots race for each", async () => {
      await waitFor(async () => {
        const [r] =
          await state`select count(*)::int as n from bisman_ops.job_runs where job = 'probe' and outcome = 'ok'`;
        return r.n >= 21;
      }, { timeoutMs: 45_000, intervalMs: 200, what: "21 probe runs" });
    });
    // Stop before counting, so no run is half-way through.
    for (const b of bots) await b.bot.scheduler.stop();
    const perBotMetrics = await Promise.all(bots.map(metricsOf));

    await t.step("each recorded slot ran exactly once, by the bot its record names", async () => {
      const rows = await state<{ slot: Date; runner: string; outcome: string }[]>`
        select slot, runner, outcome from bisman_ops.job_runs where job = 'probe' order by slot`;
      const ok = rows.filter((r) => r.outcome === "ok");
      assert.ok(ok.length >= 21, `${ok.length} ok runs`);
      assert.equal(calls.length, ok.length, "one job call per recorded run");
      const bySlot = new Map<string, number[]>();
      for (const c of calls) bySlot.set(c.slot, [...(bySlot.get(c.slot) ?? []), c.bot]);
      for (const [slot, who] of bySlot) assert.equal(who.length, 1, `slot ${slot} ran ${who.length} times`);
      for (const r of ok) {
        const slot = new Date(r.slot).toISOString();
        assert.deepEqual(bySlot.get(slot), [Number(r.runner.slice(3))], `slot ${slot} ran where recorded`);
        assert.equal(
          new Date(r.slot).getMilliseconds(),
          0,
          "the slot is croner's scheduled second, not the fire time",
        );
      }
      // Every slot is a scheduled second, so consecutive runs are whole seconds apart.
      for (let i = 1; i < ok.length; i++) {
        const gap = new Date(ok[i].slot).getTime() - new Date(ok[i - 1].slot).getTime();
        assert.ok(gap >= 1000 && gap % 1000 === 0, `gap of ${gap} ms between slots`);
      }
    });

    await t.step("every bot raced for the slots: one claimed each, the others found it taken", () => {
      const claimed = perBotMetrics.map((m) =>
        metricValue(m, 'bisman_job_claims_total{bisman_job="probe",result="claimed"}') ?? 0
      );
      const taken = perBotMetrics.map((m) =>
        metricValue(m, 'bisman_job_claims_total{bisman_job="probe",result="taken"}') ?? 0
      );
      const slots = new Set(calls.map((c) => c.slot)).size;
      assert.equal(claimed.reduce((a, b) => a + b, 0), slots);
      // Each bot schedules every slot; a bot whose timer fires late on a busy machine lets croner skip a
      // second (seen: 17 of 21 at a load of 14), so "every" is checked as "most": the claim rule is what
      // must hold for every slot, and it is checked above and below.
      for (const [i, n] of claimed.entries()) {
        assert.ok(
          n + taken[i] >= Math.ceil(slots * 0.75),
          `bot ${i} tried ${n + taken[i]} of ${slots} slots`,
        );
      }
      assert.ok(taken.reduce((a, b) => a + b, 0) >= slots, "the losing bots saw the slots as taken");
    });

    await t.step("/metrics of every replica shows the job's last success", () => {
      for (const m of perBotMetrics) {
        const last = metricValue(m, 'bisman_job_last_success_timestamp_seconds{bisman_job="probe"}');
        assert.ok(last && Math.abs(last - Date.now() / 1000) < 60, `last success ${last}`);
        assert.match(m, /bisman_job_failing\{bisman_job="probe"\} 0/);
      }
    });
  } finally {
    for (const b of bots) await b.stop();
    await slack.stop();
  }
});

Deno.test("scheduler: a failing job posts once, not every run, and once more when it recovers", async (t) => {
  const cluster = await sharedCluster();
  let runs = 0;
  let failUntil = 3;
  const flaky: JobDefinition = {
    name: "flaky",
    summary: "fails its first runs",
    defaultCron: EVERY_SECOND,
    destructive: false,
    run: () => {
      runs++;
      if (runs <= failUntil) {
        throw new OpsError("unreachable", `prod/primary does not answer (attempt ${runs})`);
      }
      return Promise.resolve({ summary: "fine" });
    },
  };
  const tb = await startTestBot(cluster, { start: { jobs: [flaky] } });
  try {
    const posts = () =>
      tb.slack.messages.filter((m) => m.channel === OPS_CHANNEL && /flaky/.test(m.text ?? ""));

    await t.step("three failed runs make one post", async () => {
      await waitFor(() => runs >= 3, { timeoutMs: 15_000, what: "three failing runs" });
      await waitFor(
        async () => (await readRuns(tb.bot.deps.state, "flaky", { outcomes: ["failed"] })).length >= 3,
        {
          what: "three failed run records",
        },
      );
      const failed = posts().filter((m) => /^:x: Job flaky failed/.test(m.text ?? ""));
      assert.equal(failed.length, 1, failed.map((m) => m.text).join("\n"));
      assert.match(failed[0].text!, /Job flaky failed .*attempt 1/);
      const m = await metricsOf(tb);
      assert.equal(metricValue(m, 'bisman_job_failures_total{bisman_job="flaky"}'), 3);
    });

    await t.step("the first success posts the recovery once; later successes post nothing", async () => {
      await waitFor(
        async () => (await readRuns(tb.bot.deps.state, "flaky", { outcomes: ["ok"] })).length >= 3,
        {
          timeoutMs: 15_000,
          what: "three successful runs",
        },
      );
      const recovered = posts().filter((m) => /succeeded again/.test(m.text ?? ""));
      assert.equal(recovered.length, 1);
      assert.match(recovered[0].text!, /after 3 failed runs/);
      assert.equal(posts().length, 2, "one failure post and one recovery post in all");
      const m = await metricsOf(tb);
      assert.match(m, /bisman_job_failing\{bisman_job="flaky"\} 0/);
      assert.ok((metricValue(m, 'bisman_job_last_success_timestamp_seconds{bisman_job="flaky"}') ?? 0) > 0);
    });

    await t.step("failing again after a recovery is a new streak, posted once", async () => {
      failUntil = runs + 2;
      await waitFor(() => runs >= failUntil + 2, {
        timeoutMs: 15_000,
        what: "two more failures and a success",
      });
      await waitFor(() => posts().filter((m) => /succeeded again/.test(m.text ?? "")).length === 2, {
        what: "second recovery post",
      });
      assert.equal(posts().filter((m) => /^:x: Job flaky failed/.test(m.text ?? "")).length, 2);
    });
  } finally {
    await tb.stop();
  }
});

Deno.test("scheduler: stop() lets a running job end and records it interrupted, without a failure post", async () => {
  const cluster = await sharedCluster();
  let started = 0;
  const slow: JobDefinition = {
    name: "slow",
    summary: "waits until the bot stops",
    defaultCron: EVERY_SECOND,
    destructive: false,
    run: (ctx) => {
      started++;
      return new Promise((_, reject) =>
        ctx.signal.addEventListener("abort", () => reject(new OpsError("conflict", "stopping")))
      );
    },
  };
  const tb = await startTestBot(cluster, { start: { jobs: [slow] } });
  const state = tb.bot.deps.state;
  try {
    await waitFor(() => started === 1, { what: "the slow job to start" });
    await tb.bot.scheduler.stop();
    const runs = await readRuns(state, "slow");
    assert.equal(runs.length, 1, "croner's protection kept later slots from starting a second run");
    assert.equal(runs[0].outcome, "interrupted");
    assert.match(runs[0].error ?? "", /Stopped with the bot/);
    assert.equal(tb.slack.messages.filter((m) => /slow/.test(m.text ?? "")).length, 0);
  } finally {
    await tb.stop();
  }
});

Deno.test("scheduler: a job that ignores its stop signal holds the bot's stop() no longer than the shutdown bound", async () => {
  const cluster = await sharedCluster();
  let started = 0;
  let release: () => void = () => {};
  // Stalled like a query on a pooled connection to a target that stopped answering: the signal is not heard.
  const deaf: JobDefinition = {
    name: "deaf",
    summary: "waits until released, whatever the signal says",
    defaultCron: EVERY_SECOND,
    destructive: false,
    run: () => {
      started++;
      return new Promise((r) => (release = () => r({ summary: "released" })));
    },
  };
  // scheduler.stop_grace_seconds keeps its default of 10 s; the bot's bound is 1 s.
  const tb = await startTestBot(cluster, { start: { jobs: [deaf] } });
  try {
    await waitFor(() => started === 1, { what: "the deaf job to start" });
    const t0 = performance.now();
    const { unfinished, jobs } = await tb.bot.stop({ graceMs: 1_000 });
    const took = performance.now() - t0;
    // The bound (1 s) and the audit floor (2 s) at most, with room for a loaded machine; before, the jobs'
    // wait ran its own 10 s whatever the bound.
    assert.ok(took < 6_000, `stop() took ${Math.round(took)} ms`);
    assert.equal(unfinished, 0, "a job left running is not a request's work");
    assert.equal(jobs, 1, "but it is counted, and the pools it still queries are left open");
    assert.ok(tb.logs.some((l) => l.includes("stopping with work still running")));
    assert.ok(!tb.logs.some((l) => l.includes("stopping: the approval gate, alert posting and the pools")));
    const [run] = await readRuns(tb.bot.deps.state, "deaf");
    assert.equal(run?.outcome, "interrupted", "the run still going is recorded interrupted");
    assert.match(run.error ?? "", /stopped while this run was going/);
  } finally {
    release();
    await tb.stop();
  }
});

Deno.test("run_store claimSlot(): one claim per slot, skips while another run is alive, takes over a lapsed lease", async (t) => {
  const cluster = await sharedCluster();
  const state = connectState(cluster.primary.url({ database: await cluster.createDatabase("claims") }), {
    max: 4,
  });
  try {
    await migrate(state);
    const slot = (s: number) => new Date(Date.UTC(2026, 0, 1, 0, 0, s));
    const base = { job: "j", trigger: "schedule" as const, leaseSeconds: 2 };

    await t.step("of three concurrent claims of one slot, exactly one wins", async () => {
      const claims = await Promise.all(
        ["a", "b", "c"].map((runner) => claimSlot(state, { ...base, slot: slot(0), runner })),
      );
      assert.deepEqual(claims.map((c) => c.status).sort(), ["claimed", "taken", "taken"]);
    });

    await t.step("the next slot, while the first run's lease is alive, is recorded as skipped", async () => {
      const c = await claimSlot(state, { ...base, slot: slot(1), runner: "b" });
      assert.equal(c.status, "skipped");
      assert.equal(c.status === "skipped" && c.blockedBy.runner, "a");
    });

    await t.step(
      "once the lease lapses, the next slot runs and the dead run is recorded interrupted",
      async () => {
        const c = await waitFor(async () => {
          const r = await claimSlot(state, { ...base, slot: new Date(), runner: "c" });
          return r.status === "claimed" ? r : undefined;
        }, { timeoutMs: 8000, intervalMs: 300, what: "a claim after the lease lapsed" });
        const runs = await readRuns(state, "j");
        const dead = runs.find((r) => r.runner === "a")!;
        assert.equal(dead.outcome, "interrupted");
        assert.match(dead.error ?? "", /stopped renewing its lease/);
        assert.deepEqual(
          c.interrupted.map((i) => i.id),
          [dead.id],
          "the claim that took over reports the dead run",
        );
        await finishRun(state, c.id, { outcome: "ok", summary: "done" });
      },
    );

    await t.step("recordJobState() reports the start of a failing streak and its end once each", async () => {
      const seq = [false, false, true, true, false];
      const changes = [];
      for (const ok of seq) changes.push(await recordJobState(state, "j", ok));
      assert.deepEqual(changes.map((c) => c.startedFailing), [true, false, false, false, true]);
      assert.deepEqual(changes.map((c) => c.recovered), [false, false, true, false, false]);
      assert.equal(changes[2].failures, 2);
    });
  } finally {
    await state.end({ timeout: 2 });
  }
});

Deno.test("resolveSchedules() and the config: defaults from the seed, overrides per job, errors that name the key", () => {
  const doc = (patch: Record<string, unknown> = {}) => ({
    workspace: { team_id: "T0TEST" },
    slack: { ops_channel: "C0OPS" },
    access: { operators: { users: [] }, approvers: { users: [] } },
    targets: { main: { primary: { host: "127.0.0.1", user: "postgres" } } },
    ...patch,
  });
  const jobs = allJobs();
  const byName = (config: Config) =>
    Object.fromEntries(resolveSchedules({ config }, jobs).map((s) => [s.name, s]));
  const seed = byName(parseConfig(doc()));
  assert.deepEqual(
    Object.fromEntries(Object.entries(seed).map(([n, s]) => [n, s.cron])),
    {
      digest: "0 9 * * *",
      lag_check: "0 * * * * *",
      backup_status: "0 * * * *",
      restore_test: "0 3 1 * *",
      credential_age: "0 8 * * *",
      slow_query_review: "0 9 * * 1",
      audit_anomaly: "0 * * * *",
      cleanup: "30 3 * * *",
      approval_expiry: "* * * * *",
      audit_anchor: "0 6 * * *",
    },
  );
  assert.ok(Object.values(seed).every((s) => s.timezone === "UTC" && s.enabled));
  assert.equal(seed.cleanup.destructive, true);

  const custom = byName(parseConfig(doc({
    scheduler: { timezone: "Europe/Berlin" },
    schedules: { digest: { cron: "30 8 * * 1-5", timezone: "Asia/Almaty" }, cleanup: { enabled: false } },
    alerts: { lag_check: { enabled: false, interval_seconds: 15 } },
  })));
  assert.deepEqual([custom.digest.cron, custom.digest.timezone], ["30 8 * * 1-5", "Asia/Almaty"]);
  assert.equal(custom.backup_status.timezone, "Europe/Berlin");
  assert.equal(custom.cleanup.enabled, false);
  assert.deepEqual([custom.lag_check.cron, custom.lag_check.enabled], ["*/15 * * * * *", false]);

  assert.throws(
    () =>
      resolveSchedules({ config: parseConfig(doc({ schedules: { digets: { cron: "0 9 * * *" } } })) }, jobs),
    (e: Error) =>
      e instanceof ConfigError && /schedules\.digets: no such job; the jobs are .*digest/.test(e.message),
  );
  assert.throws(
    () => parseConfig(doc({ schedules: { digest: { cron: "every morning" } } })),
    /schedules\.digest\.cron: a cron pattern/,
  );
  assert.throws(
    () => parseConfig(doc({ schedules: { digest: { timezone: "Mars/Olympus" } } })),
    /schedules\.digest\.timezone: an IANA time zone/,
  );
  assert.deepEqual([1, 5, 45, 60, 90, 300, 3600, 7200, 86400].map(intervalCron), [
    "* * * * * *",
    "*/5 * * * * *",
    "*/30 * * * * *",
    "0 * * * * *",
    "0 * * * * *",
    "0 */5 * * * *",
    "0 0 * * * *",
    "0 0 */2 * * *",
    "0 0 0 * * *",
  ]);
});

Deno.test("scheduler tests: stop the shared cluster", async () => {
  if (shared) await (await shared).stop();
});
