import assert from "node:assert/strict";
import { startCluster } from "../../standins/cluster.ts";
import { connectAs, createBismanDatabase, setTestPassword } from "../support/bisman_schema.ts";
import { testOpDeps } from "../support/op_deps.ts";
import { testConfig } from "../support/bot.ts";
import { detectBypass, type FindingKind } from "../../ops/detect_bypass.ts";
import { searchAudit } from "../../ops/audit_search.ts";

Deno.test("detect_bypass tells clean app and service writes from writes by an unexpected role, without context and beyond a service's grants", async (t) => {
  await using cluster = await startCluster({ name: "detect", preload: ["pgaudit", "pg_stat_statements"] });
  const { db, sql } = await createBismanDatabase(cluster, {
    rows: { clients: 20, invoices: 10, payment_requests: 10, payments: 5 },
  });
  // The bot logs in as its least-privilege role (sql/target/bot_role.sql), so this also proves those grants suffice.
  Deno.env.set("DETECT_TEST_BOT_PW", await setTestPassword(cluster, "bisman_ops"));
  const config = testConfig(cluster, (doc) => {
    Object.assign(doc.targets.main.primary, {
      database: db,
      user: "bisman_ops",
      password_env: "DETECT_TEST_BOT_PW",
    });
    doc.targets.main.security = { other_roles: ["postgres"] };
  });
  const deps = await testOpDeps(cluster, { config });
  const app = await connectAs(cluster, db, "bisman_app");
  const svc = await connectAs(cluster, db, "svc_payments");
  const kinds = (fs: { kind: FindingKind }[]) => fs.map((f) => f.kind).sort();
  try {
    // Setup statements (passwords, the target SQL) are not what this test is about.
    await sql`select pg_stat_statements_reset()`;

    await t.step(
      "clean writes: bisman_app with app context, svc_payments on its own tables, give no finding",
      async () => {
        await app.begin(async (tx) => {
          await tx`select set_config('app.user_id', 'u17', true), set_config('app.service_name', 'web', true)`;
          await tx`insert into clients (name) values ('Clean Client')`;
          await tx`update clients set email = 'clean@example.test' where name = 'Clean Client'`;
        });
        await svc.begin(async (tx) => {
          await tx`select set_config('app.service_name', 'payments', true)`;
          await tx`insert into payment_requests (client_id, amount) values (1, 100)`;
          await tx`update payments set method = 'transfer' where id = 1`;
        });
        const r = await detectBypass({ target: "main" }, deps);
        assert.deepEqual(r.findings, [], JSON.stringify(r.findings, null, 1));
        assert.equal(r.rowsInWindow, 4, "the four clean writes were audited");
        assert.deepEqual(r.skipped, []);
      },
    );

    await t.step("bypassing writes are each found, and named", async () => {
      // The application's role, but straight from a console: no app.user_id, no app.service_name.
      await app`update clients set country = 'KZ' where id = 2`;
      // A role made by hand, granted what it needs to write (audit included): the seed's "unexpected DB user".
      await sql.unsafe(`create role mallory login password 'Mall0ry-secret-pw'`);
      await sql`grant select, update on clients to mallory`;
      await sql`grant insert on audit_logs_dml to mallory`;
      const mallory = await connectAs(cluster, db, "mallory", {
        password: "Mall0ry-secret-pw",
        setPassword: false,
      });
      await mallory`update clients set name = 'pwned' where id in (3, 4)`;
      // The payments service given a table outside its grant list, and writing it.
      await sql`grant select, update on clients to svc_payments`;
      await svc.begin(async (tx) => {
        await tx`select set_config('app.service_name', 'payments', true)`;
        await tx`update clients set email = 'svc@example.test' where id = 5`;
      });
      try {
        const r = await detectBypass({ target: "main", since: "1h" }, deps);
        assert.deepEqual(kinds(r.findings), [
          "ddl_outside_bot",
          "dml_without_context",
          "role_change_outside_bot",
          "service_outside_grants",
          "unexpected_dml_role",
          "unexpected_login",
        ]);
        const by = (k: FindingKind) => r.findings.filter((f) => f.kind === k);

        const [unexpected] = by("unexpected_dml_role");
        assert.equal(unexpected.subject.role, "mallory");
        assert.equal(unexpected.subject.rows, 2);
        assert.match(
          unexpected.evidence[0],
          /^UPDATE clients: 2 row\(s\), .* from 127\.0\.0\.1; audit ids \d+, \d+$/,
        );
        assert.equal(unexpected.auditSearch, "/bisman audit main user=mallory since=1h");

        const [ctx] = by("dml_without_context");
        assert.equal(ctx.subject.role, "bisman_app");
        assert.equal(ctx.subject.rows, 1, "only the console write; the app's own writes carried context");
        assert.equal(ctx.auditSearch, "/bisman audit main user=bisman_app context=missing since=1h");

        const [svcFinding] = by("service_outside_grants");
        assert.deepEqual(svcFinding.subject, { role: "svc_payments", table: "clients", rows: 1 });

        const ddl = by("ddl_outside_bot");
        assert.deepEqual(ddl.map((f) => f.subject.role), ["postgres"]);
        assert.deepEqual(ddl[0].subject.tags, ["GRANT"]);
        assert.equal((ddl[0].subject.events as number[]).length, 3, "the three hand-made GRANTs");

        const [roles] = by("role_change_outside_bot");
        assert.equal(roles.subject.role, "postgres");
        const statements = roles.subject.statements as string[];
        assert.ok(
          statements.some((s) => s === "create role mallory login password '?'"),
          statements.join("\n"),
        );
        assert.ok(!JSON.stringify(r).includes("Mall0ry-secret-pw"), "no password in any finding");

        const [login] = by("unexpected_login");
        assert.equal(login.subject.role, "mallory");
        assert.equal((login.subject.pids as number[]).length, 1);
        assert.deepEqual(login.subject.addresses, ["127.0.0.1"]);
        assert.match(login.next!, /\/bisman lock-role mallory main/);
      } finally {
        await mallory.end({ timeout: 1 });
      }
    });

    await t.step("a finding's audit search lists exactly its rows", async () => {
      const rows = await searchAudit({ target: "main", user: "mallory", since: "1h" }, deps);
      assert.equal(rows.rows.length, 2);
      assert.ok(
        rows.rows.every((x) => x.dbUser === "mallory" && x.table === "clients" && x.action === "UPDATE"),
      );
      assert.deepEqual(rows.rows.map((x) => x.changed), [["name"], ["name"]]);
      const missing = await searchAudit({
        target: "main",
        user: "bisman_app",
        context: "missing",
        since: "1h",
      }, deps);
      assert.deepEqual(missing.rows.map((x) => [x.rowId, x.changed]), [["2", ["country"]]]);
    });

    await t.step(
      "the window bounds the audit findings: two hours later, since=1h finds none of those writes",
      async () => {
        const later = await testOpDeps(cluster, { config, now: () => new Date(Date.now() + 2 * 3600_000) });
        try {
          const r = await detectBypass({ target: "main", since: "1h" }, later);
          // Sessions and pg_stat_statements have no time: those two kinds remain.
          assert.deepEqual(kinds(r.findings), ["role_change_outside_bot"]);
        } finally {
          await later.close();
        }
      },
    );
  } finally {
    await app.end({ timeout: 1 });
    await svc.end({ timeout: 1 });
    await deps.close();
  }
});
