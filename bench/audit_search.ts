/**
 * `/bisman audit` on 5 million audit rows: the typical searches (by table and time, by app user, by DB user)
 * through the real operation (`searchAudit`, rows plus the "N more rows" count), timed after a warm-up,
 * with the plan PostgreSQL chose for each (index names). The target is a throwaway cluster with the sample
 * schema; rows come from the generator of sql/target/sample_data.sql (30 days, 5,000 app users).
 *
 *   deno task bench audit_search                 (5,000,000 rows)
 *   AUDIT_BENCH_ROWS=1000000 deno task bench audit_search
 */

import { startCluster } from "../standins/cluster.ts";
import { createBismanDatabase } from "../tests/support/bisman_schema.ts";
import { testOpDeps } from "../tests/support/op_deps.ts";
import { testConfig } from "../tests/support/bot.ts";
import { explainAuditSearch, searchAudit } from "../ops/audit_search.ts";
import type { AuditSearchArgs } from "../ops/audit_search.ts";

/** The budget the issue sets for each typical search on this machine. */
const BUDGET_MS = 200;

export async function run(): Promise<void> {
  const rows = Number(Deno.env.get("AUDIT_BENCH_ROWS") ?? 5_000_000);
  await using cluster = await startCluster({
    name: "bench-audit",
    // A modest production-like memory setting; the harness default (32MB) is sized for tiny tests.
    conf: { shared_buffers: "512MB", maintenance_work_mem: "256MB", max_wal_size: "8GB", work_mem: "16MB" },
  });
  let t = performance.now();
  const { db, sql } = await createBismanDatabase(cluster, {
    rows: { clients: 10_000, audit_rows: rows, days: 30, app_users: 5000 },
  });
  console.log(
    `generated ${rows.toLocaleString("en")} audit rows in ${((performance.now() - t) / 1000).toFixed(1)} s`,
  );
  t = performance.now();
  await sql`vacuum analyze public.audit_logs_dml`;
  const [{ size }] =
    await sql`select pg_size_pretty(pg_total_relation_size('public.audit_logs_dml')) as size`;
  console.log(
    `vacuum analyze in ${((performance.now() - t) / 1000).toFixed(1)} s; table with indexes: ${size}`,
  );

  const deps = await testOpDeps(cluster, {
    config: testConfig(cluster, (doc) => (doc.targets.main.primary.database = db)),
  });
  try {
    const searches: [string, Partial<AuditSearchArgs>][] = [
      ["by table and time (clients, 24h)", { table: "clients", since: "24h" }],
      ["by table and time (products, 7d)", { table: "products", since: "7d" }],
      ["by app user (u1234, 30d)", { app_user: "u1234", since: "30d" }],
      ["by app user (u42, 24h)", { app_user: "u42", since: "24h" }],
      ["by DB user (bisman_admin, 24h)", { user: "bisman_admin", since: "24h" }],
      ["by DB user (svc_payments, 7d)", { user: "svc_payments", since: "7d" }],
      ["by DB user and table (svc_payments, payments, 24h)", { user: "svc_payments", table: "payments" }],
    ];
    let over = 0;
    for (const [label, args] of searches) {
      const input = { target: "main", limit: 20, ...args };
      for (let i = 0; i < 2; i++) await searchAudit(input, deps); // warm-up: prepared statements, cache
      const times: number[] = [];
      let found = 0;
      let more = "";
      for (let i = 0; i < 7; i++) {
        const started = performance.now();
        const r = await searchAudit(input, deps);
        times.push(performance.now() - started);
        found = r.rows.length;
        more = `${r.more}${r.moreCapped ? "+" : ""}`;
      }
      times.sort((a, b) => a - b);
      const median = times[3];
      if (median > BUDGET_MS) over++;
      const plan = await explainAuditSearch(sql, input);
      console.log(
        `${label.padEnd(52)} median ${median.toFixed(1).padStart(6)} ms, max ${
          times[6].toFixed(1).padStart(6)
        } ms; ${found} rows + ${more} more; rows plan: ${plan.rows.nodes.join(" > ")} [${
          plan.rows.indexes.join(", ")
        }]; count plan: [${plan.count.indexes.join(", ")}]`,
      );
    }
    console.log(
      over
        ? `${over} search(es) over the ${BUDGET_MS} ms budget`
        : `every search within the ${BUDGET_MS} ms budget`,
    );
  } finally {
    await deps.close();
  }
}

if (import.meta.main) await run();
