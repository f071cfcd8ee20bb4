import assert from "node:assert/strict";
import { startCluster } from "../../standins/cluster.ts";
import { startTestBot, type TestBot, USERS } from "../support/bot.ts";
import { prepareGateTables, registerGateTest, runsOf } from "../support/gate_op.ts";
import { ask } from "../support/gate.ts";
import { waitFor } from "../../standins/wait.ts";
import { ACTIONS } from "../../views/actions.ts";

registerGateTest();

const approvers = [USERS.bob, USERS.carol, USERS.erin];

/** 20 Approve clicks at once, spread over approvers and over the given bots' endpoints. */
async function clickStorm(tb: TestBot, id: number, eventsUrls: string[]): Promise<number[]> {
  return await Promise.all(
    Array.from({ length: 20 }, (_, i) =>
      tb.click(ACTIONS.approve, id, approvers[i % approvers.length], {
        eventsUrl: eventsUrls[i % eventsUrls.length],
      })),
  );
}

async function startedCount(tb: TestBot, id: number): Promise<number> {
  return (await tb.bot.deps.audit.rows({ requestId: id })).filter((r) => r.action === "op.started").length;
}

Deno.test("ApprovalGate: 20 concurrent Approve clicks execute a request exactly once, on one bot and on two sharing a database", async (t) => {
  await using cluster = await startCluster({ name: "approval-race" });
  const sql = cluster.primary.sql();
  await prepareGateTables(sql);

  await t.step("one bot: 20 concurrent clicks, one run", async () => {
    const tb = await startTestBot(cluster);
    try {
      const { id } = await ask(tb, "gate-test race1 hold=200");
      const statuses = await clickStorm(tb, id!, [tb.eventsUrl]);
      assert.ok(statuses.every((s) => s === 200), "every click is acknowledged");
      await tb.waitForState(id!, "succeeded");
      await tb.bot.gate.idle();
      assert.equal(await runsOf(sql, "race1"), 1);
      assert.equal(await startedCount(tb, id!), 1);
      assert.ok((await tb.bot.deps.audit.verify()).ok, "concurrent appends did not fork the chain");
    } finally {
      await tb.stop();
    }
  });

  await t.step("two bots on one state database: 20 concurrent clicks over both, one run", async () => {
    const stateDb = await cluster.createDatabase("shared");
    const a = await startTestBot(cluster, { stateDb, start: { instanceId: "bot-a" } });
    const b = await startTestBot(cluster, { stateDb, slack: a.slack, start: { instanceId: "bot-b" } });
    try {
      const { id } = await ask(a, "gate-test race2 hold=300");
      const storm = clickStorm(a, id!, [a.eventsUrl, b.eventsUrl]);
      // While it runs under one instance, the other's recovery leaves it alone: its owner is alive.
      const running = await waitFor(async () => {
        const v = (await a.bot.gate.view(id!))!.request;
        return v.state === "running" ? v.run_by : undefined;
      }, { what: "the request to be running", intervalMs: 10 });
      assert.ok(running === "bot-a" || running === "bot-b", `ran under one of the bots (${running})`);
      assert.equal(await a.bot.gate.recoverInterrupted(), 0);
      assert.equal(await b.bot.gate.recoverInterrupted(), 0);
      assert.ok((await storm).every((s) => s === 200));
      await a.waitForState(id!, "succeeded");
      await Promise.all([a.bot.gate.idle(), b.bot.gate.idle()]);
      assert.equal(await runsOf(sql, "race2"), 1);
      assert.equal(await startedCount(a, id!), 1);
      const refused = (await a.bot.deps.audit.rows({ requestId: id! })).filter((r) =>
        r.action === "approval.refused"
      );
      assert.ok(refused.length >= 15, `the other clicks were refused and audited (${refused.length})`);
      assert.ok((await a.bot.deps.audit.verify()).ok, "two writers, one unforked chain");
    } finally {
      await b.stop();
      await a.stop();
    }
  });
});
