import assert from "node:assert/strict";
import { startCluster } from "../../standins/cluster.ts";
import { createBismanDatabase } from "../support/bisman_schema.ts";
import { testOpDeps } from "../support/op_deps.ts";
import { testConfig, USERS } from "../support/bot.ts";
import { listSecurityEvents, securityEventsArgs } from "../../ops/security_events.ts";
import { inTargetTransaction, recordSecurityEvent } from "../../ops/_security.ts";

Deno.test("security_events lists a target's events newest first, filtered by type and time, with counts", async (t) => {
  await using cluster = await startCluster({ name: "secevents" });
  const { db, sql } = await createBismanDatabase(cluster);
  const deps = {
    ...(await testOpDeps(cluster, {
      config: testConfig(cluster, (doc) => (doc.targets.main.primary.database = db)),
    })),
    actor: USERS.alice,
  };
  try {
    await t.step(
      "events the bot records carry the requester, its service name, and the transaction's txid",
      async () => {
        await inTargetTransaction(deps, "main", async () => {}, () => ({
          eventType: "address_blocked",
          severity: "critical",
          targetAddress: "203.0.113.7/32",
          details: { note: "test" },
        }));
        await recordSecurityEvent(sql, deps, { eventType: "role_locked", targetRole: "mallory" });
        await sql`insert into security_events (occurred_at, event_type, source) values (now() - interval '10 days', 'role_locked', 'app')`;
        const r = await listSecurityEvents({ target: "main", since: "1h" }, deps);
        assert.deepEqual(
          r.events.slice(0, 2).map((e) => [e.eventType, e.actor, e.source, e.targetRole, e.targetAddress]),
          [
            ["role_locked", USERS.alice, "bisman-ops", "mallory", null],
            ["address_blocked", USERS.alice, "bisman-ops", null, "203.0.113.7"],
          ],
        );
        assert.ok(r.events.every((e) => typeof e.txid === "number"));
        // The target SQL's own apply is recorded too (and its DDL, in the same transactions).
        assert.ok(r.byType.target_sql_applied >= 3 && r.byType.ddl > 0, JSON.stringify(r.byType));
        assert.equal(r.byType.role_locked, 1, "the 10-day-old event is outside since=1h");
      },
    );

    await t.step("type= and limit= narrow the list; 'more' counts the rest", async () => {
      const r = await listSecurityEvents(
        { target: "main", since: "30d", type: "role_locked", limit: 1 },
        deps,
      );
      assert.deepEqual(r.events.map((e) => e.targetRole), ["mallory"]);
      assert.equal(r.more, 1);
      assert.deepEqual(r.byType, { role_locked: 2 });
      for (const type of ["role_locked'; --", "Role", "x".repeat(64)]) {
        assert.equal(securityEventsArgs.safeParse({ target: "main", type }).success, false, type);
      }
    });

    await t.step("a target without the audit tables says to apply the target SQL", async () => {
      const bare = await cluster.createDatabase("bare");
      const d2 = await testOpDeps(cluster, {
        config: testConfig(cluster, (doc) => (doc.targets.main.primary.database = bare)),
      });
      try {
        await assert.rejects(
          listSecurityEvents({ target: "main" }, d2),
          /security_events is missing.*apply-target-sql main/,
        );
      } finally {
        await d2.close();
      }
    });
  } finally {
    await deps.close();
  }
});
