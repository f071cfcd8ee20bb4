import assert from "node:assert/strict";
import postgres from "postgres";
import { startCluster } from "../../standins/cluster.ts";
import { testConfig } from "../support/bot.ts";
import { testOpDeps } from "../support/op_deps.ts";
import { waitFor } from "../../standins/wait.ts";
import { connections, readConnections } from "../../ops/connections.ts";

Deno.test("connections counts client sessions by user, application, client and state, and lists idle-in-transaction ones with their age", async (t) => {
  await using cluster = await startCluster({ name: "conn-op" });
  const config = testConfig(cluster, (doc) => {
    doc.thresholds = { idle_in_transaction_minutes: 0.02, connections_percent_warning: 50 };
  });
  const deps = await testOpDeps(cluster, { config });
  const admin = cluster.primary.sql();
  await admin`create role leak_user login password 'leak-user-pw-123'`;
  const leaky = postgres(cluster.primary.url({ user: "leak_user", password: "leak-user-pw-123" }), {
    max: 2,
    connection: { application_name: "leaky-app" },
    onnotice: () => {},
  });
  const busy = postgres(cluster.primary.url(), {
    max: 3,
    connection: { application_name: "busy-app" },
    onnotice: () => {},
  });
  try {
    const held = await leaky.reserve();
    await held`begin`;
    await held`select 1`;
    const idle = await busy.reserve();
    await idle`select 1`; // idle, not in a transaction

    await t.step("run() reads the breakdowns and the idle-in-transaction session", async () => {
      const r = await connections.run(await connections.plan({ target: "main" }, deps), deps);
      assert.ok(r.total >= 3, `total ${r.total}`);
      assert.equal(r.maxConnections, 100);
      assert.ok(r.byUser.some((b) => b.value === "leak_user" && b.count === 1));
      assert.ok(r.byApplication.some((b) => b.value === "leaky-app" && b.count === 1));
      assert.ok(r.byApplication.some((b) => b.value === "busy-app"));
      assert.ok(r.byClient.some((b) => b.value === "127.0.0.1"));
      assert.ok(r.byState.some((b) => b.value === "idle in transaction" && b.count === 1));
      assert.equal(r.idleInTransaction.length, 1);
      const s = r.idleInTransaction[0];
      assert.equal(s.user, "leak_user");
      assert.equal(s.application, "leaky-app");
      assert.equal(s.clientAddr, "127.0.0.1");
      assert.match(s.backendStart, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/, "microseconds kept");
      assert.equal(s.query, "select ?", "its last statement, literals masked");
    });

    await t.step("a session idle in transaction past the threshold is a suspected leak", async () => {
      // The threshold is 1.2 s: the same session becomes a leak by ageing, nothing else changes.
      const r = await waitFor(async () => {
        const r = await readConnections("main", deps);
        return r.leaks.length ? r : undefined;
      }, { timeoutMs: 10_000, intervalMs: 200, what: "the session to age past 1.2 s" });
      assert.equal(r.leaks.length, 1);
      assert.ok(r.leaks[0].idleSeconds >= 1.2);
      assert.equal(r.severity, "warning");
      assert.ok(
        r.reasons.some((x) =>
          /idle in transaction for more than 0\.02 min: suspected connection leak/.test(x)
        ),
      );
    });

    await t.step("above the percentage threshold the report warns about max_connections", async () => {
      const many = postgres(cluster.primary.url(), { max: 60, onnotice: () => {} });
      try {
        const conns = await Promise.all(Array.from({ length: 55 }, () => many.reserve()));
        const r = await readConnections("main", deps);
        assert.ok(r.percent >= 50, `percent ${r.percent}`);
        assert.ok(r.reasons.some((x) => /of max_connections in use \(warning at 50%\)/.test(x)));
        conns.forEach((c) => c.release());
      } finally {
        await many.end();
      }
    });
    held.release();
    idle.release();
  } finally {
    await leaky.end({ timeout: 1 });
    await busy.end({ timeout: 1 });
    await deps.close();
  }
});
