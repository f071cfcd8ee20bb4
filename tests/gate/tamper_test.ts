/**
 * Trust does not rest on the state database: whoever can write `bisman_ops.requests` and `approvals` (here:
 * the cluster's superuser) edits a pending request in every way that changes what runs, then an eligible
 * approver clicks the genuine Approve button of the message they saw. Each edit is refused as
 * `plan_tampered`, nothing changes on the target or in Vault, and the refusal is recorded in the keyed audit
 * log, in the target's security_events and in the channel.
 */

import assert from "node:assert/strict";
import type { Sql } from "postgres";
import { startCluster, type TestCluster } from "../../standins/cluster.ts";
import { startTestBot, type TestBot, testConfig, USERS } from "../support/bot.ts";
import { ask } from "../support/gate.ts";
import { prepareGateTables, registerGateTest, runsOf } from "../support/gate_op.ts";
import { login, startTwoRoleBot } from "../support/rotation.ts";
import { ACTIONS } from "../../views/actions.ts";
import { applyTargetSql } from "../support/bisman_schema.ts";
import { planHashOf } from "../../gate/hooks.ts";

registerGateTest();

/** Runs `edit` on request `id`'s row as the superuser of the state database. */
async function editRow(tb: TestBot, cluster: TestCluster, id: number, edit: (sql: Sql) => Promise<unknown>) {
  const url = new URL(tb.bot.deps.env.databaseUrl);
  const sql = cluster.primary.sql(url.pathname.slice(1));
  await edit(sql);
  void id;
}

/** What a refused click leaves: the clicker's answer, the audit rows, the security event, the channel post. */
async function assertTampered(tb: TestBot, cluster: TestCluster, id: number, what: RegExp) {
  await tb.bot.gate.idle();
  const view = await tb.bot.gate.view(id);
  assert.equal(view!.request.state, "pending", "nothing was claimed");
  const audit = await tb.bot.deps.audit.rows({ requestId: id });
  const tampered = audit.filter((r) => r.action === "plan_tampered");
  assert.equal(tampered.length >= 1, true, `plan_tampered in the audit log: ${audit.map((r) => r.action)}`);
  assert.match(String(tampered[0].details.problem), what);
  assert.equal(audit.some((r) => r.action === "op.started"), false, "nothing started");
  const events = await cluster.primary.sql("postgres")<{ n: number }[]>`
    select count(*)::int as n from public.security_events
     where event_type = 'plan_tampered' and request_id = ${id}`;
  assert.ok(events[0].n >= 1, "plan_tampered in the target's security_events");
  assert.ok(
    tb.slack.messages.some((m) => /was altered in the state database/.test(m.text ?? "")),
    "the channel was told",
  );
  assert.ok(
    tb.slack.ephemerals.some((e) =>
      e.ephemeral_user === USERS.bob && /altered in the state database/.test(e.text ?? "")
    ),
    "the clicker was told",
  );
  assert.equal((await tb.bot.deps.audit.verify()).ok, true, "the chain itself is intact");
  const shown = JSON.stringify(tb.approvalMessage(id)!.blocks);
  assert.match(shown, new RegExp(`Altered: request #${id}`), "the message no longer shows a plan to approve");
  assert.doesNotMatch(shown, /"type":"actions"/, "and offers no buttons");
}

Deno.test("a rotation edited in the state database before the click rotates nothing", async (t) => {
  await using cluster = await startCluster({ name: "tamper-rotate" });
  const { tb, vault, stop } = await startTwoRoleBot(cluster);
  try {
    for (
      const [name, edit, what] of [
        [
          "the plan's role renamed, fingerprint emptied, plan_hash left",
          (s: Sql, id: number) =>
            s`update bisman_ops.requests
                 set plan = jsonb_set(jsonb_set(replace(plan::text, 'bisman_app', 'bisman_readonly')::jsonb,
                            '{fingerprint,roles}', '{}'::jsonb), '{summary}', plan->'summary')
               where id = ${id}`,
          /plan .*changed after the bot sealed it/,
        ],
        [
          "the plan edited and its short hash recomputed as the attacker can",
          async (s: Sql, id: number) => {
            const [r] = await s<
              { plan: Record<string, unknown> }[]
            >`select plan from bisman_ops.requests where id = ${id}`;
            const plan = JSON.parse(JSON.stringify(r.plan).replaceAll("bisman_app", "bisman_readonly"));
            await s`update bisman_ops.requests set plan = ${s.json(plan)}, plan_hash = ${await planHashOf(
              plan,
            )}
                     where id = ${id}`;
          },
          /plan, plan_hash were changed/,
        ],
        [
          "the seal copied from another request",
          (s: Sql, id: number) =>
            s`update bisman_ops.requests set seal = (select seal from bisman_ops.requests where id <> ${id} limit 1)
               where id = ${id}`,
          /seal was altered or moved/,
        ],
      ] as const
    ) {
      await t.step(name, async () => {
        const a = await ask(tb, "rotate bisman_app");
        assert.ok(a.id, a.text);
        // The approval message as the approver saw it: bisman_app.
        assert.match(JSON.stringify(tb.approvalMessage(a.id)!.blocks), /bisman_app/);
        await editRow(tb, cluster, a.id!, (s) => edit(s, a.id!));
        assert.equal(await tb.click(ACTIONS.approve, a.id!, USERS.bob), 200);
        await assertTampered(tb, cluster, a.id!, what);
        assert.equal(vault.kvGet("bisman/db")!.version, 1, "Vault unchanged");
        assert.equal(await login(cluster, "bisman_app", "old-app-pw-123456"), true);
        assert.equal(await login(cluster, "bisman_readonly", "old-ro-pw-123456"), true);
      });
    }
  } finally {
    await stop();
  }
});

