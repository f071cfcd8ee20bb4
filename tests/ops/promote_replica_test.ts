import assert from "node:assert/strict";
import { startCluster } from "../support/cluster.ts";
import { testOpDeps } from "../support/op_deps.ts";
import { promoteReplica } from "../../ops/promote_replica.ts";
import { OpsError } from "../../core/errors.ts";

// Promotion changes cluster-wide state: this file has its own cluster and runs its steps in order.
Deno.test("promote_replica plans with a split-brain warning, refuses non-standbys, promotes, and reconciles", async (t) => {
  await using cluster = await startCluster({ name: "promote-op", replica: true });
  const deps = await testOpDeps(cluster);
  const primary = cluster.primary.sql();
  try {
    await primary`create table promo_t (id int primary key)`;
    await primary`insert into promo_t values (1)`;
    await cluster.waitForReplay();
    let plan: Awaited<ReturnType<typeof promoteReplica.plan>>;

    await t.step("plan() refuses the primary and an unknown member", async () => {
      await assert.rejects(
        promoteReplica.plan({ target: "main", replica: "primary" }, deps),
        (e: OpsError) =>
          e.code === "invalid_input" && /is the target's primary, not a standby/.test(e.userMessage),
      );
      await assert.rejects(
        promoteReplica.plan({ target: "main", replica: "nosuch" }, deps),
        (e: OpsError) => e.code === "not_configured" && /has no member "nosuch"/.test(e.userMessage),
      );
      assert.equal(promoteReplica.args.safeParse({ target: "main", replica: "x; drop" }).success, false);
    });

    await t.step(
      "plan() shows lag, replay position, steps, and warns loudly that the old primary still answers",
      async () => {
        plan = await promoteReplica.plan({ target: "main", replica: "replica1" }, deps);
        assert.equal(plan.replica, "replica1");
        assert.match(plan.replayLsn, /^[0-9A-F]+\/[0-9A-F]+$/);
        assert.equal(plan.timeline, 1);
        assert.equal(plan.lag.bytes, 0);
        assert.equal(plan.oldPrimary.answers, true);
        assert.equal(plan.oldPrimary.acceptsWrites, true);
        assert.ok(
          plan.warnings!.some((w) => /SPLIT BRAIN.*STILL ANSWERS.*Fence the old primary first/s.test(w)),
        );
        assert.deepEqual(plan.fingerprint, {
          replica: "replica1",
          role: "standby",
          timeline: 1,
          replayLsn: plan.replayLsn,
        });
        assert.ok(plan.steps.some((s) => s.includes("SELECT pg_promote(true, 60)")));
        assert.ok(plan.steps.some((s) => s.includes("pg_is_in_recovery() is false")));
        assert.ok(plan.steps.some((s) => /new timeline/.test(s)));
        JSON.parse(JSON.stringify(plan)); // serialisable
        assert.equal(await promoteReplica.revalidate!(plan, deps), undefined);
      },
    );

    await t.step("reconcile() before running says not done", async () => {
      const r = await promoteReplica.reconcile!(plan, deps);
      assert.equal(r.status, "not_done");
    });

    await t.step(
      "run() promotes: the replica leaves recovery, changes timeline and accepts writes",
      async () => {
        const result = await promoteReplica.run(plan, deps);
        assert.equal(result.promoted, true);
        assert.equal(result.previousTimeline, 1);
        assert.equal(result.timeline, 2);
        const rsql = cluster.replica!.sql();
        const [row] = await rsql`select pg_is_in_recovery() as r`;
        assert.equal(row.r, false);
        await rsql`insert into promo_t values (2)`;
        const [{ n }] = await rsql`select count(*)::int as n from promo_t`;
        assert.equal(n, 2);
        assert.match(promoteReplica.describeResult!(result), /timeline 1 → 2/);
      },
    );

    await t.step(
      "afterwards the plan no longer holds, a new plan is refused, and reconcile() says done",
      async () => {
        assert.match((await promoteReplica.revalidate!(plan, deps))!, /no longer a standby/);
        await assert.rejects(
          promoteReplica.plan({ target: "main", replica: "replica1" }, deps),
          (e: OpsError) => e.code === "invalid_input" && /is not a standby/.test(e.userMessage),
        );
        const r = await promoteReplica.reconcile!(plan, deps);
        assert.equal(r.status, "done");
        if (r.status === "done") assert.equal(r.result.timeline, 2);
      },
    );
  } finally {
    await deps.close();
  }
});
