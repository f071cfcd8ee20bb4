import assert from "node:assert/strict";
import { startCluster } from "../../standins/cluster.ts";
import { pgDump } from "../support/dumps.ts";
import { testConfig } from "../support/bot.ts";
import { testOpDeps } from "../support/op_deps.ts";
import type { AppDeps } from "../../core/deps.ts";
import type { Reply } from "../../views/reply.ts";
import type { JobContext, JobResult, PreviousRun } from "../../jobs/types.ts";
import { backupStatusJob } from "../../jobs/periodic.ts";

/**
 * The hourly backup_status job as the scheduler runs it (jobs/periodic.ts, the definition jobs/registry.ts
 * registers): each run is handed the previous run, as the scheduler does, and posts only what changed.
 */
Deno.test("backup_status job: quiet while the backups stay as they were, posts a truncated newest dump once, and its recovery", async (t) => {
  await using cluster = await startCluster({ name: "backup-status-job" });
  const src = await cluster.createDatabase("bisman");
  await cluster.primary.psql(
    `create table clients(id bigint primary key, name text);
     insert into clients select g, 'c' || g from generate_series(1, 1000) g;`,
    src,
  );
  const dumps = `${cluster.dir}/dumps`;
  await Deno.mkdir(dumps);
  const dump = `${dumps}/bisman_20260101.dump`;
  await pgDump(cluster, src, dump);
  const config = testConfig(cluster, (doc) => {
    doc.targets.main.primary.database = src;
    doc.targets.main.backups = { dump_folder: { path: dumps, pattern: "bisman_*.dump", retention_days: 0 } };
  });
  const deps = await testOpDeps(cluster, { config, migrate: true });
  const posted: Reply[] = [];
  let last: JobResult | undefined;
  /** One scheduled run, given the previous one's details as the scheduler gives them. */
  const run = async () => {
    const previous: PreviousRun | undefined = last && {
      id: 1,
      slot: new Date(),
      outcome: "ok",
      level: last.level ?? null,
      details: last.details ?? {},
      finishedAt: new Date(),
    };
    const ctx: JobContext = {
      deps: deps as unknown as AppDeps,
      job: "backup_status",
      runId: 1,
      slot: new Date(),
      trigger: "schedule",
      log: deps.log,
      signal: new AbortController().signal,
      post: (reply) => {
        posted.push(reply);
        return Promise.resolve({ channel: "C0OPS", ts: `${posted.length}.000` });
      },
      previous,
      services: {},
    };
    last = await backupStatusJob.run(ctx);
    return last;
  };
  try {
    await t.step(
      "a fresh, readable dump: ok, and nothing to post (restore tests are not this job's)",
      async () => {
        const first = await run();
        assert.equal(first.level, "ok", first.summary);
        assert.equal(posted.length, 0, posted.map((p) => p.text).join("\n"));
        assert.equal((await run()).level, "ok");
        assert.equal(posted.length, 0);
      },
    );

    const cut = `${dumps}/bisman_20260102.dump`;
    await t.step(
      "a truncated newest dump: critical, posted once with the reason; the next run is quiet",
      async () => {
        const bytes = await Deno.readFile(dump);
        await Deno.writeFile(cut, bytes.slice(0, Math.floor(bytes.length * 0.5)));
        const worse = await run();
        assert.equal(worse.level, "critical", worse.summary);
        assert.equal(posted.length, 1);
        assert.match(posted[0].text, /^Backup status: main ok → critical/);
        assert.match(JSON.stringify(posted[0].blocks), /bisman_20260102\.dump is truncated or corrupt/);
        assert.equal((await run()).level, "critical");
        assert.equal(posted.length, 1, "nothing new to say");
      },
    );

    await t.step("the truncated dump gone: ok again, and the recovery is posted", async () => {
      await Deno.remove(cut);
      const back = await run();
      assert.equal(back.level, "ok", back.summary);
      assert.equal(posted.length, 2);
      assert.match(posted[1].text, /^Backup status: main critical → ok/);
    });
  } finally {
    await deps.close();
  }
});
