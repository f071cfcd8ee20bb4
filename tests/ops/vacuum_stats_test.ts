import assert from "node:assert/strict";
import { startCluster } from "../../standins/cluster.ts";
import { testConfig } from "../support/bot.ts";
import { testOpDeps } from "../support/op_deps.ts";
import { waitFor } from "../../standins/wait.ts";
import { judgeTable, readVacuumStats, vacuumStats } from "../../ops/vacuum_stats.ts";

const limits = { stale_days: 7, min_dead_tuples: 1000, dead_ratio_warning: 0.2, dead_ratio_critical: 0.5 };

Deno.test("vacuum_stats judgeTable() rates the dead-tuple ratio and the time since the last vacuum", () => {
  const base = { schema: "public", table: "t", liveTuples: 4000, deadTuples: 1000, lastVacuum: "x" };
  const j = (deadRatio: number, daysSinceVacuum: number | null) =>
    judgeTable({ ...base, deadRatio, daysSinceVacuum }, limits);
  assert.deepEqual([j(0.1, 1).severity, j(0.1, 1).reasons], ["ok", []]);
  assert.deepEqual(j(0.25, 1).reasons, ["25% dead tuples (warning at 20%)"]);
  assert.equal(j(0.6, 1).severity, "critical");
  assert.deepEqual(j(0.1, 9.5).reasons, ["not vacuumed for 9 days (limit 7)"]);
  assert.deepEqual([j(0.1, null).severity, j(0.1, null).reasons], ["warning", [
    "never vacuumed, 1000 dead tuples",
  ]]);
});

Deno.test("vacuum_stats reads pg_stat_user_tables: a table with most rows deleted and autovacuum off is critical until vacuumed", async (t) => {
  await using cluster = await startCluster({ name: "vacuum" });
  const db = await cluster.createDatabase("vac");
  const sql = cluster.primary.sql(db);
  const deps = await testOpDeps(cluster, {
    config: testConfig(cluster, (doc) => {
      doc.targets.main.primary.database = db;
    }),
  });
  try {
    await sql`create table churn (id int primary key, pad text) with (autovacuum_enabled = false)`;
    await sql`insert into churn select g, repeat('x', 50) from generate_series(1, 10000) g`;
    await sql`create table small (id int)`;
    await sql`insert into small select generate_series(1, 100)`;
    await sql`delete from small where id > 10`;

    await t.step("plan() only reads", async () => {
      const plan = await vacuumStats.plan({ target: "main" }, deps);
      assert.equal(vacuumStats.destructive, false);
      assert.match(plan.summary, /Read the autovacuum state of main's primary/);
    });

    await t.step("6,000 of 10,000 rows deleted, never vacuumed: critical, with the figures", async () => {
      // Backends flush their statistics when idle, 10 s later at most; ask this one to flush at once.
      const conn = await sql.reserve();
      try {
        await conn`delete from churn where id <= 6000`;
        await conn`select pg_stat_force_next_flush()`;
        await conn`select 1`;
      } finally {
        conn.release();
      }
      const r = await waitFor(async () => {
        const x = await readVacuumStats("main", deps);
        return x.tables.some((tb) => tb.table === "churn") ? x : undefined;
      }, { what: "the dead tuples in pg_stat_user_tables", timeoutMs: 15_000, intervalMs: 200 });
      const churn = r.tables.find((x) => x.table === "churn")!;
      assert.equal(churn.severity, "critical");
      assert.equal(churn.deadTuples, 6000);
      assert.deepEqual(churn.reasons, [
        "60% dead tuples (critical at 50%)",
        "never vacuumed, 6000 dead tuples",
      ]);
      assert.ok(!r.tables.some((x) => x.table === "small"), "fewer than min_dead_tuples dead: not judged");
      assert.equal(r.severity, "critical");
      assert.equal(r.autovacuumOn, true);
    });

    await t.step("after VACUUM the table is no longer reported", async () => {
      await sql`vacuum churn`;
      const r = await waitFor(async () => {
        const x = await readVacuumStats("main", deps);
        return x.tables.some((tb) => tb.table === "churn") ? undefined : x;
      }, { what: "the vacuum in pg_stat_user_tables", timeoutMs: 15_000, intervalMs: 200 });
      assert.equal(r.severity, "ok");
    });

    await t.step("an unreachable primary is an unreachable error naming the member", async () => {
      await cluster.primary.stop();
      await deps.targets.reset("main");
      await assert.rejects(
        readVacuumStats("main", deps),
        /main\/primary \(127\.0\.0\.1:\d+\) does not answer/,
      );
    });
  } finally {
    await deps.close();
  }
});
