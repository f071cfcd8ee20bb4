/**
 * Attacks on the two-person rule by an insider who can write the state database (its superuser, or the
 * bot's runtime role) but holds neither the signing key nor anyone's click, through paths other than the
 * approval click that tests/gate/tamper_test.ts covers: the crash recovery that reconciles a request left
 * `running`, and a request that was closed (cancelled, denied) set back to `pending`.
 */

import assert from "node:assert/strict";
import type { Sql } from "postgres";
import { startCluster, type TestCluster } from "../../standins/cluster.ts";
import { VaultStandIn } from "../../standins/vault.ts";
import { startTestBot, TEAM, type TestBot, testConfig, USERS } from "../support/bot.ts";
import { ask } from "../support/gate.ts";
import { login, startTwoRoleBot } from "../support/rotation.ts";
import { applyTargetSql } from "../support/bisman_schema.ts";
import { prepareGateTables, registerGateTest, runsOf } from "../support/gate_op.ts";
import { ACTIONS } from "../../views/actions.ts";
import { parsePolicyHcl } from "../../standins/vault.ts";
import { IntegrityKeys } from "../../core/keys.ts";
import { type RequestSeal, sealApproval, sealRequest } from "../../gate/seal.ts";
import type { RequestRow } from "../../gate/store.ts";

registerGateTest();

/** A connection to the bot's state database as the cluster's superuser (the attacker). */
function stateAsSuperuser(tb: TestBot, cluster: TestCluster): Sql {
  return cluster.primary.sql(new URL(tb.bot.deps.env.databaseUrl).pathname.slice(1));
}

Deno.test("a request set to running by hand is never reconciled: no approval, no seal, no repair", async (t) => {
  await using cluster = await startCluster({ name: "insider-orphan" });
  const { tb, vault, stop } = await startTwoRoleBot(cluster);
  const state = stateAsSuperuser(tb, cluster);
  try {
    /** Requests a rotation of bisman_app, lets `edit` change its row, then marks it running by a dead bot. */
    const orphan = async (edit: (id: number) => Promise<unknown>) => {
      const a = await ask(tb, "rotate bisman_app");
      assert.ok(a.id, a.text);
      await edit(a.id!);
      await state`update bisman_ops.requests
                     set state = 'running', run_by = 'no-such-bot', started_at = now(), heartbeat_at = now()
                   where id = ${a.id!}`;
      assert.equal(await tb.bot.gate.recoverInterrupted(), 1);
      await tb.bot.gate.idle();
      return a.id!;
    };
    const refused = async (id: number, what: RegExp) => {
      assert.equal(await login(cluster, "bisman_readonly", "old-ro-pw-123456"), true, "readonly untouched");
      assert.equal(await login(cluster, "bisman_app", "old-app-pw-123456"), true);
      assert.equal(vault.kvGet("bisman/db")!.version, 1, "Vault unchanged");
      const [row] = await state<{ state: string; reconcile: { status: string; note: string } }[]>`
        select state, reconcile from bisman_ops.requests where id = ${id}`;
      assert.equal(row.state, "interrupted");
      assert.equal(row.reconcile.status, "needs_human");
      assert.match(row.reconcile.note, /not reconciled/);
      const audit = await tb.bot.deps.audit.rows({ requestId: id });
      const tampered = audit.find((r) => r.action === "plan_tampered");
      assert.ok(tampered, `plan_tampered recorded: ${audit.map((r) => r.action)}`);
      assert.match(String(tampered.details.problem), what);
      assert.equal(tampered.details.phase, "reconcile");
      assert.equal(audit.some((r) => r.action === "credential.reconciled"), false);
      assert.ok(tb.slack.messages.some((m) => new RegExp(`#${id}\\b.*altered`).test(m.text ?? "")));
    };

    await t.step("an edited plan (another role, Vault 'newer' than planned) repairs nothing", async () => {
      // The reconcile of a rotation sets a role to the password Vault holds when Vault moved past the plan:
      // pointed at bisman_readonly with bisman_app's key, it would hand bisman_readonly a password the
      // attacker may know, with nobody's approval.
      const id = await orphan((id) =>
        state`update bisman_ops.requests
                 set plan = jsonb_set(jsonb_set(plan, '{roles,0,role}', '"bisman_readonly"'),
                                      '{fingerprint,vault}', '{"secret/bisman/db": 0}')
               where id = ${id}`
      );
      await refused(id, /plan .*changed after the bot sealed it/);
    });

    await t.step("an untouched request that nobody approved is not reconciled either", async () => {
      const id = await orphan(() => Promise.resolve());
      await refused(id, /approv/);
    });
  } finally {
    await stop();
  }
});

