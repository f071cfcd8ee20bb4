import assert from "node:assert/strict";
import { startCluster } from "../../standins/cluster.ts";
import { connectAs } from "../support/bisman_schema.ts";
import { startTestBot, testConfig, USERS } from "../support/bot.ts";
import { ask } from "../support/gate.ts";
import { ACTIONS } from "../../views/actions.ts";

Deno.test("/bisman apply-target-sql, security-events, detect, usage, roles and tls answer from a real target", async (t) => {
  await using cluster = await startCluster({
    name: "cmdsecurity",
    preload: ["pgaudit", "pg_stat_statements"],
  });
  const db = await cluster.createDatabase("bisman");
  const sql = cluster.primary.sql(db);
  const tb = await startTestBot(cluster, {
    config: testConfig(cluster, (doc) => {
      doc.targets.main.primary.database = db;
      doc.targets.main.security = { other_roles: ["postgres", "bisman_ops"] };
    }),
  });
  try {
    await t.step("before the target SQL, reads say what to do", async () => {
      const r = await ask(tb, "security-events");
      assert.match(r.text, /security_events is missing.*`\/bisman apply-target-sql main`/);
    });

    await t.step(
      "apply-target-sql runs only after approval, and installs the audit trail and the seed's roles",
      async () => {
        const r = await ask(tb, "apply-target-sql main parts=sample_schema,audit,roles sample=true");
        assert.ok(r.id, r.text);
        const [{ before }] = await sql`select to_regclass('public.audit_logs_dml') is null as before`;
        assert.equal(before, true, "nothing applied before approval");
        await tb.click(ACTIONS.approve, r.id!, USERS.carol);
        await tb.waitForState(r.id!, "succeeded").catch((err) => {
          throw new Error(
            `${err.message}: ${tb.approvalMessage(r.id!)?.text}\n${tb.logs.slice(-5).join("\n")}`,
          );
        });
        const [{ ok }] =
          await sql`select to_regclass('public.audit_logs_dml') is not null and to_regclass('public.clients') is not null as ok`;
        assert.equal(ok, true);
        const refused = await ask(tb, "apply-target-sql main parts=sample_schema");
        assert.match(refused.text, /only with sample=true/);
      },
    );

    const app = await connectAs(cluster, db, "bisman_app");
    try {
      await t.step(
        "detect: a clean write gives no finding; a console write without context is named, with its audit search",
        async () => {
          await app.begin(async (tx) => {
            await tx`select set_config('app.user_id', 'u1', true), set_config('app.service_name', 'web', true)`;
            await tx`insert into clients (name) values ('a')`;
          });
          assert.match((await ask(tb, "detect")).text, /^detect on main since \S+: 0 finding\(s\)$/);
          await app`insert into clients (name) values ('b')`;
          const r = await ask(tb, "detect main since=1h");
          assert.match(
            r.text,
            /\[warning\] dml_without_context: bisman_app wrote 1 row\(s\) without app\.user_id/,
          );
          assert.match(r.text, /rows: \/bisman audit main user=bisman_app context=missing since=1h/);
        },
      );
    } finally {
      await app.end({ timeout: 1 });
    }

    await t.step(
      "roles: no drift after the SQL; a hand GRANT shows with its REVOKE; roles apply asks the gate",
      async () => {
        assert.match((await ask(tb, "roles")).text, /^roles on main: 0 drift item\(s\)/);
        await sql`grant truncate on clients to bisman_readonly`;
        const r = await ask(tb, "roles main");
        assert.match(r.text, /REVOKE TRUNCATE ON TABLE public\.clients FROM bisman_readonly;/);
        const req = await ask(tb, "roles apply");
        assert.match(req.text, /Request #\d+/);
        assert.match(
          JSON.stringify(tb.approvalMessage(req.id!)?.blocks),
          /REVOKE TRUNCATE ON TABLE public\.clients FROM bisman_readonly;/,
        );
      },
    );

    await t.step(
      "usage, security-events and tls answer; usage of an unknown service says which exist",
      async () => {
        assert.match((await ask(tb, "usage payments")).text, /^usage of payments \(svc_payments\) on main/);
        assert.match((await ask(tb, "usage billing")).text, /No service "billing"/);
        const ev = await ask(tb, "security-events main since=1h type=target_sql_applied");
        assert.match(ev.text, /target_sql_applied 3/);
        const tls = await ask(tb, "tls");
        assert.match(tls.text, /^tls on main: problems/);
        assert.match(tls.text, /\[critical\] hba_hostssl: /);
        assert.match(tls.text, /\[ok\] pgaudit_roles: /);
      },
    );

    await t.step("hostile options are refused with the option named", async () => {
      for (
        const [text, why] of [
          ["detect since=forever", /Bad option since=/],
          ['security-events type="x\'; drop table security_events; --"', /Bad option type=/],
          ['usage "payments; select 1"', /Bad argument 1/],
          ["roles apply main now", /Bad arguments/],
          ["apply-target-sql main parts=roles,evil", /Bad option parts=/],
          ['apply-target-sql main bot_role="x; drop role y"', /Bad option bot_role=/],
        ] as const
      ) {
        assert.match((await ask(tb, text)).text, why, text);
      }
      const [{ n }] = await sql`select count(*)::int as n from security_events`;
      assert.ok(n > 0);
    });
  } finally {
    await tb.stop();
  }
});
