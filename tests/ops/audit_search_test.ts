import assert from "node:assert/strict";
import { startCluster } from "../../standins/cluster.ts";
import { createBismanDatabase } from "../support/bisman_schema.ts";
import { testOpDeps } from "../support/op_deps.ts";
import { testConfig } from "../support/bot.ts";
import { auditSearchArgs, explainAuditSearch, MORE_ROWS_CAP, searchAudit } from "../../ops/audit_search.ts";

const ROWS = 80_000;

Deno.test("audit_search on 80,000 analysed rows: typical searches use the audit indexes, filters are exact, reads go to the replica", async (t) => {
  await using cluster = await startCluster({ name: "auditsearch", replica: true });
  const { db, sql } = await createBismanDatabase(cluster, {
    rows: { clients: 100, audit_rows: ROWS, days: 30, app_users: 2000 },
  });
  // A rare writer and a rare table, as an investigation would search for them.
  await sql`
    insert into audit_logs_dml (occurred_at, table_name, action, row_id, db_user, session_user_name, client_addr, query_text)
    select now() - g * interval '3 hours', 'ledger', 'UPDATE', g::text, 'svc_reports', 'svc_reports', '10.9.9.9', 'update ledger …'
      from generate_series(1, 120) g`;
  // Statistics from every row (the target's sample covers them all), so the planner's choice does not vary
  // from run to run with ANALYZE's random sample.
  await cluster.primary.psql("set default_statistics_target = 1000; vacuum analyze audit_logs_dml;", db);
  await cluster.waitForReplay();
  const config = testConfig(cluster, (doc) => {
    doc.targets.main.primary.database = db;
    doc.targets.main.replicas[0].database = db;
  });
  const deps = await testOpDeps(cluster, { config });
  try {
    await t.step(
      "each typical search's plan names an audit_logs_dml index, never a sequential scan",
      async () => {
        const cases: [string, Record<string, unknown>, RegExp, RegExp][] = [
          // [label, filters, index the row query may use, index the count may use]. For a common value over
          // a short window, walking the time index and filtering is as cheap as the value's own index, and the
          // planner may take either; a selective value must use its own index.
          [
            "by table and time",
            { table: "clients", since: "24h" },
            /^audit_logs_dml_(table_time|occurred_at)_idx$/,
            /^audit_logs_dml_(table_time|occurred_at)_idx$/,
          ],
          [
            "by a rare table",
            { table: "ledger", since: "30d" },
            /^audit_logs_dml_table_time_idx$/,
            /^audit_logs_dml_table_time_idx$/,
          ],
          [
            "by app user",
            { app_user: "u42", since: "30d" },
            /^audit_logs_dml_app_user_time_idx$/,
            /^audit_logs_dml_app_user_time_idx$/,
          ],
          [
            "by table over a week",
            { table: "invoices", since: "7d" },
            /^audit_logs_dml_(table_time|occurred_at)_idx$/,
            /^audit_logs_dml_(table_time|occurred_at)_idx$/,
          ],
          [
            "by app user today",
            { app_user: "u42" },
            /^audit_logs_dml_app_user_time_idx$/,
            /^audit_logs_dml_app_user_time_idx$/,
          ],
          [
            "by DB user",
            { user: "bisman_admin", since: "24h" },
            /^audit_logs_dml_(db_user_time|occurred_at)_idx$/,
            /^audit_logs_dml_(db_user_time|occurred_at)_idx$/,
          ],
          [
            "by a rare DB user",
            { user: "svc_reports", since: "30d" },
            /^audit_logs_dml_db_user_time_idx$/,
            /^audit_logs_dml_db_user_time_idx$/,
          ],
          [
            "without context",
            { context: "missing", since: "30d" },
            /^audit_logs_dml_no_context_idx$/,
            /^audit_logs_dml_no_context_idx$/,
          ],
        ];
        for (const [label, filters, rowsIdx, countIdx] of cases) {
          const e = await explainAuditSearch(sql, { target: "main", ...filters });
          const plans = JSON.stringify([e.rows.plan, e.count.plan]);
          assert.ok(
            !/"Seq Scan"/.test(plans),
            `${label}: no sequential scan (${e.rows.nodes} / ${e.count.nodes})`,
          );
          assert.ok(
            e.rows.indexes.length && e.rows.indexes.every((i) => rowsIdx.test(i)),
            `${label}: rows via ${e.rows.indexes}`,
          );
          assert.ok(
            e.count.indexes.length && e.count.indexes.every((i) => countIdx.test(i)),
            `${label}: count via ${e.count.indexes}`,
          );
        }
      },
    );

    await t.step("filters match exactly and the newest rows come first", async () => {
      const r = await searchAudit({ target: "main", user: "svc_reports", since: "30d", limit: 10 }, deps);
      assert.equal(r.rows.length, 10);
      assert.equal(r.more, 110);
      assert.ok(
        r.rows.every((x) =>
          x.dbUser === "svc_reports" && x.table === "ledger" && x.clientAddr === "10.9.9.9"
        ),
      );
      const times = r.rows.map((x) => x.occurredAt);
      assert.deepEqual(times, [...times].sort().reverse());
      assert.deepEqual(r.rows.map((x) => x.rowId).slice(0, 3), ["1", "2", "3"]);

      const byApp = await searchAudit({ target: "main", app_user: "u42", since: "30d", limit: 200 }, deps);
      const [{ n }] = await sql<
        { n: number }[]
      >`select count(*)::int as n from audit_logs_dml where app_user_id = 'u42'`;
      assert.equal(byApp.rows.length + byApp.more, n);
      assert.ok(byApp.rows.every((x) => x.appUserId === "u42"));

      const combined = await searchAudit(
        { target: "main", user: "svc_payments", table: "payments", action: "UPDATE", since: "7d", limit: 5 },
        deps,
      );
      assert.ok(
        combined.rows.every((x) =>
          x.dbUser === "svc_payments" && x.table === "payments" && x.action === "UPDATE"
        ),
      );
      assert.deepEqual(combined.filters, { table: "payments", user: "svc_payments", action: "UPDATE" });

      const net = await searchAudit({ target: "main", address: "10.9.0.0/16", since: "30d" }, deps);
      assert.equal(net.rows.length + net.more, 120);
      const none = await searchAudit({ target: "main", table: "no_such_table" }, deps);
      assert.deepEqual([none.rows.length, none.more], [0, 0]);
    });

    await t.step("'more' counts beyond the shown rows and stops at the cap", async () => {
      const r = await searchAudit({ target: "main", since: "30d", limit: 20 }, deps);
      assert.equal(r.rows.length, 20);
      assert.equal(r.more, MORE_ROWS_CAP);
      assert.equal(r.moreCapped, true);
    });

    await t.step(
      "reads go to the replica; with the replica down they fall back to the primary and say so",
      async () => {
        const r = await searchAudit({ target: "main", table: "ledger", since: "30d", limit: 1 }, deps);
        assert.equal(r.member, "replica1");
        assert.equal(r.note, undefined);
        const primaryOnly = testConfig(cluster, (doc) => {
          doc.targets.main.primary.database = db;
          doc.targets.main.replicas[0].database = db;
          doc.targets.main.replicas[0].port = 1; // nothing listens there
          doc.targets.main.replicas[0].connect_timeout_seconds = 1;
        });
        const d2 = await testOpDeps(cluster, { config: primaryOnly });
        try {
          const f = await searchAudit({ target: "main", table: "ledger", since: "30d", limit: 1 }, d2);
          assert.equal(f.member, "primary");
          assert.match(f.note!, /Replica replica1 does not answer: read from the primary instead/);
          assert.equal(f.rows.length, 1);
        } finally {
          await d2.close();
        }
      },
    );

    await t.step(
      "hostile values are refused by the schema or only ever bound, and change nothing",
      async () => {
        for (
          const bad of [
            { table: "clients; drop table clients" },
            { table: "clients' or '1'='1" },
            { user: 'bisman_app"; --' },
            { user: "x".repeat(64) },
            { service: "pay ments" },
            { address: "10.0.0.1; select 1" },
            { since: "1h; drop table audit_logs_dml" },
            { limit: 1000 },
            { app_user: "a".repeat(201) },
            { app_user: "bad\u0000nul" },
          ]
        ) {
          assert.equal(
            auditSearchArgs.safeParse({ target: "main", ...bad }).success,
            false,
            JSON.stringify(bad),
          );
        }
        // Free text for an app user is allowed, and reaches the server only as a bound value.
        for (
          const app_user of [
            "u1' or '1'='1",
            "'; delete from audit_logs_dml; --",
            "ユーザー😀",
            "SELECT * FROM pg_authid",
          ]
        ) {
          const r = await searchAudit({ target: "main", app_user, since: "30d" }, deps);
          assert.deepEqual([r.rows.length, r.more], [0, 0], app_user);
        }
        const [{ n }] = await sql<{ n: number }[]>`select count(*)::int as n from audit_logs_dml`;
        assert.equal(n, ROWS + 120);
      },
    );
  } finally {
    await deps.close();
  }
});