Deno.test("a cancelled or denied request set back to pending does not run on a later approval", async (t) => {
  await using cluster = await startCluster({ name: "insider-closed" });
  await applyTargetSql(cluster.primary.sql(), { parts: ["audit"] });
  await prepareGateTables(cluster.primary.sql());
  const tb = await startTestBot(cluster, { config: testConfig(cluster) });
  const target = cluster.primary.sql();
  const state = stateAsSuperuser(tb, cluster);
  const reopen = (id: number) =>
    state`update bisman_ops.requests
             set state = 'pending', finished_at = null, decided_by = null, deny_reason = null
           where id = ${id}`;
  const refused = async (id: number, key: string, what: RegExp) => {
    await tb.bot.gate.idle();
    assert.equal(await runsOf(target, key), 0, "nothing ran");
    const audit = await tb.bot.deps.audit.rows({ requestId: id });
    assert.equal(audit.some((r) => r.action === "op.started"), false);
    const tampered = audit.find((r) => r.action === "plan_tampered");
    assert.ok(tampered, `plan_tampered recorded: ${audit.map((r) => r.action)}`);
    assert.match(String(tampered.details.problem), what);
  };
  try {
    await t.step("the requester cancelled it: an approver's click does not run it", async () => {
      const a = await ask(tb, "gate-test cancelled");
      assert.ok(a.id, a.text);
      assert.match((await ask(tb, `cancel ${a.id}`)).text, /cancelled/);
      await reopen(a.id!);
      assert.equal(await tb.click(ACTIONS.approve, a.id!, USERS.bob), 200);
      await refused(a.id!, "cancelled", /cancelled/);
    });

    await t.step("an approver denied it: another approver's click does not run it", async () => {
      const a = await ask(tb, "gate-test denied");
      assert.ok(a.id, a.text);
      const d = await tb.bot.gate.deny(a.id!, {
        userId: USERS.bob,
        userName: "bob",
        teamId: TEAM,
        via: "slack",
      }, "no");
      assert.equal(d.status, "done", d.message);
      await reopen(a.id!);
      assert.equal(await tb.click(ACTIONS.approve, a.id!, USERS.carol), 200);
      await refused(a.id!, "denied", /denied/);
    });

    await t.step("an untouched request still runs", async () => {
      const a = await ask(tb, "gate-test untouched");
      await tb.click(ACTIONS.approve, a.id!, USERS.bob);
      await tb.waitForState(a.id!, "succeeded");
      assert.equal(await runsOf(target, "untouched"), 1);
    });
  } finally {
    await tb.stop();
  }
});

