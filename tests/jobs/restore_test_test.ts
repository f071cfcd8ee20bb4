import assert from "node:assert/strict";
import { startCluster } from "../../standins/cluster.ts";
import { pgDump } from "../support/dumps.ts";
import { testConfig } from "../support/bot.ts";
import { testOpDeps } from "../support/op_deps.ts";
import type { AppDeps } from "../../core/deps.ts";
import type { Reply } from "../../views/reply.ts";
import type { JobContext, PreviousRun } from "../../jobs/types.ts";
import { backupStatusJob, restoreTestJob } from "../../jobs/restore_test.ts";

Deno.test("backup_status and restore_test jobs: post when backups get worse, restore-test every scheduled target", async (t) => {
  await using cluster = await startCluster({ name: "restore-jobs" });
  const src = await cluster.createDatabase("bisman");
  await cluster.primary.psql(
    `create table clients(id bigint primary key, name text);
     create table payment_requests(id bigint primary key, client_id bigint references clients, amount numeric);
     insert into clients select g, 'c' || g from generate_series(1, 1000) g;
     insert into payment_requests select g, 1 + g % 1000, g from generate_series(1, 3000) g;`,
    src,
  );
  const dumps = `${cluster.dir}/dumps`;
  await Deno.mkdir(dumps);
  const dump = `${dumps}/bisman_20260101.dump`;
  await pgDump(cluster, src, dump);

  const server = { host: "127.0.0.1", port: cluster.primary.port, database: "postgres", user: "postgres" };
  const config = testConfig(cluster, (doc) => {
    const main = doc.targets.main;
    main.primary.database = src;
    main.backups = { dump_folder: { path: dumps, pattern: "bisman_*.dump", retention_days: 0 } };
    main.restore_test = {
      server: { ...server, sslmode: "disable" },
      allow_on_primary: true,
      requires_approval: false,
    };
    // A second target whose restore tests need approval: the schedule cannot run those.
    doc.targets.gated = {
      primary: { ...main.primary },
      backups: { dump_folder: { path: dumps, pattern: "bisman_*.dump", retention_days: 0 } },
      restore_test: { allow_on_primary: true },
    };
  });
  const deps = await testOpDeps(cluster, { config, migrate: true });
  const posted: Reply[] = [];
  const ctx = (job: string, over: Partial<JobContext> = {}): JobContext => ({
    deps: deps as unknown as AppDeps,
    job,
    runId: 1,
    slot: new Date(),
    trigger: "schedule",
    log: deps.log,
    signal: new AbortController().signal,
    post: (reply) => {
      posted.push(reply);
      return Promise.resolve({ channel: "C0OPS", ts: `${posted.length}.000` });
    },
    services: {},
    ...over,
  });
  const previous = (details: Record<string, unknown>): PreviousRun => ({
    id: 1,
    slot: new Date(),
    outcome: "ok",
    level: "ok",
    details,
    finishedAt: new Date(),
  });
  try {
    let firstDetails: Record<string, unknown> = {};
    await t.step(
      "backup_status: the first run posts the targets that are not ok, the same state again is quiet",
      async () => {
        // A fresh, readable dump, but no restore test has passed yet: a warning for both targets.
        const first = await backupStatusJob.run(ctx("backup_status"));
        assert.equal(first.level, "warning");
        assert.deepEqual(first.details, { severity: { main: "warning", gated: "warning" } });
        assert.equal(posted.length, 1);
        assert.match(posted[0].text, /Backups of main: WARNING[\s\S]*no restore test of main has passed yet/);
        firstDetails = first.details!;
        const again = await backupStatusJob.run(ctx("backup_status", { previous: previous(firstDetails) }));
        assert.equal(again.message, undefined);
        assert.equal(posted.length, 1, "nothing new to say");
      },
    );

    await t.step("backup_status: a truncated newest dump makes it critical, and that is posted", async () => {
      const bytes = await Deno.readFile(dump);
      const cut = `${dumps}/bisman_20260102.dump`;
      await Deno.writeFile(cut, bytes.slice(0, Math.floor(bytes.length * 0.5)));
      try {
        const worse = await backupStatusJob.run(ctx("backup_status", { previous: previous(firstDetails) }));
        assert.equal(worse.level, "critical");
        assert.match(worse.summary, /worse: main, gated/);
        assert.equal(posted.length, 2);
        assert.match(
          posted[1].text,
          /\[critical\] newest dump readable: bisman_20260102\.dump is truncated or corrupt/,
        );
      } finally {
        await Deno.remove(cut);
      }
    });

    await t.step(
      "restore_test: tests every scheduled target, posts each result, skips those needing approval",
      async () => {
        const res = await restoreTestJob.run(ctx("restore_test"));
        assert.equal(res.level, "warning", res.summary);
        assert.match(
          res.summary,
          /^main: passed; skipped gated \(needs approval: ask with \/bisman restore-test gated\)$/,
        );
        const runs = res.details!.runs as { target: string; passed: boolean }[];
        assert.deepEqual(runs.map((x) => [x.target, x.passed]), [["main", true]]);
        assert.match(posted.at(-1)!.text, /Restore test of main passed/);
        const [row] = await deps.state<{ trigger: string; requested_by: string }[]>`
        select trigger, requested_by from bisman_ops.restore_tests order by id desc limit 1`;
        assert.deepEqual({ ...row }, { trigger: "schedule", requested_by: "scheduler" });
      },
    );

    await t.step("backup_status: after the passing test, a manual run shows main ok", async () => {
      const res = await backupStatusJob.run(ctx("backup_status", { trigger: "manual" }));
      assert.deepEqual(res.details, { severity: { main: "ok", gated: "warning" } });
      assert.match(posted.at(-1)!.text, /Backups of main: OK[\s\S]*Last proven restore: today/);
    });
  } finally {
    await deps.close();
  }
});