Deno.test("every field of a pending request that changes what runs is sealed; approvals are too", async (t) => {
  await using cluster = await startCluster({ name: "tamper-fields" });
  await applyTargetSql(cluster.primary.sql(), { parts: ["audit"] });
  await prepareGateTables(cluster.primary.sql());
  const config = testConfig(cluster, (doc) => {
    doc.policies = { ...(doc.policies ?? {}), gate_test: { approvals: 2 } };
  });
  const tb = await startTestBot(cluster, { config });
  const target = cluster.primary.sql();
  try {
    const cases: [string, (s: Sql, id: number) => Promise<unknown>, RegExp][] = [
      [
        "args",
        (s, id) => s`update bisman_ops.requests set args = args || '{"key":"other"}' where id = ${id}`,
        /args/,
      ],
      [
        "target",
        (s, id) => s`update bisman_ops.requests set target = 'elsewhere' where id = ${id}`,
        /target/,
      ],
      [
        "action",
        (s, id) => s`update bisman_ops.requests set action = 'reset_statements' where id = ${id}`,
        /action/,
      ],
      [
        "approvals needed",
        (s, id) => s`update bisman_ops.requests set approvals_needed = 1 where id = ${id}`,
        /approvals_needed/,
      ],
      [
        "backup-first flag",
        (s, id) => s`update bisman_ops.requests set pre_backup = false where id = ${id}`,
        /pre_backup/,
      ],
      [
        "policy (typed confirmation dropped)",
        (s, id) => s`update bisman_ops.requests set policy = policy || '{"approvals":1}' where id = ${id}`,
        /policy/,
      ],
      [
        "expiry moved",
        (s, id) =>
          s`update bisman_ops.requests set expires_at = expires_at + interval '9 days' where id = ${id}`,
        /expires_at/,
      ],
      [
        "requester",
        (s, id) => s`update bisman_ops.requests set requester_id = ${USERS.carol} where id = ${id}`,
        /requester_id/,
      ],
    ];
    let n = 0;
    for (const [name, edit, what] of cases) {
      await t.step(`${name} edited: refused, nothing ran`, async () => {
        const key = `f${++n}`;
        const a = await ask(tb, `gate-test ${key}`);
        assert.ok(a.id, a.text);
        await editRow(tb, cluster, a.id!, (s) => edit(s, a.id!));
        await tb.click(ACTIONS.approve, a.id!, USERS.bob);
        await tb.click(ACTIONS.approve, a.id!, USERS.carol);
        await assertTampered(tb, cluster, a.id!, what);
        assert.equal(await runsOf(target, key), 0);
      });
    }

    await t.step("an approval inserted by hand does not count, and the request is refused", async () => {
      const a = await ask(tb, "gate-test forged");
      await editRow(
        tb,
        cluster,
        a.id!,
        (s) =>
          s`insert into bisman_ops.approvals (request_id, approver, at, plan_hash, seal)
          select id, ${USERS.carol}, now(), plan_hash, 'deadbeef:00' from bisman_ops.requests where id = ${a
            .id!}`,
      );
      await tb.click(ACTIONS.approve, a.id!, USERS.bob);
      await assertTampered(tb, cluster, a.id!, /approval\(s\) by U0CAROL were not recorded by the bot/);
      assert.equal(await runsOf(target, "forged"), 0);
    });

    await t.step("the requester's own approval row, inserted by hand, never counts", async () => {
      const a = await ask(tb, "gate-test selfapp");
      await editRow(
        tb,
        cluster,
        a.id!,
        (s) =>
          s`insert into bisman_ops.approvals (request_id, approver, at, plan_hash, seal)
          select id, requester_id, now(), plan_hash, 'x:y' from bisman_ops.requests where id = ${a.id!}`,
      );
      await tb.click(ACTIONS.approve, a.id!, USERS.bob);
      await assertTampered(tb, cluster, a.id!, /approval\(s\) by U0ALICE were not recorded/);
      assert.equal(await runsOf(target, "selfapp"), 0);
    });

    await t.step("a request that ran, set back to pending, does not run again", async () => {
      const a = await ask(tb, "gate-test replay");
      await tb.click(ACTIONS.approve, a.id!, USERS.bob);
      await tb.click(ACTIONS.approve, a.id!, USERS.carol);
      await tb.waitForState(a.id!, "succeeded");
      assert.equal(await runsOf(target, "replay"), 1);
      await editRow(tb, cluster, a.id!, async (s) => {
        await s`delete from bisman_ops.approvals where request_id = ${a.id!}`;
        await s`update bisman_ops.requests set state = 'pending', run_by = null where id = ${a.id!}`;
      });
      await tb.click(ACTIONS.approve, a.id!, USERS.bob);
      await tb.click(ACTIONS.approve, a.id!, USERS.carol);
      await tb.bot.gate.idle();
      assert.equal(await runsOf(target, "replay"), 1, "ran once");
      const audit = await tb.bot.deps.audit.rows({ requestId: a.id! });
      assert.ok(
        audit.some((r) => r.action === "plan_tampered" && /already started/.test(String(r.details.problem))),
      );
    });

    await t.step("an untouched request still runs after two genuine approvals", async () => {
      const a = await ask(tb, "gate-test clean");
      await tb.click(ACTIONS.approve, a.id!, USERS.bob);
      await tb.click(ACTIONS.approve, a.id!, USERS.carol);
      await tb.waitForState(a.id!, "succeeded");
      assert.equal(await runsOf(target, "clean"), 1);
    });
  } finally {
    await tb.stop();
  }
});