Deno.test("a retired signing key (leaked, hence rotated) seals no request and no approval the gate accepts", async (t) => {
  await using cluster = await startCluster({ name: "insider-retired" });
  await applyTargetSql(cluster.primary.sql(), { parts: ["audit"] });
  await prepareGateTables(cluster.primary.sql());
  const leaked = IntegrityKeys.generate();
  const config = testConfig(cluster, (doc) => {
    doc.policies = { ...(doc.policies ?? {}), gate_test: { approvals: 2 } };
  });
  const tb = await startTestBot(cluster, {
    config,
    env: { BISMAN_SIGNING_KEY: IntegrityKeys.generate(), BISMAN_SIGNING_KEYS_RETIRED: leaked },
  });
  const target = cluster.primary.sql();
  const state = stateAsSuperuser(tb, cluster);
  // The attacker: writes the state database and holds the key that was retired because it leaked.
  const old = IntegrityKeys.fromEnv({ BISMAN_SIGNING_KEY: leaked })!;
  const rowOf = async (id: number) =>
    (await state<RequestRow[]>`select * from bisman_ops.requests where id = ${id}`)[0];
  const forgeApproval = async (id: number, approver: string) => {
    const row = await rowOf(id);
    const at = new Date(Math.floor(Date.now()));
    const seal = sealApproval(old, {
      requestId: id,
      approver,
      at,
      planHash: row.plan_hash,
      requestMac: (row.seal as RequestSeal).mac,
    });
    await state`insert into bisman_ops.approvals (request_id, approver, approver_name, at, plan_hash, seal)
                values (${id}, ${approver}, 'bob', ${at}, ${row.plan_hash}, ${seal})`;
  };
  const notRun = async (id: number, key: string, what: RegExp) => {
    await tb.bot.gate.idle();
    assert.equal(await runsOf(target, key), 0, "nothing ran");
    const audit = await tb.bot.deps.audit.rows({ requestId: id });
    assert.equal(audit.some((r) => r.action === "op.started"), false);
    assert.ok(
      audit.some((r) =>
        /plan_tampered|approval.refused/.test(r.action) && what.test(JSON.stringify(r.details))
      ),
      `refused, naming ${what}: ${JSON.stringify(audit.map((r) => [r.action, r.details]))}`,
    );
  };
  try {
    await t.step("an approval sealed with the retired key does not count", async () => {
      const a = await ask(tb, "gate-test forgedold");
      assert.ok(a.id, a.text);
      await forgeApproval(a.id!, USERS.bob);
      assert.equal(await tb.click(ACTIONS.approve, a.id!, USERS.carol), 200);
      await notRun(a.id!, "forgedold", /U0BOB were not recorded by the bot/);
    });

    await t.step(
      "a pending request re-sealed with the retired key (one approval fewer) is refused",
      async () => {
        const a = await ask(tb, "gate-test resealed");
        assert.ok(a.id, a.text);
        const row = { ...await rowOf(a.id!), approvals_needed: 1 };
        await state`update bisman_ops.requests
                     set approvals_needed = 1, seal = ${state.json(sealRequest(old, row) as never)}
                   where id = ${a.id!}`;
        assert.equal(await tb.click(ACTIONS.approve, a.id!, USERS.carol), 200);
        await notRun(a.id!, "resealed", /retired/);
      },
    );

    await t.step("a request pending when the key was rotated is refused, without an alarm", async () => {
      const a = await ask(tb, "gate-test pendingold");
      assert.ok(a.id, a.text);
      // Sealed as the bot did before the rotation, with the key that is retired now.
      await state`update bisman_ops.requests set seal = ${
        state.json(sealRequest(old, await rowOf(a.id!)) as never)
      }
                   where id = ${a.id!}`;
      assert.equal(await tb.click(ACTIONS.approve, a.id!, USERS.carol), 200);
      await notRun(a.id!, "pendingold", /retired since/);
      const audit = await tb.bot.deps.audit.rows({ requestId: a.id! });
      assert.equal(audit.some((r) => r.action === "plan_tampered"), false, "no alarm");
    });

    await t.step("genuine approvals under the current key still run it", async () => {
      const a = await ask(tb, "gate-test current");
      await tb.click(ACTIONS.approve, a.id!, USERS.bob);
      await tb.click(ACTIONS.approve, a.id!, USERS.carol);
      await tb.waitForState(a.id!, "succeeded");
      assert.equal(await runsOf(target, "current"), 1);
    });

    await t.step(
      "a genuine approval copied from an earlier request onto a new one does not count",
      async () => {
        const done = (await state<{ id: number }[]>`
        select id from bisman_ops.requests where state = 'succeeded' order by id desc limit 1`)[0].id;
        const a = await ask(tb, "gate-test replayed");
        assert.ok(a.id, a.text);
        // Bob's sealed approval of the request that ran, replayed onto this one (same plan hash where it can).
        await state`insert into bisman_ops.approvals (request_id, approver, approver_name, at, plan_hash, seal)
                  select ${a.id!}, approver, approver_name, at,
                         (select plan_hash from bisman_ops.requests where id = ${a.id!}), seal
                    from bisman_ops.approvals where request_id = ${done} and approver = ${USERS.bob}`;
        assert.equal(await tb.click(ACTIONS.approve, a.id!, USERS.carol), 200);
        await notRun(a.id!, "replayed", /U0BOB were not recorded by the bot/);
      },
    );
  } finally {
    await tb.stop();
  }
});

