import assert from "node:assert/strict";
import postgres from "postgres";
import { startCluster } from "../../standins/cluster.ts";
import { checkMigrations, migrate, migrateState, readMigrations } from "../../core/migrate.ts";

Deno.test("migrate() applies each migration once, even when two start-ups race", async (t) => {
  await using cluster = await startCluster({ name: "migrate" });
  const connect = (db: string) =>
    postgres(cluster.primary.url({ database: db }), { max: 2, onnotice: () => {} });

  await t.step("two concurrent runs apply every migration exactly once between them", async () => {
    const db = await cluster.createDatabase("mig");
    const a = connect(db);
    const b = connect(db);
    try {
      const [ra, rb] = await Promise.all([migrate(a), migrate(b)]);
      const all = await readMigrations();
      assert.deepEqual([...ra, ...rb].sort(), all.map((m) => m.name).sort());
      const rows = await a<
        { id: number; n: number }[]
      >`select id, count(*)::int as n from bisman_ops.migrations group by id`;
      assert.equal(rows.length, all.length);
      assert.ok(rows.every((r) => r.n === 1));
      assert.deepEqual(await migrate(a), [], "a third run applies nothing");
    } finally {
      await a.end();
      await b.end();
    }
  });

  await t.step(
    "replicas starting together on a fresh database all start: the grants after the migrations take turns",
    async () => {
      // Three bots at once, as a Deployment's replicas start; CI saw one of three die of "tuple concurrently
      // updated" (two GRANTs on the schema at once). Both set-ups: migrating as the runtime role itself, and
      // as an owner that then grants the runtime role. A few fresh databases, for the race to show.
      await cluster.primary.psql("create role mig_runtime login password 'mig-runtime-pw'");
      for (let round = 0; round < 4; round++) {
        for (const withOwner of [false, true]) {
          const db = await cluster.createDatabase(`migstart${round}${withOwner ? "o" : "r"}`);
          const ownerUrl = withOwner ? cluster.primary.url({ database: db }) : undefined;
          const runtimeUrl = withOwner
            ? cluster.primary.url({ database: db, user: "mig_runtime", password: "mig-runtime-pw" })
            : cluster.primary.url({ database: db });
          const pools = [0, 1, 2].map(() => postgres(runtimeUrl, { max: 2, onnotice: () => {} }));
          try {
            const results = await Promise.allSettled(pools.map((p) => migrateState(p, ownerUrl)));
            const failed = results.filter((r) => r.status === "rejected") as PromiseRejectedResult[];
            assert.deepEqual(failed.map((r) => String(r.reason)), [], `round ${round}, owner ${!!ownerUrl}`);
          } finally {
            await Promise.all(pools.map((p) => p.end()));
          }
        }
      }
    },
  );

  await t.step("a failing migration rolls back and names itself; nothing of it remains", async () => {
    const db = await cluster.createDatabase("migfail");
    const sql = connect(db);
    try {
      const bad = [{ id: 1, name: "0001_ok.sql", sql: "create table bisman_ops.t1 (x int)" }, {
        id: 2,
        name: "0002_bad.sql",
        sql: "create table bisman_ops.t2 (x int); select nosuchcolumn from bisman_ops.t1",
      }];
      await assert.rejects(migrate(sql, bad), /Migration 0002_bad\.sql failed/);
      const [t2] = await sql`select to_regclass('bisman_ops.t2') as r`;
      assert.equal(t2.r, null);
      const applied = await sql`select name from bisman_ops.migrations`;
      assert.deepEqual(applied.map((r) => r.name), ["0001_ok.sql"]);
    } finally {
      await sql.end();
    }
  });

  await t.step(
    "checkMigrations() changes nothing and refuses a schema behind or ahead, naming both",
    async () => {
      const db = await cluster.createDatabase("migcheck");
      const sql = connect(db);
      try {
        const all = await readMigrations();
        const newest = all.at(-1)!.name;
        await assert.rejects(
          checkMigrations(sql),
          new RegExp(`schema is at no migration, and this build needs ${newest}`),
        );
        const [{ s }] = await sql`select count(*)::int as s from pg_namespace where nspname = 'bisman_ops'`;
        assert.equal(s, 0, "checking created nothing");
        await migrate(sql, all.slice(0, -1));
        await assert.rejects(
          checkMigrations(sql),
          new RegExp(
            `schema is at ${all.at(-2)!.name}, and this build needs ${newest} \\(not applied: ${newest}\\)`,
          ),
        );
        await migrate(sql);
        await checkMigrations(sql);
        await sql`insert into bisman_ops.migrations (id, name) values (9998, '9998_future.sql')`;
        await assert.rejects(checkMigrations(sql), /9998_future\.sql, which this build does not know/);
      } finally {
        await sql.end();
      }
    },
  );

  await t.step("a database with a migration this build does not know is refused, naming both", async () => {
    const db = await cluster.createDatabase("mignew");
    const sql = connect(db);
    try {
      await migrate(sql);
      await sql`insert into bisman_ops.migrations (id, name) values (9999, '9999_future.sql')`;
      await assert.rejects(migrate(sql), /9999_future\.sql, which this build does not know/);
    } finally {
      await sql.end();
    }
  });
});
