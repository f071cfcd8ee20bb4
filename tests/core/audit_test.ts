import assert from "node:assert/strict";
import postgres from "postgres";
import { startCluster } from "../../standins/cluster.ts";
import { startTestBot, USERS } from "../support/bot.ts";
import { prepareGateTables, registerGateTest, runsOf } from "../support/gate_op.ts";
import { ask } from "../support/gate.ts";
import { ACTIONS } from "../../views/actions.ts";

registerGateTest();

Deno.test("/bisman audit-log verify names the row a superuser edited or deleted behind the trigger's back", async (t) => {
  await using cluster = await startCluster({ name: "audit" });
  const stateDb = await cluster.createDatabase("auditstate");
  const superuser = cluster.primary.sql(stateDb);
  const tb = await startTestBot(cluster, { stateDb });
  try {
    for (let i = 0; i < 6; i++) await ask(tb, "help");

    await t.step("an intact chain verifies and the check itself is audited", async () => {
      const r = await ask(tb, "audit-log verify", USERS.bob);
      assert.match(r.text, /Audit log intact: \d+ rows checked/);
      const verified = (await tb.bot.deps.audit.rows()).filter((x) => x.action === "audit.verified");
      assert.equal(verified.length, 1);
      assert.equal(verified[0].outcome, "ok");
      assert.equal(verified[0].actor, USERS.bob);
    });

    await t.step("UPDATE and DELETE are refused by the trigger, even for a superuser", async () => {
      await assert.rejects(
        superuser`update bisman_ops.audit_log set outcome = 'x' where seq = 2`,
        /append-only/,
      );
      await assert.rejects(superuser`delete from bisman_ops.audit_log where seq = 2`, /append-only/);
    });

    let original = "";
    await t.step("a row edited with session_replication_role = replica is found and named", async () => {
      [{ outcome: original }] = await superuser`select outcome from bisman_ops.audit_log where seq = 3`;
      await superuser.begin(async (tx) => {
        await tx`set local session_replication_role = replica`;
        await tx`update bisman_ops.audit_log set outcome = 'refused' where seq = 3`;
      });
      const r = await ask(tb, "audit-log verify", USERS.bob);
      assert.match(r.text, /Audit log broken at row 3: row 3 was altered/);
      assert.equal(r.visibility, "in_channel");
      const v = await tb.bot.deps.audit.verify();
      assert.deepEqual(v.ok ? undefined : v.seq, 3);
    });

    await t.step("putting the content back makes it verify again: the hash covers the content", async () => {
      await superuser.begin(async (tx) => {
        await tx`set local session_replication_role = replica`;
        await tx`update bisman_ops.audit_log set outcome = ${original} where seq = 3`;
      });
      assert.match((await ask(tb, "audit-log verify", USERS.bob)).text, /Audit log intact/);
    });

    await t.step("a row deleted with the trigger disabled is found and named", async () => {
      await superuser.begin(async (tx) => {
        await tx`alter table bisman_ops.audit_log disable trigger audit_log_no_update_delete`;
        await tx`delete from bisman_ops.audit_log where seq = 5`;
        await tx`alter table bisman_ops.audit_log enable trigger audit_log_no_update_delete`;
      });
      const r = await ask(tb, "audit-log verify", USERS.bob);
      assert.match(r.text, /Audit log broken at row 5: row 5 is missing/);
    });

    await t.step("verify is for operators", async () => {
      const r = await ask(tb, "audit-log verify", USERS.carol);
      assert.match(r.text, /for operators/);
    });
  } finally {
    await tb.stop();
  }
});

Deno.test("DATABASE_MIGRATION_URL: the runtime role may only SELECT and INSERT the audit log, and the bot still works", async (t) => {
  await using cluster = await startCluster({ name: "audit-roles" });
  const ownerPw = `owner-${crypto.randomUUID()}`;
  const runtimePw = `runtime-${crypto.randomUUID()}`;
  await cluster.primary.psql(
    `create role bisman_owner login password '${ownerPw}';\n` +
      `create role bisman_runtime login password '${runtimePw}';`,
  );
  const stateDb = await cluster.createDatabase("rolestate");
  await cluster.primary.psql(`alter database "${stateDb}" owner to bisman_owner`);
  await prepareGateTables(cluster.primary.sql());
  const runtimeUrl = cluster.primary.url({ database: stateDb, user: "bisman_runtime", password: runtimePw });
  const tb = await startTestBot(cluster, {
    stateDb,
    env: {
      DATABASE_URL: runtimeUrl,
      DATABASE_MIGRATION_URL: cluster.primary.url({
        database: stateDb,
        user: "bisman_owner",
        password: ownerPw,
      }),
    },
  });
  const runtime = postgres(runtimeUrl, { max: 1, onnotice: () => {} });
  try {
    await t.step("the schema belongs to the owner role, not the runtime role", async () => {
      const [r] = await cluster.primary.sql(stateDb)`
        select c.relowner::regrole::text as owner from pg_class c where c.oid = 'bisman_ops.audit_log'::regclass`;
      assert.equal(r.owner, "bisman_owner");
    });

    await t.step("the bot runs a full request as the runtime role", async () => {
      const { id } = await ask(tb, "gate-test roles1");
      await tb.click(ACTIONS.approve, id!, USERS.carol);
      await tb.waitForState(id!, "succeeded");
      assert.equal(await runsOf(cluster.primary.sql(), "roles1"), 1);
      assert.ok((await tb.bot.deps.audit.rows()).length > 0);
    });

    await t.step("the runtime role cannot update, delete, truncate or unprotect the audit log", async () => {
      await assert.rejects(
        runtime`update bisman_ops.audit_log set outcome = 'x' where seq = 1`,
        /permission denied for table audit_log/,
      );
      await assert.rejects(
        runtime`delete from bisman_ops.audit_log where seq = 1`,
        /permission denied for table audit_log/,
      );
      await assert.rejects(runtime`truncate bisman_ops.audit_log`, /permission denied for table audit_log/);
      await assert.rejects(
        runtime`alter table bisman_ops.audit_log disable trigger audit_log_no_update_delete`,
        /must be owner of table audit_log/,
      );
      await assert.rejects(runtime`set session_replication_role = replica`, /permission denied/);
      await assert.rejects(
        runtime`delete from bisman_ops.migrations`,
        /permission denied for table migrations/,
      );
    });

    await t.step("it can still read and append, and the chain verifies", async () => {
      const [r] = await runtime`select count(*)::int as n from bisman_ops.audit_log`;
      assert.ok(r.n > 0);
      assert.ok((await tb.bot.deps.audit.verify()).ok);
    });

    await t.step("no password reached the logs", () => {
      const logs = tb.logs.join("\n");
      assert.ok(!logs.includes(ownerPw) && !logs.includes(runtimePw));
    });
  } finally {
    await runtime.end();
    await tb.stop();
  }
});
