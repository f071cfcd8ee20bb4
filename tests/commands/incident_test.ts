import assert from "node:assert/strict";
import { startCluster } from "../../standins/cluster.ts";
import {
  connectAs,
  createBismanDatabase,
  setTestPassword,
  TEST_PASSWORDS,
} from "../support/bisman_schema.ts";
import { startTestBot, testConfig, USERS } from "../support/bot.ts";
import { ask } from "../support/gate.ts";
import { ACTIONS } from "../../views/actions.ts";

Deno.test("incident subcommands go through the gate: lock-role, unlock-role, terminate, block, unblock; hostile arguments change nothing", async (t) => {
  await using cluster = await startCluster({
    name: "cmdincident",
    listenAddresses: ["127.0.0.1", "127.0.0.2"],
  });
  const { db, sql } = await createBismanDatabase(cluster);
  const hbaPath = `${cluster.primary.dataDir}/pg_hba.conf`;
  const original = await Deno.readTextFile(hbaPath);
  const tb = await startTestBot(cluster, {
    config: testConfig(cluster, (doc) => {
      doc.targets.main.primary.database = db;
      doc.targets.main.security = { other_roles: ["postgres", "bisman_ops"], manage_hba: { path: hbaPath } };
    }),
  });
  await setTestPassword(cluster, "bisman_app");
  const canLogin = async (role: string) =>
    (await sql<{ l: boolean }[]>`select rolcanlogin as l from pg_roles where rolname = ${role}`)[0].l;
  const approveAndRun = async (text: string) => {
    const r = await ask(tb, text);
    assert.ok(r.id, `${text}: ${r.text}`);
    await tb.click(ACTIONS.approve, r.id!, USERS.carol);
    await tb.waitForState(r.id!, "succeeded");
    return r.id!;
  };
  const from2 = async () => {
    const c = await connectAs(cluster, db, "bisman_app", {
      localAddress: "127.0.0.2",
      password: TEST_PASSWORDS.bisman_app,
      setPassword: false,
    });
    try {
      await c`select 1`;
      return "accepted";
    } catch (err) {
      return (err as Error).message;
    } finally {
      await c.end({ timeout: 1 });
    }
  };
  try {
    await t.step(
      "lock-role waits for approval, then makes the role NOLOGIN; unlock-role undoes it",
      async () => {
        const r = await ask(tb, "lock-role bisman_readonly");
        assert.match(r.text, /Request #\d+/);
        assert.equal(await canLogin("bisman_readonly"), true, "nothing happens before approval");
        await tb.click(ACTIONS.approve, r.id!, USERS.carol);
        await tb.waitForState(r.id!, "succeeded");
        assert.equal(await canLogin("bisman_readonly"), false);
        await approveAndRun("unlock-role bisman_readonly main");
        assert.equal(await canLogin("bisman_readonly"), true);
      },
    );

    await t.step(
      "block refuses 127.0.0.2 after approval, terminate cuts its sessions, unblock restores it",
      async () => {
        assert.equal(await from2(), "accepted");
        const open = await connectAs(cluster, db, "bisman_app", {
          localAddress: "127.0.0.2",
          password: TEST_PASSWORDS.bisman_app,
          setPassword: false,
        });
        const [{ pid }] = await open`select pg_backend_pid() as pid`;
        await approveAndRun("terminate 127.0.0.2");
        const [{ gone }] =
          await sql`select not exists (select 1 from pg_stat_activity where pid = ${pid}) as gone`;
        assert.equal(gone, true);
        await open.end({ timeout: 1 });

        await approveAndRun("block 127.0.0.2");
        assert.match(await from2(), /pg_hba\.conf rejects connection for host "127\.0\.0\.2"/);
        await approveAndRun("unblock 127.0.0.2");
        assert.equal(await from2(), "accepted");
        assert.equal(await Deno.readTextFile(hbaPath), original);
        const events = await sql`
        select event_type, actor, request_id::int as request_id from security_events
         where source = 'bisman-ops' and event_type <> 'target_sql_applied' order by id`;
        assert.deepEqual(events.map((e) => e.event_type), [
          "role_locked",
          "sessions_terminated",
          "role_unlocked",
          "sessions_terminated",
          "address_blocked",
          "address_unblocked",
        ]);
        assert.ok(
          events.every((e) => e.actor === USERS.alice),
          "the requester, not the approver, is the actor",
        );
        const requests = await tb.bot.deps.state<{ id: number; action: string }[]>`
          select id::int as id, action from bisman_ops.requests where state = 'succeeded' order by id`;
        const idOf = (action: string) => requests.find((r) => r.action === action)?.id;
        assert.deepEqual(
          events.map((e) => e.request_id),
          // lock-role terminates the role's sessions itself, hence its two events.
          ["lock_role", "lock_role", "unlock_role", "terminate_client", "block_address", "unblock_address"]
            .map(idOf),
          "each event names the approval request that ran it",
        );
      },
    );

    await t.step(
      "hostile arguments are refused before any request or SQL; roles, grants and pg_hba.conf are unchanged",
      async () => {
        const state = async () =>
          (await sql`
          select (select string_agg(rolname || rolcanlogin, ',' order by rolname) from pg_roles) as roles,
                 (select count(*)::int from clients) as clients`)[0];
        const before = await state();
        const requestsBefore = tb.slack.calls.filter((c) => c.method === "chat.postMessage").length;
        const attempts: [string, RegExp][] = [
          ['lock-role "bisman_app; drop table clients"', /Bad argument 1/],
          ["lock-role bisman_app' or '1'='1", /Bad argument|Unbalanced/],
          ['lock-role "svc_payments --"', /Bad argument 1/],
          [`lock-role ${"a".repeat(64)}`, /Bad argument 1/],
          ["lock-role rôle", /Bad argument 1/],
          ["lock-role Bisman_App", /Bad argument 1/],
          ["lock-role select", /no such role on main/],
          ["lock-role bisman_app main extra", /Bad arguments/],
          ['block "127.0.0.2; rm -rf /"', /Bad argument 1/],
          ["block 127.0.0.2/99", /Bad argument 1/],
          ["block ０.０.０.０", /Bad argument 1/],
          ["block 0.0.0.0/0", /wider than \/8/],
          ["block 127.0.0.1", /the bot itself connects/],
          ["terminate all", /Bad argument 1/],
          ["unblock 127.0.0.2", /not blocked by the bot/],
          ['unlock-role "x\'); alter role postgres nosuperuser; --"', /Bad argument 1/],
          ["lock-role bisman_app terminate=maybe", /Bad option terminate=/],
        ];
        for (const [text, why] of attempts) {
          const r = await ask(tb, text);
          assert.equal(r.id, undefined, `${text} created a request: ${r.text}`);
          assert.match(r.text, why, text);
        }
        assert.deepEqual(await state(), before);
        assert.equal(await Deno.readTextFile(hbaPath), original);
        assert.equal(tb.slack.calls.filter((c) => c.method === "chat.postMessage").length, requestsBefore);
      },
    );
  } finally {
    await tb.stop();
  }
});
