import assert from "node:assert/strict";
import postgres from "postgres";
import { startCluster } from "../../standins/cluster.ts";
import { waitFor } from "../../standins/wait.ts";
import { startTestBot, USERS } from "../support/bot.ts";
import { prepareGateTables, registerGateTest, runsOf } from "../support/gate_op.ts";
import { ask } from "../support/gate.ts";
import { ACTIONS } from "../../views/actions.ts";
import {
  AUDIT_LOCK,
  AuditLog,
  type AuditRow,
  chainHash,
  exportLine,
  rowContent,
  verifyExport,
} from "../../core/audit.ts";
import { Secrets } from "../../core/log.ts";

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

Deno.test("a superuser who rewrites a middle row and recomputes every hash after it is still named: the MAC needs the key", async (t) => {
  await using cluster = await startCluster({ name: "audit-mac" });
  const stateDb = await cluster.createDatabase("macstate");
  const superuser = cluster.primary.sql(stateDb);
  const tb = await startTestBot(cluster, { stateDb });
  try {
    for (let i = 0; i < 6; i++) await ask(tb, "help");
    // An instant command's entry is queued after its ack (slack/bolt_app.ts): wait for all six, so none
    // lands after the rows this test writes by hand.
    await waitFor(
      async () =>
        (await tb.bot.deps.audit.rows()).filter((r) => r.action === "command.received").length === 6,
      {
        what: "the six commands' audit entries",
      },
    );
    await tb.bot.deps.audit.append({ actor: USERS.bob, action: "test.marker", outcome: "ok" });
    const keys = tb.bot.deps.keys!;

    await t.step("every row carries a MAC under the bot's key", async () => {
      const rows = await tb.bot.deps.audit.rows();
      assert.ok(rows.length >= 7);
      assert.ok(rows.every((r) => r.key_id === keys.currentId && /^[0-9a-f]{64}$/.test(r.mac ?? "")));
    });

    await t.step("a row appended by hand without a MAC after keyed rows is named", async () => {
      const [last] = await superuser<{ seq: number; hash: string }[]>`
        select seq::int as seq, hash from bisman_ops.audit_log order by seq desc limit 1`;
      const row = {
        seq: last.seq + 1,
        at: new Date().toISOString(),
        actor: "U0MALLORY",
        actor_name: null,
        action: "request.approved",
        target: null,
        request_id: null,
        outcome: "ok",
        details: {},
      };
      await superuser`insert into bisman_ops.audit_log (seq, at, actor, action, outcome, details, prev_hash, hash)
        values (${row.seq}, ${row.at}, ${row.actor}, ${row.action}, ${row.outcome}, '{}'::jsonb, ${last.hash},
                ${chainHash(last.hash, rowContent(row))})`;
      const v = await tb.bot.deps.audit.verify();
      assert.equal(v.ok ? 0 : v.seq, row.seq);
      assert.match(
        !v.ok ? v.problem : "",
        new RegExp(`row ${row.seq} carries no MAC although earlier rows do`),
      );
      await superuser.begin(async (tx) => {
        await tx`alter table bisman_ops.audit_log disable trigger audit_log_no_update_delete`;
        await tx`delete from bisman_ops.audit_log where seq = ${row.seq}`;
        await tx`alter table bisman_ops.audit_log enable trigger audit_log_no_update_delete`;
      });
      assert.equal((await tb.bot.deps.audit.verify()).ok, true);
    });

    await t.step("row 3 rewritten and the plain hashes recomputed: only the MAC tells", async () => {
      await superuser.begin(async (tx) => {
        await tx`set local session_replication_role = replica`;
        await tx`update bisman_ops.audit_log set outcome = 'denied', actor = 'U0MALLORY' where seq = 3`;
        const rows = await tx<AuditRow[]>`
          select seq::int as seq, at, actor, actor_name, action, target, request_id::int as request_id, outcome,
                 details, prev_hash, hash from bisman_ops.audit_log order by seq`;
        let prev = rows[1].hash;
        for (const r of rows.slice(2)) {
          const hash = chainHash(prev, rowContent({ ...r, at: new Date(r.at).toISOString() }));
          await tx`update bisman_ops.audit_log set prev_hash = ${prev}, hash = ${hash} where seq = ${r.seq}`;
          prev = hash;
        }
      });
      const unkeyed = await new AuditLog(superuser, new Secrets()).verify();
      assert.equal(unkeyed.ok, true, "without the key the recomputed chain passes");
      const v = await tb.bot.deps.audit.verify();
      assert.equal(v.ok, false);
      assert.equal(!v.ok && v.seq, 3);
      const r = await ask(tb, "audit-log verify", USERS.bob);
      assert.match(r.text, /Audit log broken at row 3: row 3 was altered and the chain recomputed after it/);
    });

    await t.step("an export of the rewritten log fails offline with the key and names row 3", async () => {
      const rows = await new AuditLog(superuser, new Secrets()).rows();
      const text = rows.map(exportLine).join("\n");
      const withKey = verifyExport(text, undefined, keys);
      assert.equal(withKey.ok ? 0 : withKey.seq, 3);
      const without = verifyExport(text);
      assert.equal(
        without.ok && without.keyed,
        false,
        "without the key it passes, and says it did not check MACs",
      );
    });

    await t.step(
      "an export that does not start at row 1 needs an anchor: its own first prev_hash proves nothing",
      async () => {
        const rows = await new AuditLog(superuser, new Secrets()).rows();
        const v = verifyExport(rows.slice(4, 6).map(exportLine).join("\n"));
        assert.equal(v.ok, false);
        assert.match(!v.ok ? v.problem : "", /starts at row 5, not row 1: only an anchor/);
      },
    );
  } finally {
    await tb.stop();
  }
});

