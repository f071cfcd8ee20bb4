import assert from "node:assert/strict";
import { startCluster } from "../../standins/cluster.ts";
import { connectAs, createBismanDatabase } from "../support/bisman_schema.ts";
import { testOpDeps } from "../support/op_deps.ts";
import { testConfig } from "../support/bot.ts";
import { readServiceUsage, serviceUsageArgs } from "../../ops/service_usage.ts";

Deno.test("service_usage reports the tables a service wrote, how, and against its policy and real grants", async (t) => {
  await using cluster = await startCluster({ name: "usage" });
  const { db, sql } = await createBismanDatabase(cluster, {
    rows: { clients: 10, invoices: 5, payment_requests: 5, payments: 5 },
  });
  const deps = await testOpDeps(cluster, {
    config: testConfig(cluster, (doc) => (doc.targets.main.primary.database = db)),
  });
  const svc = await connectAs(cluster, db, "svc_payments");
  try {
    await t.step(
      "writes with and without the service name, and one beyond the policy, are each placed",
      async () => {
        await sql`grant select, update on invoices to svc_payments`;
        await svc.begin(async (tx) => {
          await tx`select set_config('app.service_name', 'payments', true)`;
          await tx`insert into payment_requests (client_id, amount) values (1, 10)`;
          await tx`update payments set amount = 11 where id = 1`;
          await tx`update invoices set status = 'paid' where id = 1`;
        });
        await svc`update payment_requests set status = 'paid' where id = 1`; // no app.service_name

        for (const service of ["payments", "svc_payments"]) {
          const r = await readServiceUsage({ target: "main", service }, deps);
          assert.equal(r.service, "payments");
          assert.deepEqual(r.roles, ["svc_payments"]);
          assert.equal(r.withoutServiceName, 1);
          const by = Object.fromEntries(r.tables.map((x) => [x.table, x]));
          assert.deepEqual(Object.keys(by), ["audit_logs_dml", "invoices", "payment_requests", "payments"]);
          assert.deepEqual(
            [by.invoices.used, by.invoices.policy, by.invoices.actual, by.invoices.verdicts],
            [{ UPDATE: 1 }, [], ["SELECT", "UPDATE"], ["outside_policy", "beyond_policy"]],
          );
          assert.deepEqual([by.payment_requests.used, by.payment_requests.verdicts], [{
            INSERT: 1,
            UPDATE: 1,
          }, ["ok"]]);
          assert.deepEqual([by.payments.used, by.payments.verdicts], [{ UPDATE: 1 }, ["unused_grant"]]);
          assert.deepEqual(
            by.audit_logs_dml.verdicts,
            ["ok"],
            "the trigger's INSERT grant is never 'unused'",
          );
        }
      },
    );

    await t.step("an unknown service is named as such; bad names never reach SQL", async () => {
      await assert.rejects(
        readServiceUsage({ target: "main", service: "billing" }, deps),
        /No service "billing" .* known services are payments/,
      );
      for (const service of ["payments'; --", "Payments", "pay ments", "a".repeat(64)]) {
        assert.equal(serviceUsageArgs.safeParse({ target: "main", service }).success, false, service);
      }
    });
  } finally {
    await svc.end({ timeout: 1 });
    await deps.close();
  }
});
