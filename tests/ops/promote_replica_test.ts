import assert from "node:assert/strict";
import { startCluster } from "../../standins/cluster.ts";
import { testOpDeps } from "../support/op_deps.ts";
import { startTestBot, testConfig, USERS } from "../support/bot.ts";
import { ask } from "../support/gate.ts";
import { waitFor } from "../../standins/wait.ts";
import { promoteReplica } from "../../ops/promote_replica.ts";
import type { OpsError } from "../../core/errors.ts";
import { ACTIONS } from "../../views/actions.ts";

// Promotion changes cluster-wide state: this file has its own cluster, and its steps run in order.
Deno.test("promote_replica: the plan warns of split brain, the run refuses while the old primary is writable and not fenced, fenced=true promotes, reconcile sees it", async (t) => {
  await using cluster = await startCluster({ name: "promote", replica: true });
  const config = testConfig(cluster, (doc) => {
    doc.alerts = { lag_check: { enabled: false } };
  });
  const deps = await testOpDeps(cluster, { config });
  const tb = await startTestBot(cluster, { config });
  const primary = cluster.primary.sql();
  try {
    await primary`create table promo_t (id int primary key)`;
    await primary`insert into promo_t values (1)`;
    await cluster.waitForReplay();
    let plan!: Awaited<ReturnType<typeof promoteReplica.plan>>;

    await t.step("plan() refuses the primary, an unknown member and a malformed name", async () => {
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
      "plan() shows lag, replay position and steps, and warns loudly that the old primary still answers",
      async () => {
        plan = await promoteReplica.plan({ target: "main", replica: "replica1" }, deps);
        assert.match(plan.replayLsn, /^[0-9A-F]+\/[0-9A-F]+$/);
        assert.equal(plan.timeline, 1);
        assert.equal(plan.lag.bytes, 0);
        assert.deepEqual(plan.oldPrimary, {
          address: `127.0.0.1:${cluster.primary.port}`,
          answers: true,
          acceptsWrites: true,
        });
        assert.ok(
          plan.warnings!.some((w) =>
            /SPLIT BRAIN.*STILL ANSWERS.*Fence the old primary first.*fenced=true/s.test(w)
          ),
        );
        assert.equal(plan.fenced, false);
        assert.ok(plan.steps.some((s) => /Probe the old primary .* refuse, promoting nothing/.test(s)));
        assert.ok(plan.steps.some((s) => /Verify writes are accepted/.test(s)));
        assert.deepEqual(plan.fingerprint, {
          replica: "replica1",
          role: "standby",
          timeline: 1,
          replayLsn: plan.replayLsn,
        });
        assert.ok(plan.steps.some((s) => s.includes("SELECT pg_promote(true, 60)")));
        assert.ok(plan.steps.some((s) => s.includes("pg_is_in_recovery() is false")));
        assert.ok(plan.steps.some((s) => /new timeline/.test(s)));
        assert.equal(await promoteReplica.revalidate!(plan, deps), undefined);
        assert.equal((await promoteReplica.reconcile!(plan, deps)).status, "not_done");
      },
    );

    await t.step(
      "/bisman promote refuses the primary and an unknown replica before any request",
      async () => {
        assert.match((await ask(tb, "promote primary")).text, /target main has replicas replica1/);
        assert.match((await ask(tb, "promote nosuch main")).text, /Cannot promote "nosuch"/);
      },
    );

    let id = 0;
    await t.step("the approval message shows the steps and the split-brain warning", async () => {
      const r = await ask(tb, "promote replica1");
      assert.ok(r.id, r.text);
      id = r.id!;
      const shown = JSON.stringify(tb.approvalMessage(id)!.blocks);
      assert.match(shown, /Promote main\/replica1/);
      assert.match(shown, /SPLIT BRAIN/);
      assert.match(shown, /STILL ANSWERS/);
      assert.match(shown, /pg_promote\(true, 60\)/);
    });

    await t.step("one approval is not enough: promote needs two by default", async () => {
      await tb.click(ACTIONS.approve, id, USERS.bob);
      await waitFor(async () => (await tb.bot.gate.view(id))!.approvals.length === 1, {
        what: "bob's approval",
      });
      assert.equal((await tb.bot.gate.view(id))!.request.state, "pending");
      const [r] = await cluster.replica!.sql()`select pg_is_in_recovery() as r`;
      assert.equal(r.r, true, "still a standby");
    });

    await t.step(
      "with the old primary alive and not fenced, the second approval is refused at run time: nothing promoted",
      async () => {
        await tb.click(ACTIONS.approve, id, USERS.carol);
        await tb.waitForState(id, "failed", 60_000);
        const row = (await tb.bot.gate.view(id))!.request;
        assert.match(
          row.error!,
          /Refused to promote replica1, nothing was changed: the old primary .* answers as a writable primary/,
        );
        assert.match(row.error!, /split brain/);
        const [r] = await cluster.replica!.sql()`select pg_is_in_recovery() as r`;
        assert.equal(r.r, true, "still a standby");
        const failed = (await tb.bot.deps.audit.rows({ requestId: id })).find((x) =>
          x.action === "op.failed"
        )!;
        assert.equal((failed.details as { step?: string }).step, "fence");
        // run() itself refuses the same way (the gate is not what stops it).
        await assert.rejects(
          promoteReplica.run(plan, deps),
          (e: OpsError) => e.code === "step_failed" && /Refused to promote/.test(e.userMessage),
        );
        assert.equal((await cluster.replica!.sql()`select pg_is_in_recovery() as r`)[0].r, true);
      },
    );

    await t.step(
      "fenced=true is shown on the plan, and two approvals promote: the replica leaves recovery, changes timeline and accepts writes",
      async () => {
        const asked = await ask(tb, "promote replica1 fenced=true");
        assert.ok(asked.id, asked.text);
        id = asked.id!;
        const shown = JSON.stringify(tb.approvalMessage(id)!.blocks);
        assert.match(shown, /old primary stated fenced: fenced=true/);
        assert.match(shown, /requester states it is fenced/);
        await tb.click(ACTIONS.approve, id, USERS.bob);
        await waitFor(async () => (await tb.bot.gate.view(id))!.approvals.length === 1, {
          what: "bob's approval",
        });
        await tb.click(ACTIONS.approve, id, USERS.carol);
        await tb.waitForState(id, "succeeded", 90_000);
        const result = (await tb.bot.gate.view(id))!.request.result as any;
        assert.equal(result.oldPrimary.state, "writable");
        assert.equal(result.oldPrimary.fenced, true);
        assert.equal(result.writes.verified, true);
        assert.match((await tb.bot.gate.view(id))!.request.summary!, /stated fenced: fenced=true/);
        const rsql = cluster.replica!.sql();
        const [r] = await rsql`select pg_is_in_recovery() as r`;
        assert.equal(r.r, false);
        await rsql`insert into promo_t values (2)`;
        const [{ n }] = await rsql`select count(*)::int as n from promo_t`;
        assert.equal(n, 2);
      },
    );

    await t.step(
      "afterwards the old plan no longer holds, a new plan is refused, and reconcile() says done",
      async () => {
        assert.match((await promoteReplica.revalidate!(plan, deps))!, /no longer a standby/);
        await assert.rejects(
          promoteReplica.plan({ target: "main", replica: "replica1" }, deps),
          (e: OpsError) => e.code === "invalid_input" && /is not a standby/.test(e.userMessage),
        );
        const r = await promoteReplica.reconcile!(plan, deps);
        assert.equal(r.status, "done");
        if (r.status === "done") {
          assert.equal(r.result.timeline, 2);
          assert.match(promoteReplica.describeResult!(r.result), /timeline 1 → 2/);
        }
      },
    );

    await t.step("/bisman lag now reports replica1 as critical: it is no longer a standby", async () => {
      const r = await ask(tb, "lag");
      assert.match(r.text, /replica1 \S+: critical/);
      assert.match(r.text, /not in recovery/);
    });
  } finally {
    await tb.stop();
    await deps.close();
  }
});
