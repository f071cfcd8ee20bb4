import assert from "node:assert/strict";
import { startCluster } from "../../standins/cluster.ts";
import { connectAs } from "../support/bisman_schema.ts";
import { applyTargetSql, targetSqlParts } from "../../ops/_target_sql.ts";

Deno.test("applyTargetSql installs the seed's audit trail, roles and bot role, idempotently, and the trigger captures the context", async (t) => {
  await using cluster = await startCluster({ name: "targetsql", preload: ["pgaudit", "pg_stat_statements"] });
  const db = await cluster.createDatabase("bisman");
  const sql = cluster.primary.sql(db);

  await t.step("the sample schema is applied only when asked for", () => {
    assert.deepEqual(targetSqlParts(), ["audit", "roles", "bot_role"]);
    assert.deepEqual(targetSqlParts({ sample: true }), ["sample_schema", "audit", "roles", "bot_role"]);
    assert.throws(() => targetSqlParts({ parts: ["sample_schema"] }), /only with sample: true/);
  });

  await t.step("applied twice, the second run changes nothing and fails nothing", async () => {
    const first = await applyTargetSql(sql, {
      sample: true,
      rows: { clients: 50, invoices: 20, payment_requests: 20, payments: 10, audit_rows: 1000 },
    });
    assert.deepEqual(first.applied, ["sample_schema", "audit", "roles", "bot_role", "sample_data"]);
    assert.equal(first.generated!.audit_rows, 1000);
    const snapshot = async () =>
      await sql`
        select (select count(*)::int from pg_trigger where tgname = 'audit_dml') as triggers,
               (select count(*)::int from pg_roles where rolname ~ '^(bisman_|svc_)') as roles,
               (select count(*)::int from pg_event_trigger where evtname like 'bisman_audit_%') as event_triggers,
               (select count(*)::int from audit_logs_dml) as audit_rows,
               (select count(*)::int from clients) as clients`;
    const before = await snapshot();
    assert.deepEqual({ ...before[0] }, {
      triggers: 5,
      roles: 6,
      event_triggers: 2,
      audit_rows: 1000,
      clients: 50,
    });
    await applyTargetSql(sql, { sample: true });
    assert.deepEqual([...await snapshot()], [...before]);
    const [{ exts }] = await sql`select array_agg(extname::text order by extname) as exts from pg_extension`;
    assert.deepEqual(exts, ["pg_stat_statements", "pgaudit", "plpgsql"]);
  });

  await t.step("no password is set by the files: the seed's roles cannot log in until rotated", async () => {
    const [{ n }] =
      await sql`select count(*)::int as n from pg_authid where rolname ~ '^(bisman_|svc_)' and rolpassword is not null`;
    assert.equal(n, 0);
  });

  await t.step(
    "the trigger records table, action, old/new rows, DB user, app user, service, client address and query",
    async () => {
      const app = await connectAs(cluster, db, "bisman_app");
      try {
        await app.begin(async (tx) => {
          await tx`select set_config('app.user_id', 'u-7', true), set_config('app.service_name', 'mobile', true)`;
          await tx`update clients set email = 'new@example.test' where id = 3`;
        });
        const [row] = await sql`
        select table_schema, table_name, action, row_id, old_data ->> 'email' as old_email, new_data ->> 'email' as new_email,
               db_user, session_user_name, app_user_id, service_name, host(client_addr) as addr, query_text
          from audit_logs_dml order by id desc limit 1`;
        assert.deepEqual({ ...row }, {
          table_schema: "public",
          table_name: "clients",
          action: "UPDATE",
          row_id: "3",
          old_email: "client3@example.test",
          new_email: "new@example.test",
          db_user: "bisman_app",
          session_user_name: "bisman_app",
          app_user_id: "u-7",
          service_name: "mobile",
          addr: "127.0.0.1",
          query_text: "update clients set email = 'new@example.test' where id = 3",
        });
        // bisman_app may add audit rows but not read or change them.
        await assert.rejects(app`select count(*) from audit_logs_dml`, /permission denied/);
        await assert.rejects(app`delete from audit_logs_dml`, /permission denied/);
      } finally {
        await app.end({ timeout: 1 });
      }
    },
  );

  await t.step(
    "bot_role.sql: pg_promote only when promotion is enabled; never applied to a superuser; names validated",
    async () => {
      const canPromote = async () =>
        (await sql`select has_function_privilege('bisman_ops', 'pg_promote(boolean, integer)', 'execute') as c`)[
          0
        ].c;
      assert.equal(await canPromote(), false);
      await applyTargetSql(sql, { parts: ["bot_role"], allowPromote: true });
      assert.equal(await canPromote(), true);
      await applyTargetSql(sql, { parts: ["bot_role"] });
      assert.equal(await canPromote(), false);
      await assert.rejects(
        applyTargetSql(sql, { parts: ["bot_role"], botRole: "postgres" }),
        /is a superuser: give the bot its own role/,
      );
      await assert.rejects(
        applyTargetSql(sql, { parts: ["bot_role"], botRole: "bad; drop role x" }),
        /lower-case PostgreSQL identifier/,
      );
      const [{ attrs }] = await sql`
      select row(rolsuper, rolcreaterole, rolcanlogin, rolbypassrls, rolreplication)::text as attrs from pg_roles where rolname = 'bisman_ops'`;
      assert.equal(attrs, "(f,t,t,f,f)");
    },
  );
});