Deno.test("a superuser who strips every MAC and recomputes the whole chain from genesis is still named", async (t) => {
  // Rows from before a key was set carry no MAC and are accepted as the chain's first rows. Rewriting a row,
  // then every hash from row 1 and nulling every MAC, makes the whole log look like such rows.
  await using cluster = await startCluster({ name: "audit-strip" });
  const stateDb = await cluster.createDatabase("stripstate");
  const superuser = cluster.primary.sql(stateDb);
  const tb = await startTestBot(cluster, { stateDb });
  try {
    for (let i = 0; i < 4; i++) await ask(tb, "help");
    await tb.bot.deps.audit.append({ actor: USERS.bob, action: "test.marker", outcome: "ok" });
    await tb.bot.gate.idle();
    await superuser.begin(async (tx) => {
      await tx`set local session_replication_role = replica`;
      await tx`update bisman_ops.audit_log set outcome = 'denied', actor = 'U0MALLORY' where seq = 3`;
      const rows = await tx<AuditRow[]>`
        select seq::int as seq, at, actor, actor_name, action, target, request_id::int as request_id, outcome,
               details, prev_hash, hash from bisman_ops.audit_log order by seq`;
      let prev = "0".repeat(64);
      for (const r of rows) {
        const hash = chainHash(prev, rowContent({ ...r, at: new Date(r.at).toISOString() }));
        await tx`update bisman_ops.audit_log set prev_hash = ${prev}, hash = ${hash}, mac = null, key_id = null
                  where seq = ${r.seq}`;
        prev = hash;
      }
    });

    await t.step("verify with the key refuses a log with no MAC where the bot always wrote one", async () => {
      const v = await tb.bot.deps.audit.verify();
      assert.equal(v.ok, false, "a MAC-less log is not an intact one for a bot that holds a key");
      assert.equal(!v.ok && v.seq, 1);
      assert.match(!v.ok ? v.problem : "", /row 1 carries no MAC/);
      const r = await ask(tb, "audit-log verify", USERS.bob);
      assert.match(r.text, /Audit log broken at row 1: row 1 carries no MAC/);
    });

    await t.step("an export of it fails offline with the key too", async () => {
      const rows = await new AuditLog(superuser, new Secrets()).rows();
      const v = verifyExport(rows.map(exportLine).join("\n"), undefined, tb.bot.deps.keys!);
      assert.equal(v.ok ? 0 : v.seq, 1);
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
      await assert.rejects(runtime`drop table bisman_ops.audit_log`, /must be owner of table audit_log/);
      await assert.rejects(
        runtime`drop trigger audit_log_no_update_delete on bisman_ops.audit_log`,
        /must be owner of (table|relation) audit_log/,
      );
      await assert.rejects(
        runtime`alter table bisman_ops.audit_log drop column mac`,
        /must be owner of table audit_log/,
      );
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

Deno.test("settled() counts the batch being written as well as the queue, and the entries all land after", async () => {
  await using cluster = await startCluster({ name: "audit-settled" });
  const tb = await startTestBot(cluster, {});
  const holder = await tb.bot.deps.state.reserve();
  try {
    await holder`select pg_advisory_lock(${AUDIT_LOCK})`;
    const audit = tb.bot.deps.audit;
    // The first entry's batch is taken and waits for the lock; the next two queue behind it.
    const appends = [1, 2, 3].map((i) =>
      audit.append({ actor: USERS.bob, action: `test.settled${i}`, outcome: "ok" })
    );
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(await audit.settled(200), 3, "one entry being written and two queued");
    await holder`select pg_advisory_unlock(${AUDIT_LOCK})`;
    await Promise.all(appends);
    assert.equal(await audit.settled(1000), 0);
    const actions = (await audit.rows()).map((r) => r.action).filter((a) => a.startsWith("test.settled"));
    assert.deepEqual(actions, ["test.settled1", "test.settled2", "test.settled3"]);
  } finally {
    holder.release();
    await tb.stop();
  }
});
