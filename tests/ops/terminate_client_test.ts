import assert from "node:assert/strict";
import postgres from "postgres";
import { startCluster } from "../../standins/cluster.ts";
import {
  connectAs,
  createBismanDatabase,
  setTestPassword,
  TEST_PASSWORDS,
} from "../support/bisman_schema.ts";
import { testOpDeps } from "../support/op_deps.ts";
import { testConfig, USERS } from "../support/bot.ts";
import { terminateClient } from "../../ops/terminate_client.ts";

Deno.test("terminate_client cuts every session from one client address and none from another, and never the bot's own", async (t) => {
  await using cluster = await startCluster({
    name: "terminate",
    listenAddresses: ["127.0.0.1", "127.0.0.2"],
  });
  const { db, sql } = await createBismanDatabase(cluster);
  const config = testConfig(cluster, (doc) => (doc.targets.main.primary.database = db));
  const deps = { ...(await testOpDeps(cluster, { config })), actor: USERS.alice };
  await setTestPassword(cluster, "bisman_app");
  const opts = { password: TEST_PASSWORDS.bisman_app, setPassword: false };
  const open: postgres.Sql[] = [];
  try {
    await t.step("two sessions from 127.0.0.2 are terminated; the one from 127.0.0.1 is left", async () => {
      const far1 = await connectAs(cluster, db, "bisman_app", { ...opts, localAddress: "127.0.0.2" });
      const far2 = await connectAs(cluster, db, "bisman_app", { ...opts, localAddress: "127.0.0.2" });
      const near = await connectAs(cluster, db, "bisman_app", opts);
      open.push(far1, far2, near);
      const pid = async (c: postgres.Sql) =>
        (await c<{ pid: number }[]>`select pg_backend_pid() as pid`)[0].pid;
      const before = await Promise.all(open.map(pid));

      const plan = await terminateClient.plan({ target: "main", address: "127.0.0.2" }, deps);
      assert.equal(plan.sessions.length, 2);
      assert.ok(plan.sessions.every((s) => s.address === "127.0.0.2" && s.user === "bisman_app"));
      assert.match(plan.summary, /Terminate 2 session\(s\) from 127\.0\.0\.2\/32 on main \(bisman_app\)/);
      const result = await terminateClient.run(plan, deps);
      assert.equal(result.terminated.terminated.length, 2);
      assert.deepEqual(result.remaining, []);
      // postgres.js reconnects on the next query: a new backend pid means the old session was cut.
      const after = await Promise.all(open.map(pid));
      assert.notEqual(after[0], before[0]);
      assert.notEqual(after[1], before[1]);
      assert.equal(after[2], before[2], "the session from 127.0.0.1 is the same one");
      await far1.end({ timeout: 1 });
      await far2.end({ timeout: 1 });
      const [ev] = await sql`
        select actor, host(target_address) as addr, jsonb_array_length(details -> 'terminated') as n
          from security_events where event_type = 'sessions_terminated'`;
      assert.deepEqual([ev.actor, ev.addr, ev.n], [USERS.alice, "127.0.0.2", 2]);
      assert.equal((await terminateClient.reconcile!(plan, deps)).status, "done");
    });

    await t.step(
      "an address with no session, the bot's own address, and malformed addresses are refused",
      async () => {
        await assert.rejects(
          terminateClient.plan({ target: "main", address: "127.0.0.2" }, deps),
          /No session on main comes from/,
        );
        await assert.rejects(
          terminateClient.plan({ target: "main", address: "127.0.0.0/24" }, deps),
          /the bot itself connects to main from 127\.0\.0\.1/,
        );
        for (
          const address of [
            "127.0.0.2'; select 1; --",
            "127.0.0.256",
            "127.0.0.2/33",
            "localhost",
            "::1/200",
            "１２７.0.0.2",
          ]
        ) {
          assert.equal(terminateClient.args.safeParse({ target: "main", address }).success, false, address);
        }
      },
    );
  } finally {
    await Promise.all(open.map((c) => c.end({ timeout: 1 })));
    await deps.close();
  }
});
