import assert from "node:assert/strict";
import { startCluster } from "../../standins/cluster.ts";
import { createBismanDatabase } from "../support/bisman_schema.ts";
import { testOpDeps } from "../support/op_deps.ts";
import { testConfig } from "../support/bot.ts";
import { compareRoles, readRoleDrift, type RoleSnapshot } from "../../ops/role_drift.ts";
import { targetSecurity } from "../../ops/_security.ts";

Deno.test("role_drift: the seed's SQL matches the seed's policy; hand-made grants, superusers, memberships and default privileges are found with their fix", async (t) => {
  await using cluster = await startCluster({ name: "roledrift" });
  const { db, sql } = await createBismanDatabase(cluster);
  const config = testConfig(cluster, (doc) => {
    doc.targets.main.primary.database = db;
    doc.targets.main.security = { other_roles: ["bisman_ops"] };
  });
  const deps = await testOpDeps(cluster, { config });
  try {
    await t.step(
      "right after sql/target/roles.sql there is no drift, only the note that the bot is a superuser",
      async () => {
        const r = await readRoleDrift({ target: "main" }, deps);
        assert.deepEqual(r.drift, [], JSON.stringify(r.drift, null, 1));
        assert.deepEqual(r.statements, []);
        assert.deepEqual(r.notes.map((n) => [n.kind, n.role]), [["superuser", "postgres"]]);
      },
    );

    await t.step("each hand-made change is one drift item whose statement undoes it", async () => {
      await sql.unsafe(`
        grant delete on clients to bisman_readonly;
        alter role bisman_readonly superuser;
        grant bisman_admin to bisman_readonly;
        create role eve login;
        grant select on payments to eve;
        grant update on invoices to svc_payments with grant option;
        grant select on clients to public;
        alter default privileges in schema public grant insert on tables to bisman_readonly;
        alter role bisman_dba nosuperuser;
        alter role svc_payments nologin;
      `);
      const r = await readRoleDrift({ target: "main" }, deps);
      assert.deepEqual(r.statements, [
        "ALTER ROLE bisman_readonly NOSUPERUSER;",
        "ALTER ROLE bisman_dba SUPERUSER;",
        "ALTER ROLE eve NOLOGIN;",
        "REVOKE bisman_admin FROM bisman_readonly;",
        "REVOKE DELETE ON TABLE public.clients FROM bisman_readonly;",
        "REVOKE SELECT ON TABLE public.clients FROM PUBLIC;",
        "REVOKE UPDATE ON TABLE public.invoices FROM svc_payments;",
        "REVOKE SELECT ON TABLE public.payments FROM eve;",
        "ALTER DEFAULT PRIVILEGES FOR ROLE postgres IN SCHEMA public REVOKE INSERT ON TABLES FROM bisman_readonly;",
      ]);
      const superusers = r.drift.filter((d) => d.kind === "superuser");
      assert.deepEqual(superusers.map((d) => [d.role, d.severity]), [
        ["bisman_readonly", "critical"],
        ["bisman_dba", "critical"],
      ]);
      assert.match(
        r.drift.find((d) => d.role === "eve")!.detail,
        /not in the policy or security\.other_roles and can log in/,
      );
      // A role the policy wants to log in that cannot is a note (it may be locked on purpose), never undone here.
      assert.ok(
        r.notes.some((n) =>
          n.kind === "login" && n.role === "svc_payments" && /unlock-role svc_payments/.test(n.detail)
        ),
      );
    });

    await t.step("the comparison is pure: the same snapshot gives the same statements", async () => {
      const { readRoleSnapshot } = await import("../../ops/role_drift.ts");
      const snap: RoleSnapshot = await readRoleSnapshot(sql, "public");
      const a = compareRoles(targetSecurity(deps, "main"), snap);
      const b = compareRoles(targetSecurity(deps, "main"), structuredClone(snap));
      assert.deepEqual(a.statements, b.statements);
    });

    await t.step(
      "a policy that differs from the seed is what counts: a missing role and its grants are planned",
      async () => {
        const custom = testConfig(cluster, (doc) => {
          doc.targets.main.primary.database = db;
          doc.targets.main.security = {
            other_roles: [
              "bisman_ops",
              "eve",
              "bisman_readonly",
              "bisman_app",
              "bisman_admin",
              "bisman_dba",
              "svc_payments",
            ],
            roles: { svc_reports: { kind: "service", service: "reports", tables: { invoices: ["SELECT"] } } },
          };
        });
        const d2 = await testOpDeps(cluster, { config: custom });
        try {
          const r = await readRoleDrift({ target: "main" }, d2);
          assert.deepEqual(r.statements, [
            "CREATE ROLE svc_reports LOGIN;",
            "REVOKE SELECT ON TABLE public.clients FROM PUBLIC;",
            "GRANT SELECT ON TABLE public.invoices TO svc_reports;",
          ]);
        } finally {
          await d2.close();
        }
      },
    );
  } finally {
    await deps.close();
  }
});
