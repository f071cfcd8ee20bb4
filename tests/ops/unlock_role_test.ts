import assert from "node:assert/strict";
import { startCluster } from "../../standins/cluster.ts";
import { connectAs, createBismanDatabase, TEST_PASSWORDS } from "../support/bisman_schema.ts";
import { testOpDeps } from "../support/op_deps.ts";
import { testConfig, USERS } from "../support/bot.ts";
import { lockRole } from "../../ops/lock_role.ts";
import { unlockRole } from "../../ops/unlock_role.ts";

Deno.test("unlock_role undoes lock_role, names who locked it, and refuses roles that are NOLOGIN by policy", async (t) => {
  await using cluster = await startCluster({ name: "unlockrole" });
  const { db, sql } = await createBismanDatabase(cluster);
  const config = testConfig(cluster, (doc) => {
    doc.targets.main.primary.database = db;
    doc.targets.main.security = { other_roles: ["bisman_ops"] };
  });
  const deps = { ...(await testOpDeps(cluster, { config })), actor: USERS.bob };
  try {
    await t.step(
      "a role locked by the bot is unlocked, and the plan says who locked it and when",
      async () => {
        await lockRole.run(
          await lockRole.plan({ target: "main", role: "bisman_app" }, { ...deps, actor: USERS.alice }),
          {
            ...deps,
            actor: USERS.alice,
          },
        );
        const plan = await unlockRole.plan({ target: "main", role: "bisman_app" }, deps);
        assert.equal(plan.lockedBy?.actor, USERS.alice);
        assert.deepEqual(plan.steps, [
          "ALTER ROLE bisman_app LOGIN; (with role_unlocked in security_events)",
        ]);
        assert.deepEqual(plan.warnings, []);
        const result = await unlockRole.run(plan, deps);
        assert.equal(result.canLogin, true);
        const app = await connectAs(cluster, db, "bisman_app", { password: TEST_PASSWORDS.bisman_app });
        try {
          assert.deepEqual([...await app`select current_user as u`], [{ u: "bisman_app" }]);
        } finally {
          await app.end({ timeout: 1 });
        }
        const [ev] = await sql`select actor, details from security_events where event_type = 'role_unlocked'`;
        assert.equal(ev.actor, USERS.bob);
        assert.equal(ev.details.locked_by, USERS.alice);
        assert.equal((await unlockRole.reconcile!(plan, deps)).status, "done");
      },
    );

    await t.step("refusals: a role that can log in, a role NOLOGIN by policy, an unknown role", async () => {
      await assert.rejects(
        unlockRole.plan({ target: "main", role: "bisman_app" }, deps),
        /is not locked on main/,
      );
      await assert.rejects(
        unlockRole.plan({ target: "main", role: "bisman_dba" }, deps),
        /NOLOGIN by policy/,
      );
      await assert.rejects(unlockRole.plan({ target: "main", role: "ghost" }, deps), /no such role/);
    });

    await t.step(
      "a role locked by hand can be unlocked, with a warning that the bot did not lock it",
      async () => {
        await sql`alter role bisman_readonly nologin`;
        const plan = await unlockRole.plan({ target: "main", role: "bisman_readonly" }, deps);
        assert.match(
          plan.warnings!.join(),
          /no role_locked event for bisman_readonly: it was not locked by the bot/,
        );
        await sql`alter role bisman_readonly login`;
        assert.match((await unlockRole.revalidate!(plan, deps))!, /can already log in/);
      },
    );
  } finally {
    await deps.close();
  }
});