Deno.test("the bot's Slack token cannot make an approver's genuine click approve a plan other than the one shown", async (t) => {
  // Slack signs every click with the signing secret, so a click cannot be forged with the bot token; but the
  // token edits and posts the bot's messages. An operator holding it requests something, then redraws the
  // approval message as something harmless, keeping the genuine buttons: the approver's click is genuine,
  // and it names the real request and its real plan hash.
  await using cluster = await startCluster({ name: "insider-token" });
  await applyTargetSql(cluster.primary.sql(), { parts: ["audit"] });
  await prepareGateTables(cluster.primary.sql());
  const tb = await startTestBot(cluster, { config: testConfig(cluster) });
  const target = cluster.primary.sql();
  const slackApi = async (method: string, body: Record<string, unknown>) => {
    const r = await fetch(`${tb.slack.apiUrl}${method}`, {
      method: "POST",
      headers: { authorization: `Bearer ${tb.slack.botToken}`, "content-type": "application/json" },
      body: JSON.stringify(body),
    });
    const j = await r.json();
    assert.equal(j.ok, true, JSON.stringify(j));
    return j;
  };
  const refusedTo = async (user: string, id: number, key: string) => {
    await tb.bot.gate.idle();
    assert.equal(await runsOf(target, key), 0, "nothing ran");
    assert.equal((await tb.bot.gate.view(id))!.request.state, "pending");
    assert.ok(
      tb.slack.ephemerals.some((e) => e.ephemeral_user === user && /does not show/.test(e.text ?? "")),
      "the clicker is told the message was not the bot's drawing of the request",
    );
  };
  try {
    await t.step(
      "the approval message redrawn as another plan, buttons kept: the click is refused",
      async () => {
        const a = await ask(tb, "gate-test dropall");
        assert.ok(a.id, a.text);
        const m = tb.approvalMessage(a.id!)!;
        const fake = JSON.parse(JSON.stringify(m.blocks).replaceAll("dropall", "harmless"));
        await slackApi("chat.update", { channel: m.channel, ts: m.ts, text: m.text, blocks: fake });
        assert.match(JSON.stringify(tb.approvalMessage(a.id!)!.blocks), /harmless/);
        assert.equal(await tb.click(ACTIONS.approve, a.id!, USERS.bob), 200);
        await refusedTo(USERS.bob, a.id!, "dropall");
      },
    );

    await t.step("the genuine buttons copied onto another message: the click is refused", async () => {
      const a = await ask(tb, "gate-test copied");
      assert.ok(a.id, a.text);
      const m = tb.approvalMessage(a.id!)!;
      await slackApi("chat.postMessage", {
        channel: m.channel,
        text: m.text,
        blocks: m.blocks,
        metadata: m.metadata,
      });
      assert.notEqual(tb.approvalMessage(a.id!)!.ts, m.ts, "the click lands on the copy");
      assert.equal(await tb.click(ACTIONS.approve, a.id!, USERS.bob), 200);
      await refusedTo(USERS.bob, a.id!, "copied");
    });

    await t.step("the bot's own message, untouched, still approves", async () => {
      const a = await ask(tb, "gate-test shown");
      assert.equal(await tb.click(ACTIONS.approve, a.id!, USERS.bob), 200);
      await tb.waitForState(a.id!, "succeeded");
      assert.equal(await runsOf(target, "shown"), 1);
    });
  } finally {
    await tb.stop();
  }
});

