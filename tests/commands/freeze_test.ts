import assert from "node:assert/strict";
import { startCluster } from "../../standins/cluster.ts";
import { startTestBot, testConfig, USERS } from "../support/bot.ts";
import { prepareGateTables, registerGateTest, runsOf } from "../support/gate_op.ts";
import { ask, ephemeralTo } from "../support/gate.ts";
import { ACTIONS } from "../../views/actions.ts";

registerGateTest();

Deno.test("/bisman freeze stops destructive actions at once, except those allowed; /bisman unfreeze goes through the gate", async (t) => {
  await using cluster = await startCluster({ name: "freeze", preload: ["pg_stat_statements"] });
  const sql = cluster.primary.sql();
  await sql`create extension if not exists pg_stat_statements`;
  await prepareGateTables(sql);
  const config = testConfig(cluster, (d) => {
    d.policies = { reset_statements: { allowed_during_freeze: true } };
  });
  const tb = await startTestBot(cluster, { config });
  try {
    let pending = 0;
    await t.step("a request made before the freeze is pending", async () => {
      pending = (await ask(tb, "gate-test f1")).id!;
    });

    await t.step("freeze is for operators only", async () => {
      const r = await ask(tb, "freeze because", USERS.carol);
      assert.match(r.text, /is for operators/);
      assert.equal((await tb.bot.gate.readFreeze()).frozen, false);
    });

    await t.step(
      "an operator freezes with a reason; the channel sees who and why; it is audited",
      async () => {
        const r = await ask(tb, 'freeze "incident 42: replica lag"', USERS.bob);
        assert.equal(r.visibility, "in_channel");
        assert.match(r.text, /frozen by bob \(U0BOB\) since .*: incident 42: replica lag/);
        const f = await tb.bot.gate.readFreeze();
        assert.equal(f.frozen, true);
        assert.equal(f.reason, "incident 42: replica lag");
        const set = (await tb.bot.deps.audit.rows()).filter((x) => x.action === "freeze.set");
        assert.equal(set.length, 1);
        assert.equal(set[0].actor, USERS.bob);
        assert.equal(set[0].details.reason, "incident 42: replica lag");
        const again = await ask(tb, "freeze something else", USERS.alice);
        assert.match(again.text, /Already frozen: .*incident 42/);
        assert.equal((await tb.bot.gate.readFreeze()).reason, "incident 42: replica lag");
      },
    );

    await t.step("/bisman status shows the freeze", async () => {
      const r = await ask(tb, "status");
      assert.match(r.text, /frozen by bob \(U0BOB\) since .*: incident 42: replica lag/);
    });

    await t.step("a new destructive request is refused with the freeze reason and audited", async () => {
      const r = await ask(tb, "gate-test f2");
      assert.match(r.text, /Refused: Destructive actions are frozen by bob \(U0BOB\).*incident 42/);
      assert.equal(r.id, undefined);
      const refused = (await tb.bot.deps.audit.rows()).filter((x) => x.action === "request.refused");
      assert.equal(refused.at(-1)!.details.code, "frozen");
    });

    await t.step("a pending request cannot be approved during the freeze", async () => {
      await tb.click(ACTIONS.approve, pending, USERS.carol);
      await ephemeralTo(tb, USERS.carol, /frozen by bob \(U0BOB\).*incident 42: replica lag/);
      assert.equal((await tb.bot.gate.view(pending))!.request.state, "pending");
      assert.equal(await runsOf(sql, "f1"), 0);
    });

    await t.step("an action the config allows during a freeze still works", async () => {
      const { id } = await ask(tb, "reset-stats");
      assert.ok(id, "requested");
      await tb.click(ACTIONS.approve, id!, USERS.carol);
      await tb.waitForState(id!, "succeeded");
    });

    await t.step(
      "unfreeze is a request approved by another person, after which the pending request runs",
      async () => {
        const r = await ask(tb, "unfreeze", USERS.alice);
        assert.match(r.text, /Request #\d+ waits for an approver/);
        assert.equal((await tb.bot.gate.readFreeze()).frozen, true, "nothing lifted before approval");
        await tb.click(ACTIONS.approve, r.id!, USERS.carol);
        await tb.waitForState(r.id!, "succeeded");
        assert.equal((await tb.bot.gate.readFreeze()).frozen, false);
        const lifted = (await tb.bot.deps.audit.rows()).filter((x) => x.action === "freeze.lifted");
        assert.equal(lifted.length, 1);
        assert.doesNotMatch((await ask(tb, "status")).text, /frozen/);
        await tb.click(ACTIONS.approve, pending, USERS.carol);
        await tb.waitForState(pending, "succeeded");
        assert.equal(await runsOf(sql, "f1"), 1);
      },
    );

    await t.step("unfreeze with nothing frozen is refused", async () => {
      const r = await ask(tb, "unfreeze", USERS.alice);
      assert.match(r.text, /Nothing to unfreeze/);
    });
  } finally {
    await tb.stop();
  }
});
