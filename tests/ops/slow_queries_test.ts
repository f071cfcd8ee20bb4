import assert from "node:assert/strict";
import { startCluster } from "../../standins/cluster.ts";
import { testConfig } from "../support/bot.ts";
import { testOpDeps } from "../support/op_deps.ts";
import { QUERY_TEXT_MAX, readSlowQueries, slowQueries } from "../../ops/slow_queries.ts";
import type { OpsError } from "../../core/errors.ts";

Deno.test("slow_queries lists statements by mean time from pg_stat_statements, cut short, and says when it is not installed", async (t) => {
  await using cluster = await startCluster({ name: "slowq-op", preload: ["pg_stat_statements"] });
  const config = testConfig(cluster, (doc) => {
    doc.thresholds = { slow_query_mean_ms: 150 };
  });
  const deps = await testOpDeps(cluster, { config });
  const sql = cluster.primary.sql();
  try {
    await t.step("without CREATE EXTENSION the answer is not configured, with the fix", async () => {
      await assert.rejects(
        readSlowQueries("main", deps),
        (e: OpsError) =>
          e.code === "not_configured" && /CREATE EXTENSION pg_stat_statements/.test(e.userMessage),
      );
    });

    await t.step("a slow statement tops the list, over the threshold; fast ones are ok", async () => {
      await sql`create extension pg_stat_statements`;
      await sql`select pg_stat_statements_reset()`;
      await sql`select pg_sleep(0.2), ${"x".repeat(400)}::text as long_literal_in_a_long_query_text`;
      for (let i = 0; i < 5; i++) await sql`select ${i}::int + 1 as fast`;
      const r = await slowQueries.run(
        await slowQueries.plan(slowQueries.args.parse({ target: "main" }), deps),
        deps,
      );
      assert.ok(r.queries.length >= 2);
      const top = r.queries[0];
      assert.match(top.query, /pg_sleep/);
      assert.ok(top.meanMs >= 190, `mean ${top.meanMs}`);
      assert.equal(top.calls, 1);
      assert.equal(top.severity, "warning");
      assert.ok(top.query.length <= QUERY_TEXT_MAX);
      const fast = r.queries.find((q) => /as fast/.test(q.query))!;
      assert.equal(fast.calls, 5);
      assert.equal(fast.severity, "ok");
      assert.equal(r.overThreshold, 1);
      assert.equal(r.severity, "warning");
      assert.ok(r.statsReset);
    });
  } finally {
    await deps.close();
  }
});
