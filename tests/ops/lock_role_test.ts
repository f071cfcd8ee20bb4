import assert from "node:assert/strict";
import { startCluster } from "../../standins/cluster.ts";
import {
  connectAs,
  createBismanDatabase,
  setTestPassword,
  TEST_PASSWORDS,
} from "../support/bisman_schema.ts";
import { testOpDeps } from "../support/op_deps.ts";
import { testConfig, USERS } from "../support/bot.ts";
import { lockRole } from "../../ops/lock_role.ts";

Deno.test("lock_role makes a role NOLOGIN, cuts its sessions on the target, records it, and refuses what would lock people out", async (t) => {
  await using cluster = await startCluster({ name: "lockrole" });
  const { db, sql } = await createBismanDatabase(cluster);
  // The bot's own least-privilege role: CREATEROLE and pg_signal_backend are all lock-role needs.
  Deno.env.set("LOCK_TEST_BOT_PW", await setTestPassword(cluster, "bisman_ops"));
  const config = testConfig(cluster, (doc) => {
    Object.assign(doc.targets.main.primary, {
      database: db,
      user: "bisman_ops",
      password_env: "LOCK_TEST_BOT_PW",
    });
    doc.targets.main.security = { other_roles: ["postgres"] };
  });
  const deps = { ...(await testOpDeps(cluster, { config })), actor: USERS.alice };
  try {
    await t.step(
      "plan() refuses the bot's own login, the bootstrap superuser, a superuser, an unknown role",
      async () => {
        await assert.rejects(
          lockRole.plan({ target: "main", role: "bisman_ops" }, deps),
          /it is the bot's own login/,
        );
        await assert.rejects(
          lockRole.plan({ target: "main", role: "postgres" }, deps),
          /bootstrap superuser/,
        );
        await sql.unsafe("create role root_like login superuser");
        await assert.rejects(
          lockRole.plan({ target: "main", role: "root_like" }, deps),
          /it is a superuser, and only a superuser may alter one\. Ask a DBA to run ALTER ROLE root_like NOLOGIN/,
        );
        await assert.rejects(
          lockRole.plan({ target: "main", role: "nobody_here" }, deps),
          /no such role on main/,
        );
        for (
          const role of ["svc_payments; drop role x", "Svc_Payments", "svc payments", "x".repeat(64), "rôle"]
        ) {
          assert.equal(lockRole.args.safeParse({ target: "main", role }).success, false, role);
        }
      },
    );

    await t.step(
      "locking svc_payments: NOLOGIN first, then its two sessions are terminated; new logins fail",
      async () => {
        const a = await connectAs(cluster, db, "svc_payments");
        const b = await connectAs(cluster, db, "svc_payments", {
          password: TEST_PASSWORDS.svc_payments,
          setPassword: false,
        });
        await Promise.all([a`select 1`, b`select 1`]);
        const plan = await lockRole.plan({ target: "main", role: "svc_payments" }, deps);
        assert.equal(plan.sessions.length, 2);
        assert.match(plan.steps[0], /^ALTER ROLE svc_payments NOLOGIN;/);
        assert.match(plan.warnings!.join(), /service role in the policy/);
        assert.equal(await lockRole.revalidate!(plan, deps), undefined);
        assert.equal((await lockRole.reconcile!(plan, deps)).status, "not_done");

        const result = await lockRole.run(plan, deps);
        assert.equal(result.altered, true);
        assert.equal(result.terminated.terminated.length, 2);
        assert.deepEqual(result.remaining, []);
        await assert.rejects(a`select 1`);
        await assert.rejects(b`select 1`);
        const c = await connectAs(cluster, db, "svc_payments", {
          password: TEST_PASSWORDS.svc_payments,
          setPassword: false,
        });
        await assert.rejects(c`select 1`, /not permitted to log in/);
        await Promise.all([a, b, c].map((x) => x.end({ timeout: 1 })));
        assert.match(
          lockRole.describeResult!(result),
          /svc_payments locked \(NOLOGIN\); 2 session\(s\) terminated/,
        );

        const events = await sql`
        select event_type, actor, target_role, source from security_events
         where event_type in ('role_locked', 'sessions_terminated') order by id`;
        assert.deepEqual(events.map((e) => [e.event_type, e.actor, e.target_role, e.source]), [
          ["role_locked", USERS.alice, "svc_payments", "bisman-ops"],
          ["sessions_terminated", USERS.alice, "svc_payments", "bisman-ops"],
        ]);
        assert.equal((await lockRole.reconcile!(plan, deps)).status, "done");
        await assert.rejects(lockRole.plan({ target: "main", role: "svc_payments" }, deps), /already locked/);
      },
    );

    await t.step("revalidate() refuses a plan whose role changed in between", async () => {
      const plan = await lockRole.plan({ target: "main", role: "bisman_readonly" }, deps);
      await sql`alter role bisman_readonly nologin`;
      assert.match(
        (await lockRole.revalidate!(plan, deps))!,
        /is now NOLOGIN: the plan was made when it was not/,
      );
      await sql`alter role bisman_readonly login`;
    });
  } finally {
    await deps.close();
  }
});
