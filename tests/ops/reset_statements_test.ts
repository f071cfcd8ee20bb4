import assert from "node:assert/strict";
import { startCluster } from "../../standins/cluster.ts";
import { startTestBot, testConfig, USERS } from "../support/bot.ts";
import { ask, ephemeralTo } from "../support/gate.ts";
import { resetStatements } from "../../ops/reset_statements.ts";
import { Targets } from "../../core/targets.ts";
import { ACTIONS } from "../../views/actions.ts";

Deno.test("reset_statements: plan, revalidate, run and reconcile on a real primary, and a stale approval through the gate", async (t) => {
  await using cluster = await startCluster({ name: "resetstats", preload: ["pg_stat_statements"] });
  const sql = cluster.primary.sql();
  await sql`create extension if not exists pg_stat_statements`;
  const statsReset = async () =>
    (await sql<{ r: string }[]>`
      select to_char(stats_reset at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') as r
        from pg_stat_statements_info`)[0].r;
  const tb = await startTestBot(cluster);
  const deps = { ...tb.bot.deps, actor: USERS.alice };
  try {
    await t.step(
      "plan() names the target, its address and the statement count; the fingerprint is stats_reset",
      async () => {
        const plan = await resetStatements.plan({ target: "main" }, deps);
        assert.equal(plan.target, "main");
        assert.equal(plan.address, `127.0.0.1:${cluster.primary.port}`);
        assert.match(
          plan.summary,
          /Reset pg_stat_statements on main's primary: discard the statistics of all \d+/,
        );
        assert.ok(plan.steps.some((s) => s.includes("select pg_stat_statements_reset()")));
        assert.deepEqual(plan.fingerprint, {
          extension: true,
          statsReset: await statsReset(),
          inRecovery: false,
        });
        assert.equal(await resetStatements.revalidate!(plan, deps), undefined, "nothing changed yet");
      },
    );

    await t.step("plan() refuses a database without the extension, naming what to do", async () => {
      const bare = await cluster.createDatabase("bare");
      const config = testConfig(cluster, (d) => (d.targets.main.primary.database = bare));
      const targets = new Targets(config, tb.bot.deps.secrets);
      try {
        await assert.rejects(
          resetStatements.plan({ target: "main" }, { ...deps, config, targets }),
          new RegExp(
            `pg_stat_statements is not installed in database ${bare} \\(create extension pg_stat_statements`,
          ),
        );
      } finally {
        await targets.close();
      }
    });

    await t.step(
      "revalidate() names a reset made after the plan; reconcile() says not done, then done",
      async () => {
        const plan = await resetStatements.plan({ target: "main" }, deps);
        const before = await resetStatements.reconcile!(plan, deps);
        assert.equal(before.status, "not_done");
        await sql`select pg_stat_statements_reset()`;
        const changed = await resetStatements.revalidate!(plan, deps);
        assert.match(changed!, /the statistics were reset at .* by someone else \(the plan saw them as of /);
        const after = await resetStatements.reconcile!(plan, deps);
        assert.equal(after.status, "done");
      },
    );

    await t.step("run() resets and verifies that stats_reset moved; the plan is then stale", async () => {
      const plan = await resetStatements.plan({ target: "main" }, deps);
      const result = await resetStatements.run(plan, deps);
      assert.equal(result.statsResetAfter, await statsReset());
      assert.ok(result.statsResetAfter! > plan.fingerprint.statsReset!);
      assert.match(resetStatements.describeResult!(result), /statistics of \d+ statements discarded on main/);
      assert.match((await resetStatements.revalidate!(plan, deps))!, /reset at/);
    });

    await t.step(
      "through the gate: a plan approved after the state changed does not run; the message says what changed",
      async () => {
        const { id } = await ask(tb, "reset-stats");
        await sql`select pg_stat_statements_reset()`;
        const changedAt = await statsReset();
        await tb.click(ACTIONS.approve, id!, USERS.carol);
        await tb.waitForState(id!, "stale");
        assert.equal(await statsReset(), changedAt, "the bot did not reset them again");
        const msg = tb.approvalMessage(id!)!;
        assert.match(
          msg.text!,
          /not run: The state changed since the plan was made: the statistics were reset at/,
        );
        assert.match(JSON.stringify(msg.blocks), /a fresh request \(and a fresh approval\) is needed/);
        const actions = (await tb.bot.deps.audit.rows({ requestId: id! })).map((r) => r.action);
        assert.deepEqual(actions, ["request.created", "request.planned", "request.approved", "op.stale"]);
        await tb.click(ACTIONS.approve, id!, USERS.bob);
        await ephemeralTo(tb, USERS.bob, /did not run because its state changed/);
      },
    );

    await t.step("through the gate: approved, it resets once and the message ends as succeeded", async () => {
      const before = await statsReset();
      const { id } = await ask(tb, "reset-stats main");
      await tb.click(ACTIONS.approve, id!, USERS.carol);
      await tb.waitForState(id!, "succeeded");
      assert.ok((await statsReset()) > before);
      assert.match(
        tb.approvalMessage(id!)!.text!,
        /succeeded: statistics of \d+ statements discarded on main/,
      );
    });
  } finally {
    await tb.stop();
  }
});
