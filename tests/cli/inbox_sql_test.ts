/**
 * sql/0009_cli_inbox.sql and its grants (core/migrate.ts grantCliAccess, grantRuntimeAccess) on a real
 * cluster, with the roles of the shipped split: a schema owner without CREATEROLE, a runtime role, the CLI's
 * people in bisman_cli, and a login outside it. The steps share one cluster (roles are cluster-wide) and run
 * in order.
 */

import assert from "node:assert/strict";
import postgres, { type Sql } from "postgres";
import { startCluster } from "../../standins/cluster.ts";
import { waitFor } from "../../standins/wait.ts";
import { migrateState } from "../../core/migrate.ts";

const PW = {
  owner: "owner-pw-1",
  runtime: "runtime-pw-1",
  alice: "alice-pw-1",
  bob: "bob-pw-1",
  mallory: "mal-pw-1",
};

/** Expects `q` to fail with SQLSTATE 42501 (insufficient_privilege). */
async function denied(q: Promise<unknown>, what: string): Promise<void> {
  await assert.rejects(q, (e: { code?: string; message?: string }) => {
    assert.equal(e.code, "42501", `${what}: ${e.message}`);
    return true;
  }, what);
}

Deno.test("cli inbox: who may do what, with the shipped role split", async (t) => {
  await using cluster = await startCluster({ name: "cli-inbox-sql" });
  const db = await cluster.createDatabase("clistate");
  await cluster.primary.psql(`
    create role state_owner login password '${PW.owner}';
    create role state_runtime login password '${PW.runtime}';
    create role mallory login password '${PW.mallory}';
    alter database "${db}" owner to state_owner;`);
  const url = (user: keyof typeof PW, database = db) =>
    cluster.primary.url({
      database,
      user: user === "owner" ? "state_owner" : user === "runtime" ? "state_runtime" : user,
      password: PW[user],
    });
  const open: Sql[] = [];
  const connect = (user: keyof typeof PW, database = db) => {
    const sql = postgres(url(user, database), { max: 2, onnotice: () => {} });
    open.push(sql);
    return sql;
  };
  const superuser = cluster.primary.sql(db);
  try {
    const runtime = connect("runtime");

    await t.step(
      "an owner without CREATEROLE migrates anyway; the CLI waits for an admin's role",
      async () => {
        await migrateState(runtime, url("owner"));
        const [r] = await superuser`select count(*)::int as n from pg_roles where rolname = 'bisman_cli'`;
        assert.equal(r.n, 0, "the migration could not create bisman_cli and did not fail for it");
        const [f] = await superuser`select to_regproc('bisman_ops.cli_submit') is not null as ok`;
        assert.ok(f.ok);
      },
    );

    await t.step("once an admin creates bisman_cli, the next start grants it exactly its share", async () => {
      await cluster.primary.psql(`
        create role bisman_cli nologin;
        create role alice login password '${PW.alice}' in role bisman_cli;
        create role bob login password '${PW.bob}' in role bisman_cli;`);
      await migrateState(runtime, url("owner"));
      const grants = await superuser<{ table_name: string; privilege_type: string }[]>`
        select table_name, privilege_type from information_schema.role_table_grants
         where grantee = 'bisman_cli' order by table_name, privilege_type`;
      assert.deepEqual(grants.map((g) => `${g.table_name}:${g.privilege_type}`), [
        "approvals:SELECT",
        "audit_log:SELECT",
        "requests:SELECT",
      ]);
      const [fx] = await superuser`
        select has_function_privilege('bisman_cli', 'bisman_ops.cli_submit(text, jsonb)', 'execute') as submit,
               has_function_privilege('bisman_cli', 'bisman_ops.cli_reply(bigint)', 'execute') as reply,
               has_function_privilege('state_runtime', 'bisman_ops.cli_submit(text, jsonb)', 'execute') as rt,
               has_function_privilege('mallory', 'bisman_ops.cli_submit(text, jsonb)', 'execute') as public`;
      assert.deepEqual({ ...fx }, { submit: true, reply: true, rt: false, public: false });
    });

    const alice = connect("alice");
    const bob = connect("bob");
    let aliceCmd = 0;

    await t.step(
      "a CLI user submits as session_user; the function fixes the login, not the caller",
      async () => {
        const [row] = await alice`select bisman_ops.cli_submit('status', ${
          alice.json({ wait_seconds: 60 })
        }) as id`;
        aliceCmd = Number(row.id);
        const [stored] = await superuser`
        select login, command, pickup_deadline - submitted_at as wait from bisman_ops.cli_inbox where id = ${aliceCmd}`;
        assert.equal(stored.login, "alice");
        assert.equal(stored.command, "status");
        // SET ROLE changes current_user, never session_user: still alice.
        const [viaRole] = await alice.begin(async (tx) => {
          await tx`set local role bisman_cli`;
          return await tx`select bisman_ops.cli_submit('lag', '{}') as id`;
        });
        const [s2] = await superuser`select login from bisman_ops.cli_inbox where id = ${viaRole.id}`;
        assert.equal(s2.login, "alice");
        await assert.rejects(alice`select bisman_ops.cli_submit(${"status\nrotate x"}, '{}')`, /one line/);
        await assert.rejects(alice`select bisman_ops.cli_submit('status', '[1]')`, /JSON object/);
      },
    );

    await t.step("a CLI user reads only their own replies", async () => {
      const [mine] = await alice`select bisman_ops.cli_reply(${aliceCmd}) as r`;
      assert.equal(mine.r.state, "waiting");
      const [theirs] = await bob`select bisman_ops.cli_reply(${aliceCmd}) as r`;
      assert.equal(theirs.r, null, "bob cannot read alice's command");
      await denied(bob`select * from bisman_ops.cli_inbox`, "bob reads the inbox table");
    });

    await t.step("a CLI user cannot write requests, approvals, the audit log or the inbox", async () => {
      for (const who of [alice, bob]) {
        await denied(who`insert into bisman_ops.requests (action) values ('rotate')`, "insert requests");
        await denied(who`update bisman_ops.requests set state = 'approved'`, "update requests");
        await denied(who`delete from bisman_ops.requests`, "delete requests");
        await denied(
          who`insert into bisman_ops.approvals (request_id, approver) values (1, 'U0BOB')`,
          "insert approvals",
        );
        await denied(who`update bisman_ops.approvals set approver = 'U0BOB'`, "update approvals");
        await denied(who`delete from bisman_ops.approvals`, "delete approvals");
        await denied(
          who`insert into bisman_ops.audit_log (seq, at, actor, action, outcome, prev_hash, hash)
              values (999, now(), 'cli:bob', 'request.approved', 'ok', 'x', 'y')`,
          "insert audit_log",
        );
        await denied(who`update bisman_ops.audit_log set actor = 'x'`, "update audit_log");
        await denied(who`delete from bisman_ops.audit_log`, "delete audit_log");
        await denied(
          who`insert into bisman_ops.cli_inbox (login, command, pickup_deadline) values ('bob', 'approve 1', now())`,
          "insert cli_inbox",
        );
        await denied(who`update bisman_ops.cli_inbox set login = 'bob'`, "update cli_inbox");
        await denied(who`delete from bisman_ops.cli_inbox`, "delete cli_inbox");
        await denied(who`select * from bisman_ops.freeze`, "read another table");
      }
      // What it may read: what the CLI shows.
      await alice`select id, plan, plan_hash from bisman_ops.requests limit 1`;
      await alice`select * from bisman_ops.approvals limit 1`;
      await alice`select seq, hash from bisman_ops.audit_log limit 1`;
    });

    await t.step("a login outside bisman_cli cannot submit", async () => {
      const mallory = connect("mallory");
      await denied(mallory`select bisman_ops.cli_submit('status', '{}')`, "mallory submits");
      await denied(mallory`select bisman_ops.cli_reply(${aliceCmd})`, "mallory reads a reply");
    });

    await t.step(
      "the runtime role claims and answers rows, and can neither type nor replay one",
      async () => {
        await denied(
          runtime`insert into bisman_ops.cli_inbox (login, command, pickup_deadline)
                values ('bob', 'approve 1', now() + interval '1 minute')`,
          "the bot's role inserts a command as bob",
        );
        await denied(
          runtime`update bisman_ops.cli_inbox set login = 'bob' where id = ${aliceCmd}`,
          "rewrite the login",
        );
        await denied(
          runtime`update bisman_ops.cli_inbox set command = 'approve 1' where id = ${aliceCmd}`,
          "rewrite the text",
        );
        await denied(runtime`delete from bisman_ops.cli_inbox`, "delete a command");
        // Two replicas claim at once: one wins.
        const claim = (who: string) =>
          runtime`update bisman_ops.cli_inbox set picked_by = ${who}, picked_at = now(), heartbeat_at = now()
                 where id = ${aliceCmd} and picked_by is null and done_at is null
                   and clock_timestamp() < pickup_deadline returning id`;
        const other = postgres(url("runtime"), { max: 1, onnotice: () => {} });
        open.push(other);
        const [a, b] = await Promise.all([
          claim("replica-a"),
          other`update bisman_ops.cli_inbox
        set picked_by = 'replica-b', picked_at = now() where id = ${aliceCmd} and picked_by is null returning id`,
        ]);
        assert.equal(a.length + b.length, 1, "exactly one replica claims the command");
        await denied(
          runtime`update bisman_ops.cli_inbox set picked_by = null where id = ${aliceCmd}`,
          "undo a claim",
        );
        await runtime`update bisman_ops.cli_inbox set reply = '{"text":"ok"}', exit_code = 0, done_at = now()
                    where id = ${aliceCmd}`;
        await denied(
          runtime`update bisman_ops.cli_inbox set exit_code = 1 where id = ${aliceCmd}`,
          "rewrite a finished row",
        );
        const [r] = await alice`select bisman_ops.cli_reply(${aliceCmd}) as r`;
        assert.equal(r.r.state, "done");
        assert.deepEqual(r.r.reply, { text: "ok" });
      },
    );

    await t.step(
      "a command nobody took before its deadline is closed, and no claim can start it after",
      async () => {
        const [row] = await bob`select bisman_ops.cli_submit('status', ${
          bob.json({ wait_seconds: 1 })
        }) as id`;
        const id = Number(row.id);
        const r = await waitFor(async () => {
          const [x] = await bob`select bisman_ops.cli_reply(${id}) as r`;
          return x.r.state === "expired" ? x.r : undefined;
        }, { what: "the command to expire", timeoutMs: 10_000, intervalMs: 200 });
        assert.equal(r.exit_code, 1);
        const claimed = await runtime`update bisman_ops.cli_inbox set picked_by = 'late', picked_at = now()
        where id = ${id} and picked_by is null and done_at is null returning id`;
        assert.equal(claimed.length, 0, "a late bot does not take it");
      },
    );

    await t.step("migrating another database of the cluster finds bisman_cli there and is fine", async () => {
      const db2 = await cluster.createDatabase("clistate2");
      const sql2 = cluster.primary.sql(db2);
      await migrateState(sql2, undefined);
      const [g] =
        await sql2`select has_function_privilege('bisman_cli', 'bisman_ops.cli_submit(text, jsonb)', 'execute') as ok`;
      assert.ok(g.ok);
    });
  } finally {
    for (const s of open) await s.end({ timeout: 2 }).catch(() => {});
  }
});
