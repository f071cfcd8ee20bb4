import assert from "node:assert/strict";
import { startCluster } from "../../standins/cluster.ts";
import { verifyQuery } from "../../ops/_restore_verify.ts";
import { ConfigError } from "../../core/config.ts";
import { testConfig } from "../support/bot.ts";

const ESCAPES = [
  "select count(*) from clients; commit; drop table clients",
  "select 1; commit; drop table clients;",
  "select count(*) from clients;\ncommit;\ndrop table clients",
];

Deno.test("restore-test verification queries cannot escape their read-only transaction", async (t) => {
  await using cluster = await startCluster({ name: "restore-verify" });
  const db = await cluster.createDatabase("src");
  const sql = cluster.primary.sql(db);
  await sql`create table clients(id int primary key)`;
  await sql`insert into clients select generate_series(1, 7)`;
  const tableExists = async () =>
    (await sql<{ n: number }[]>`select count(*)::int as n from pg_class where relname = 'clients'`)[0].n ===
      1;

  await t.step("a plain SELECT answers its first value", async () => {
    assert.equal(await verifyQuery(sql, "SELECT COUNT(*) FROM clients", 5000), "7");
  });

  await t.step("`select …; commit; drop table …` is refused by the server and drops nothing", async () => {
    for (const text of ESCAPES) {
      await assert.rejects(
        verifyQuery(sql, text, 5000),
        /cannot insert multiple commands into a prepared statement/,
      );
      assert.ok(await tableExists(), `clients still exists after ${JSON.stringify(text)}`);
    }
  });

  await t.step("a lone COMMIT or a write still runs read-only: nothing is written", async () => {
    await assert.rejects(verifyQuery(sql, "delete from clients", 5000), /read-only transaction/);
    await assert.rejects(
      verifyQuery(sql, "with d as (delete from clients returning 1) select count(*) from d", 5000),
      /read-only transaction/,
    );
    await assert.rejects(
      verifyQuery(sql, "set transaction read write", 5000),
      /must be set before any query|read-write/,
    );
    assert.equal((await sql<{ n: number }[]>`select count(*)::int as n from clients`)[0].n, 7);
  });

  await t.step("the config refuses such a query before it ever runs", () => {
    for (const text of ESCAPES) {
      assert.throws(
        () =>
          testConfig(cluster, (doc) => {
            doc.targets.main.backups = { dump_folder: { path: "/tmp", pattern: "x_*.dump" } };
            doc.targets.main.restore_test = { allow_on_primary: true, verify: [{ name: "x", sql: text }] };
          }),
        (err) => err instanceof ConfigError && /restore_test\.verify\.0\.sql/.test(err.message),
      );
    }
  });
});
