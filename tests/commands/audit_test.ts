import assert from "node:assert/strict";
import { startCluster } from "../../standins/cluster.ts";
import { createBismanDatabase } from "../support/bisman_schema.ts";
import { startTestBot, testConfig, USERS } from "../support/bot.ts";
import { ask } from "../support/gate.ts";

Deno.test("/bisman audit answers with a compact table, says how many more rows match, and refuses hostile arguments", async (t) => {
  await using cluster = await startCluster({ name: "cmdaudit" });
  const { db, sql } = await createBismanDatabase(cluster, {
    rows: { clients: 20, audit_rows: 3000, days: 10, app_users: 50 },
  });
  const tb = await startTestBot(cluster, {
    config: testConfig(cluster, (doc) => (doc.targets.main.primary.database = db)),
  });
  const counts = async () =>
    (await sql`select (select count(*)::int from audit_logs_dml) as a, (select count(*)::int from clients) as c`)[
      0
    ];
  try {
    const before = await counts();

    await t.step(
      "a search by table: the rows as a table in the message, and 'N more rows; narrow the search'",
      async () => {
        const r = await ask(tb, "audit main table=products since=10d limit=5");
        const lines = r.text.split("\n");
        assert.match(lines[0], /^audit main \(primary; table=products, since \S+\): 5 row\(s\)$/);
        assert.match(lines[1], /^time \(UTC\)\s+action\s+table#row\s+db user/);
        assert.equal(lines.filter((l) => / products#\d+ /.test(l)).length, 5);
        assert.match(r.text, /\n\d+ more rows; narrow the search$/);
        const reply = tb.slack.responses.at(-1)!.body as { blocks: { type: string }[] };
        assert.ok(reply.blocks.length <= 50);
        assert.ok(JSON.stringify(reply.blocks).includes("more row(s); narrow the search"));
      },
    );

    await t.step("app user, DB user, action and context filters pass through; no match says so", async () => {
      const r = await ask(tb, "audit app_user=u7 user=bisman_app action=update since=10d limit=200");
      const rows = r.text.split("\n").filter((l) => /^\d{4}-/.test(l));
      assert.ok(rows.length > 0 && rows.every((l) => /UPDATE .* bisman_app .* u7\//.test(l)), r.text);
      const none = await ask(tb, "audit context=missing since=10d");
      assert.match(none.text, /: 0 row\(s\)/);
    });

    await t.step(
      "hostile arguments are refused before any SQL, or bound as values; nothing changes",
      async () => {
        const refused: [string, RegExp][] = [
          ['audit table="clients; drop table clients"', /Bad option table=/],
          ["audit user=bisman_app'--", /Unbalanced ' quote/],
          ['audit user="bisman_app; drop role x"', /Bad option user=/],
          ["audit limit=100000", /Bad option limit=/],
          ["audit since=1h;select", /Bad option since=/],
          ["audit address=10.0.0.1/99", /Bad option address=/],
          ["audit action=truncate", /Bad option action=/],
          [`audit app_user=${"x".repeat(300)}`, /Bad option app_user=/],
          ["audit table=clients table=payments", /given twice/],
          ["audit DROP", /Bad argument 1|Unknown target "DROP"/],
          ["audit nosuchtarget", /Unknown target "nosuchtarget"/],
          ["audit main extra", /Bad arguments/],
        ];
        for (const [text, why] of refused) {
          const r = await ask(tb, text);
          assert.match(r.text, why, text);
        }
        for (
          const v of [
            "\"x' or '1'='1\"",
            '"\'; delete from audit_logs_dml; --"',
            "ユーザー😀",
            '"select * from pg_authid"',
          ]
        ) {
          const r = await ask(tb, `audit app_user=${v} since=10d`);
          assert.match(r.text, /: 0 row\(s\)/, v);
        }
        assert.deepEqual(await counts(), before);
      },
    );

    await t.step("only operators may search the audit trail", async () => {
      const r = await ask(tb, "audit table=clients", USERS.dave);
      assert.match(r.text, /is for operators/);
    });
  } finally {
    await tb.stop();
  }
});
