import assert from "node:assert/strict";
import postgres from "postgres";
import { startCluster } from "../../standins/cluster.ts";
import { waitFor } from "../../standins/wait.ts";
import { isConnectionLoss, transaction } from "../../core/pg_tx.ts";
import { AUDIT_LOCK, AuditLog } from "../../core/audit.ts";
import { Secrets } from "../../core/log.ts";
import { migrateState } from "../../core/migrate.ts";

const LOCK = 73_311;

/**
 * Holds advisory lock `lock` in another session, starts `inside` (which waits on that lock inside its
 * transaction), terminates the waiting backend, and returns what `inside` settled with.
 */
async function killedWhileWaiting(
  admin: postgres.Sql,
  app: string,
  lock: number,
  inside: () => Promise<unknown>,
): Promise<PromiseSettledResult<unknown>> {
  const holder = await admin.reserve();
  try {
    await holder`select pg_advisory_lock(${lock})`;
    const running = inside();
    running.catch(() => {});
    const pid = await waitFor(async () => {
      const rows = await admin<{ pid: number }[]>`
        select pid from pg_stat_activity where application_name = ${app} and wait_event_type = 'Lock'`;
      return rows[0]?.pid;
    }, { what: `the ${app} backend waiting on the lock` });
    await admin`select pg_terminate_backend(${pid})`;
    const [settled] = await Promise.allSettled([running]);
    // postgres.js would write ROLLBACK to the dead socket from a timer after this: give it the chance, so
    // the uncaught TypeError (which fails this test) would show here.
    await new Promise((r) => setTimeout(r, 300));
    return settled;
  } finally {
    await holder`select pg_advisory_unlock(${lock})`;
    holder.release();
  }
}

Deno.test("a transaction whose connection dies mid-way rejects at once and nothing is thrown later", async (t) => {
  await using cluster = await startCluster({ name: "pg-tx" });
  const db = await cluster.createDatabase("pgtx");
  const admin = cluster.primary.sql(db);
  await admin`create table t (n int)`;

  await t.step("transaction(): rejected with a connection error; the pool works again after", async () => {
    const app = "pg-tx-test";
    const sql = postgres(cluster.primary.url({ database: db }), {
      max: 1,
      connection: { application_name: app },
      onnotice: () => {},
    });
    try {
      const settled = await killedWhileWaiting(admin, app, LOCK, () =>
        transaction(sql, async (tx) => {
          await tx`insert into t values (1)`;
          await tx`select pg_advisory_xact_lock(${LOCK})`;
          await tx`insert into t values (2)`;
        }));
      assert.equal(settled.status, "rejected");
      assert.ok(isConnectionLoss((settled as PromiseRejectedResult).reason), String((settled as any).reason));
      assert.equal((await admin`select n from t`).length, 0, "nothing of the transaction was committed");
      await transaction(sql, async (tx) => void await tx`insert into t values (3)`);
      assert.deepEqual((await admin<{ n: number }[]>`select n from t`).map((r) => r.n), [3]);
    } finally {
      await sql.end({ timeout: 1 });
    }
  });

  await t.step(
    "an audit append cut off by a state database restart fails alone; the next one chains on",
    async () => {
      const app = "pg-tx-audit";
      const stateDb = await cluster.createDatabase("state");
      const url = cluster.primary.url({ database: stateDb });
      const migrator = postgres(url, { max: 1, onnotice: () => {} });
      await migrateState(migrator, undefined);
      await migrator.end();
      const sql = postgres(url, { max: 1, connection: { application_name: app }, onnotice: () => {} });
      const stateAdmin = cluster.primary.sql(stateDb);
      try {
        const audit = new AuditLog(sql, new Secrets());
        await audit.append({ actor: "U1", action: "before", outcome: "ok" });
        // The append waits on the chain's lock inside its transaction.
        const settled = await killedWhileWaiting(
          stateAdmin,
          app,
          AUDIT_LOCK,
          () => audit.append({ actor: "U1", action: "cut off", outcome: "ok" }),
        );
        assert.equal(settled.status, "rejected");
        const after = await audit.append({ actor: "U1", action: "after", outcome: "ok" });
        assert.equal(after.seq, 2, "the cut-off entry took no sequence number");
        const verdict = await audit.verify();
        assert.equal(verdict.ok, true);
      } finally {
        await sql.end({ timeout: 1 });
      }
    },
  );
});
