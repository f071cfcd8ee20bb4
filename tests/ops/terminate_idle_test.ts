import assert from "node:assert/strict";
import postgres from "postgres";
import { startCluster } from "../../standins/cluster.ts";
import { testOpDeps } from "../support/op_deps.ts";
import { waitFor } from "../../standins/wait.ts";
import { terminateIdle } from "../../ops/terminate_idle.ts";

/** A client whose one connection is left in the given state. */
async function session(url: string, app: string, state: "idle in transaction" | "idle") {
  const sql = postgres(url, { max: 1, connection: { application_name: app }, onnotice: () => {} });
  const conn = await sql.reserve();
  if (state === "idle in transaction") await conn`begin`;
  const [{ pid }] = await conn<{ pid: number }[]>`select pg_backend_pid() as pid`;
  return { sql, conn, pid };
}

Deno.test("terminate_idle plans the exact old idle-in-transaction sessions and terminates only those that still match", async (t) => {
  await using cluster = await startCluster({ name: "term-idle-op" });
  const deps = await testOpDeps(cluster);
  const url = cluster.primary.url();
  const admin = cluster.primary.sql();
  const sessions: Awaited<ReturnType<typeof session>>[] = [];
  const alive = async (pid: number) =>
    (await admin`select 1 from pg_stat_activity where pid = ${pid}`).length === 1;
  try {
    const leakA = await session(url, "leak-a", "idle in transaction");
    const leakB = await session(url, "leak-b", "idle in transaction");
    const idle = await session(url, "plain-idle", "idle");
    sessions.push(leakA, leakB, idle);
    // 0.02 min = 1.2 s: wait until both leaks are that old, then open a young one the plan must not include.
    await waitFor(async () => {
      const [{ n }] = await admin<{ n: number }[]>`
        select count(*)::int as n from pg_stat_activity
         where application_name like 'leak-%' and now() - state_change > interval '1.3 seconds'`;
      return n === 2;
    }, { timeoutMs: 10_000, intervalMs: 100, what: "two sessions idle in transaction for 1.3 s" });
    const young = await session(url, "leak-young", "idle in transaction");
    sessions.push(young);
    let plan: Awaited<ReturnType<typeof terminateIdle.plan>>;

    await t.step(
      "plan() lists exactly the two old sessions, fingerprinted by pid and backend start",
      async () => {
        plan = await terminateIdle.plan({ target: "main", older_than_minutes: 0.02 }, deps);
        assert.deepEqual(plan.sessions.map((s) => s.pid).sort(), [leakA.pid, leakB.pid].sort());
        assert.deepEqual(plan.fingerprint.sessions.map((s) => s.pid).sort(), [leakA.pid, leakB.pid].sort());
        assert.ok(plan.fingerprint.sessions.every((s) => /\.\d{6}Z$/.test(s.backendStart)));
        assert.ok(
          plan.steps.some((s) => s.startsWith(`pg_terminate_backend(${leakA.pid})`) && /leak-a/.test(s)),
        );
        assert.match(plan.summary, /Terminate 2 session\(s\)/);
        assert.equal(await terminateIdle.revalidate!(plan, deps), undefined);
      },
    );

    await t.step(
      "a planned session that committed meanwhile is skipped; the others are untouched",
      async () => {
        await leakB.conn`commit`;
        const result = await terminateIdle.run(plan, deps);
        assert.deepEqual(result.terminated.map((s) => s.pid), [leakA.pid]);
        assert.deepEqual(result.skipped.map((s) => s.pid), [leakB.pid]);
        await waitFor(async () => !(await alive(leakA.pid)), { what: "leak-a to be gone" });
        assert.equal(await alive(leakB.pid), true, "leak-b (committed) still connected");
        assert.equal(await alive(idle.pid), true, "the plain idle session is untouched");
        assert.equal(await alive(young.pid), true, "the young idle-in-transaction session is untouched");
        const [{ state }] = await admin`select state from pg_stat_activity where pid = ${young.pid}`;
        assert.equal(state, "idle in transaction");
      },
    );

    await t.step(
      "afterwards nothing planned is left: revalidate() says so and reconcile() says done",
      async () => {
        assert.match((await terminateIdle.revalidate!(plan, deps))!, /none of the 2 planned session/);
        assert.equal((await terminateIdle.reconcile!(plan, deps)).status, "done");
      },
    );

    await t.step("with nothing old enough the plan is empty and run() does nothing", async () => {
      const empty = await terminateIdle.plan({ target: "main", older_than_minutes: 60 }, deps);
      assert.equal(empty.sessions.length, 0);
      assert.match(empty.summary, /nothing to terminate/);
      assert.deepEqual(await terminateIdle.run(empty, deps), { target: "main", terminated: [], skipped: [] });
      assert.equal(await alive(young.pid), true);
    });
  } finally {
    for (const s of sessions) {
      s.conn.release();
      await s.sql.end({ timeout: 1 }).catch(() => {});
    }
    await deps.close();
  }
});
