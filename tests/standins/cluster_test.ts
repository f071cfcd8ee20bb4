import assert from "node:assert/strict";
import postgres from "postgres";
import { findPgBinDir, freePort, startCluster, waitFor } from "../../standins/cluster.ts";

async function portAcceptsConnections(port: number): Promise<boolean> {
  try {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    conn.close();
    return true;
  } catch {
    return false;
  }
}

async function pathExists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return false;
    throw err;
  }
}

Deno.test("waitFor and freePort", async () => {
  let n = 0;
  assert.equal(await waitFor(() => (++n >= 3 ? n : undefined), { intervalMs: 1 }), 3);
  await assert.rejects(
    waitFor(() => false, { timeoutMs: 50, intervalMs: 10, what: "nothing" }),
    /^Error: Timed out after 50ms waiting for nothing$/,
  );
  await assert.rejects(
    waitFor(() => new Promise<false>(() => {}), { timeoutMs: 50, what: "a hung attempt" }),
    /Timed out after 50ms waiting for a hung attempt/,
  );
  const a = await freePort();
  const b = await freePort();
  assert.notEqual(a, b);
  assert.match(await findPgBinDir(), /\/bin$/);
});

Deno.test("startCluster: primary + streaming replica", async (t) => {
  const c = await startCluster({ replica: true, name: "selftest" });
  try {
    const replica = c.replica;
    assert.ok(replica, "replica requested");

    await t.step("primary is not in recovery, replica is", async () => {
      assert.equal((await c.primary.psql("select pg_is_in_recovery()")).trim(), "f");
      assert.equal((await replica.psql("select pg_is_in_recovery()")).trim(), "t");
      const sql = c.primary.sql();
      const [row] = await sql`select pg_is_in_recovery() as r, current_user as u`;
      assert.deepEqual({ r: row.r, u: row.u }, { r: false, u: "postgres" });
      assert.notEqual(c.primary.port, replica.port);
      assert.ok(c.primary.dataDir.startsWith(c.dir) && replica.socketDir.startsWith(c.dir));
    });

    await t.step(
      "a table written on the primary is visible on the replica after waitForReplay()",
      async () => {
        await c.primary.psql(
          "create table harness_t(id int primary key, v text); insert into harness_t values (1, 'one'), (2, 'two');",
        );
        await c.waitForReplay();
        assert.equal(
          (await replica.psql("select string_agg(v, ',' order by id) from harness_t")).trim(),
          "one,two",
        );
        const rsql = replica.sql();
        const rows = await rsql`select count(*)::int as n from harness_t`;
        assert.equal(rows[0].n, 2);
      },
    );

    await t.step("createDatabase() returns distinct, usable names", async () => {
      const names = await Promise.all([
        c.createDatabase("audit"),
        c.createDatabase("audit"),
        c.createDatabase(),
      ]);
      assert.equal(new Set(names).size, 3);
      for (const name of names) {
        assert.match(name, /^[a-z][a-z0-9_]{0,62}$/);
        assert.equal((await c.primary.psql("select current_database()", name)).trim(), name);
      }
      assert.ok(names[0].startsWith("audit_"));
    });

    await t.step("psql errors name the failure", async () => {
      await assert.rejects(c.primary.psql("select * from no_such_table"), /no_such_table/);
    });

    await t.step("a non-superuser needs its password over TCP, the superuser does not", async () => {
      const db = await c.createDatabase("auth");
      await c.primary.psql(
        `create role app_user login password 'S3cret''pw'; grant connect on database "${db}" to app_user;`,
      );

      const noPw = postgres(c.primary.url({ database: db, user: "app_user" }), {
        max: 1,
        onnotice: () => {},
      });
      try {
        await assert.rejects(noPw`select 1`);
      } finally {
        await noPw.end({ timeout: 1 });
      }
      const wrongPw = postgres(c.primary.url({ database: db, user: "app_user", password: "nope" }), {
        max: 1,
        onnotice: () => {},
      });
      try {
        await assert.rejects(wrongPw`select 1`, /password authentication failed/);
      } finally {
        await wrongPw.end({ timeout: 1 });
      }
      const ok = postgres(c.primary.url({ database: db, user: "app_user", password: "S3cret'pw" }), {
        max: 1,
        onnotice: () => {},
      });
      try {
        const [row] = await ok`select current_user as u`;
        assert.equal(row.u, "app_user");
      } finally {
        await ok.end({ timeout: 1 });
      }
      // The superuser URL has no password and works.
      const su = postgres(c.primary.url({ database: db }), { max: 1, onnotice: () => {} });
      try {
        const [row] = await su`select current_user as u`;
        assert.equal(row.u, "postgres");
      } finally {
        await su.end({ timeout: 1 });
      }
    });

    await t.step("reload() applies ALTER SYSTEM before returning", async () => {
      await c.primary.psql("alter system set log_min_duration_statement = '1234ms'");
      await c.primary.reload();
      assert.equal((await c.primary.psql("show log_min_duration_statement")).trim(), "1234ms");
    });

    await t.step("run() executes commands as postgres", async () => {
      const res = await c.run(["pg_controldata", c.primary.dataDir], { asPostgres: true });
      assert.equal(res.code, 0, res.stderr);
      assert.match(res.stdout, /Database cluster state:\s+in production/);
      const failed = await c.run(["false"]);
      assert.notEqual(failed.code, 0);
    });

    await t.step("a second cluster with preload libraries runs alongside", async () => {
      await using c2 = await startCluster({ preload: ["pgaudit", "pg_stat_statements"], name: "preload" });
      assert.equal(c2.replica, undefined);
      assert.notEqual(c2.primary.port, c.primary.port);
      assert.equal(
        (await c2.primary.psql("show shared_preload_libraries")).trim(),
        "pgaudit,pg_stat_statements",
      );
      await c2.primary.psql("create extension pg_stat_statements; create extension pgaudit;");
      const sql = c2.primary.sql();
      const rows = await sql`select count(*)::int as n from pg_stat_statements`;
      assert.ok(rows[0].n >= 0);
      await assert.rejects(c2.waitForReplay(), /no replica/);
    });

    await t.step("stop() removes the dir and frees the ports; it is idempotent", async () => {
      const ports = [c.primary.port, replica.port];
      assert.ok(await portAcceptsConnections(ports[0]));
      await c.stop();
      assert.equal(await pathExists(c.dir), false);
      for (const port of ports) assert.equal(await portAcceptsConnections(port), false, `port ${port}`);
      await c.stop();
    });
  } finally {
    await c.stop();
  }
});