Deno.test("a run replayed after its newest audit rows were deleted is refused: the witness holds every run", async (t) => {
  // The gate refuses a request whose audit log shows it started; a superuser who also approves can delete
  // those rows (the newest ones: the chain stays valid), set the request back to pending, keep the sealed
  // approvals and approve again (with the CLI, which draws no message).
  await using cluster = await startCluster({ name: "insider-replay" });
  await applyTargetSql(cluster.primary.sql(), { parts: ["audit"] });
  await prepareGateTables(cluster.primary.sql());
  const vault = await VaultStandIn.start();
  const botToken = vault.issueToken(
    parsePolicyHcl(await Deno.readTextFile(new URL("../../deploy/vault/bisman-ops.hcl", import.meta.url))),
  );
  const config = testConfig(cluster, (doc) => {
    doc.audit_log = { witness: { vault_path: "bisman/audit-anchors" } };
  });
  const tb = await startTestBot(cluster, { config, env: { VAULT_ADDR: vault.addr, VAULT_TOKEN: botToken } });
  const target = cluster.primary.sql();
  const state = stateAsSuperuser(tb, cluster);
  const bobAtCli = { userId: USERS.bob, userName: "bob", via: "cli" as const };
  try {
    await t.step(
      "the run's audit rows deleted, the request set back to pending: bob's approval does not rerun it",
      async () => {
        const a = await ask(tb, "gate-test twice");
        assert.ok(a.id, a.text);
        await tb.click(ACTIONS.approve, a.id!, USERS.bob);
        await tb.waitForState(a.id!, "succeeded");
        assert.equal(await runsOf(target, "twice"), 1);
        const planHash = (await tb.bot.gate.view(a.id!))!.request.plan_hash;
        await tb.bot.gate.idle();
        await state.begin(async (tx) => {
          await tx`alter table bisman_ops.audit_log disable trigger audit_log_no_update_delete`;
          await tx`delete from bisman_ops.audit_log
                  where seq >= (select min(seq) from bisman_ops.audit_log
                                 where request_id = ${a.id!} and action = 'op.started')`;
          await tx`alter table bisman_ops.audit_log enable trigger audit_log_no_update_delete`;
          await tx`update bisman_ops.requests
                    set state = 'pending', run_by = null, started_at = null, finished_at = null, result = null,
                        summary = null, decided_by = null
                  where id = ${a.id!}`;
        });
        assert.equal((await tb.bot.deps.audit.verify()).ok, true, "the shortened chain is a valid chain");
        const d = await tb.bot.gate.approve(a.id!, bobAtCli, { planHash });
        await tb.bot.gate.idle();
        assert.equal(await runsOf(target, "twice"), 1, "ran once");
        assert.equal(d.status, "refused", d.message);
        const audit = await tb.bot.deps.audit.rows({ requestId: a.id! });
        const tampered = audit.find((r) => r.action === "plan_tampered");
        assert.ok(tampered, `plan_tampered: ${audit.map((r) => r.action)}`);
        assert.match(String(tampered.details.problem), /witness .* holds its run, started at audit row \d+/);
      },
    );

    await t.step("a request that never ran is not held up by the witness", async () => {
      const a = await ask(tb, "gate-test once");
      await tb.click(ACTIONS.approve, a.id!, USERS.bob);
      await tb.waitForState(a.id!, "succeeded");
      assert.equal(await runsOf(target, "once"), 1);
    });
  } finally {
    await tb.stop();
    await vault.stop();
  }
});

Deno.test("a stored rotation plan gives whoever reads the state database no way to test password guesses", async () => {
  // Every CLI login may SELECT requests (and so every plan), and so may the runtime role. A rotation's
  // fingerprint holds a digest of each role's stored password; for an md5 password (md5 of password and
  // role name: no secret salt) a plain digest of it lets a reader check guesses offline.
  await using cluster = await startCluster({ name: "insider-digest" });
  const sql = cluster.primary.sql();
  await applyTargetSql(sql, { parts: ["audit", "roles"] });
  const vault = await VaultStandIn.start();
  await sql.begin(async (tx) => {
    await tx`set local password_encryption = 'md5'`;
    await tx`alter role bisman_readonly login password 'summer2024'`;
  });
  vault.kvPut("bisman/db", { readonly_password: "summer2024" });
  const config = testConfig(cluster, (doc) => {
    doc.targets.main.roles = { bisman_readonly: { path: "bisman/db", key: "readonly_password" } };
  });
  const tb = await startTestBot(cluster, {
    config,
    env: { VAULT_ADDR: vault.addr, VAULT_TOKEN: vault.rootToken },
  });
  try {
    const a = await ask(tb, "rotate bisman_readonly");
    assert.ok(a.id, a.text);
    const [row] = await stateAsSuperuser(tb, cluster)<
      { plan: { fingerprint: { roles: Record<string, any> } } }[]
    >`
      select plan from bisman_ops.requests where id = ${a.id!}`;
    const stored = row.plan.fingerprint.roles.bisman_readonly.verifierDigest as string;
    assert.match(stored, /^[0-9a-f]{16}$/, "the fingerprint still tells a changed password");
    /** What a reader computes for a guess, as the server computed the digest before. */
    const guess = async (password: string) => {
      const md5 = (await sql<{ h: string }[]>`select md5(${password + "bisman_readonly"}) as h`)[0].h;
      const rolpassword = `md5${md5}`;
      const digest = new Uint8Array(
        await crypto.subtle.digest("SHA-256", new TextEncoder().encode(rolpassword)),
      );
      return [...digest].map((b) => b.toString(16).padStart(2, "0")).join("").slice(0, 16);
    };
    assert.notEqual(stored, await guess("summer2024"), "the right guess is not recognisable");
  } finally {
    await tb.stop();
    await vault.stop();
  }
});
