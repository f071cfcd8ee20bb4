import assert from "node:assert/strict";
import { startCluster } from "../../standins/cluster.ts";
import { createBismanDatabase } from "../support/bisman_schema.ts";
import { startTestBot, testConfig, USERS } from "../support/bot.ts";
import { ask } from "../support/gate.ts";
import { ACTIONS } from "../../views/actions.ts";
import { rolesApply } from "../../ops/roles_apply.ts";
import { readRoleDrift } from "../../ops/role_drift.ts";
import { detectBypass } from "../../ops/detect_bypass.ts";
import type { OpsError } from "../../core/errors.ts";

Deno.test("roles_apply removes drift in one transaction, refuses a changed database, and runs once approved through the gate", async (t) => {
  await using cluster = await startCluster({ name: "rolesapply" });
  const { db, sql } = await createBismanDatabase(cluster);
  const config = testConfig(cluster, (doc) => {
    doc.targets.main.primary.database = db;
    doc.targets.main.security = { other_roles: ["bisman_ops", "postgres"] };
  });
  const tb = await startTestBot(cluster, { config });
  const deps = { ...tb.bot.deps, actor: USERS.alice };
  try {
    await t.step(
      "plan() lists the exact statements; run() applies them and a second roles run reports no drift",
      async () => {
        await sql.unsafe(`
        grant insert, update on clients to bisman_readonly;
        alter role bisman_readonly superuser;
      `);
        const plan = await rolesApply.plan({ target: "main" }, deps);
        assert.deepEqual(plan.statements, [
          "ALTER ROLE bisman_readonly NOSUPERUSER;",
          "REVOKE INSERT, UPDATE ON TABLE public.clients FROM bisman_readonly;",
        ]);
        assert.deepEqual(plan.steps, [
          "BEGIN",
          ...plan.statements,
          "Record grants_applied in security_events",
          "COMMIT, then compare again",
        ]);
        assert.equal(await rolesApply.revalidate!(plan, deps), undefined);
        assert.equal((await rolesApply.reconcile!(plan, deps)).status, "not_done");
        const result = await rolesApply.run(plan, deps);
        assert.deepEqual(result.after.drift, []);
        assert.deepEqual((await readRoleDrift({ target: "main" }, deps)).drift, []);
        assert.equal((await rolesApply.reconcile!(plan, deps)).status, "done");
        const [ev] =
          await sql`select actor, source, details from security_events where event_type = 'grants_applied'`;
        assert.equal(ev.actor, USERS.alice);
        assert.equal(ev.source, "bisman-ops");
        assert.deepEqual(ev.details.statements, plan.statements);
        await assert.rejects(
          rolesApply.plan({ target: "main" }, deps),
          /No drift on main: .* nothing to apply/,
        );
      },
    );

    await t.step("a plan whose database changed before approval is refused by revalidate()", async () => {
      await sql`grant delete on payments to bisman_readonly`;
      const plan = await rolesApply.plan({ target: "main" }, deps);
      await sql`grant truncate on invoices to bisman_readonly`;
      assert.match(
        (await rolesApply.revalidate!(plan, deps))!,
        /changed since the plan: it would now take 2 statement\(s\), not 1/,
      );
      await sql`revoke truncate on invoices from bisman_readonly`;
    });

    await t.step(
      "run() never executes a plan's stored text: altered statements are refused, nothing runs",
      async () => {
        const plan = await rolesApply.plan({ target: "main" }, deps);
        for (
          const statements of [
            [...plan.statements, "REVOKE SELECT ON TABLE public.no_such_table FROM PUBLIC;"],
            ["ALTER ROLE bisman_readonly SUPERUSER;"],
            plan.statements.map((s) => s.replace("bisman_readonly", "bisman_app")),
            [],
          ]
        ) {
          await assert.rejects(
            rolesApply.run({ ...plan, statements }, deps),
            (e: OpsError) =>
              e.code === "state_changed" && /are not the \d+ that were approved/.test(e.userMessage) &&
              /nothing was changed/.test(e.userMessage),
          );
        }
        const [{ has }] =
          await sql`select has_table_privilege('bisman_readonly', 'payments', 'DELETE') as has`;
        assert.equal(has, true, "none of the plan's statements ran");
        const [{ sup }] = await sql`select rolsuper as sup from pg_roles where rolname = 'bisman_readonly'`;
        assert.equal(sup, false);
      },
    );

    await t.step(
      "through the gate: /bisman roles apply waits for an approver, runs once, and the drift is gone",
      async () => {
        const { id, text } = await ask(tb, "roles apply main");
        assert.ok(id, text);
        assert.equal(
          (await readRoleDrift({ target: "main" }, deps)).drift.length,
          1,
          "nothing ran before approval",
        );
        await tb.click(ACTIONS.approve, id!, USERS.carol);
        await tb.waitForState(id!, "succeeded");
        assert.deepEqual((await readRoleDrift({ target: "main" }, deps)).drift, []);
        const [{ has }] =
          await sql`select has_table_privilege('bisman_readonly', 'payments', 'DELETE') as has`;
        assert.equal(has, false);
        const roles = await ask(tb, "roles main");
        assert.match(roles.text, /roles on main: 0 drift item\(s\)/);
        // The REVOKEs went through the event trigger in the bot's own transactions: detect does not call them "by hand".
        const own = await sql<{ id: string }[]>`
        select d.id from security_events d
         where d.event_type = 'ddl'
           and d.txid in (select txid from security_events where event_type = 'grants_applied')`;
        assert.equal(
          own.length,
          2,
          "one REVOKE in the first apply (ALTER ROLE is global: no event), one through the gate",
        );
        const found = await detectBypass({ target: "main", since: "1h" }, deps);
        const flagged = found.findings.filter((f) => f.kind === "ddl_outside_bot").flatMap((f) =>
          f.subject.events as number[]
        );
        assert.ok(flagged.length >= 4, "the hand-made GRANTs and REVOKE are flagged");
        assert.deepEqual(own.filter((o) => flagged.includes(Number(o.id))), []);
      },
    );
  } finally {
    await tb.stop();
  }
});
