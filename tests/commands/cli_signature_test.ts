/**
 * A superuser of the state database can `SET SESSION AUTHORIZATION` to any CLI login and hand the bot a
 * command as that person (cli_submit() takes session_user as who typed it): request as themselves, approve as
 * bob. A login with a key in access.cli_keys signs its commands with a private key the database never sees,
 * so that approval is refused, while bob's own CLI (BISMAN_CLI_KEY_FILE) still approves.
 */

import assert from "node:assert/strict";
import { generateKeyPairSync } from "node:crypto";
import { startCluster } from "../../standins/cluster.ts";
import { startTestBot, testConfig, USERS } from "../support/bot.ts";
import { ask } from "../support/gate.ts";
import { prepareGateTables, registerGateTest, runsOf } from "../support/gate_op.ts";
import { applyTargetSql } from "../support/bisman_schema.ts";
import { waitFor } from "../../standins/wait.ts";
import { runCli } from "../../cli.ts";
import { checkCliSignature, MAX_SKEW_MS, parsePrivateKey, signCliCommand } from "../../core/cli_signature.ts";

registerGateTest();

function keyPair(): { privatePem: string; publicB64: string } {
  const { privateKey, publicKey } = generateKeyPairSync("ed25519");
  return {
    privatePem: privateKey.export({ format: "pem", type: "pkcs8" }).toString(),
    publicB64: publicKey.export({ format: "der", type: "spki" }).toString("base64"),
  };
}

Deno.test("checkCliSignature(): the login, the exact command, its options and a recent time are signed", () => {
  const bob = keyPair();
  const other = keyPair();
  const now = new Date("2026-12-07T04:00:00Z");
  const signed = signCliCommand(
    parsePrivateKey(bob.privatePem),
    "bob",
    "approve 12",
    { planHash: "ab12" },
    now,
  );
  assert.equal(
    checkCliSignature(bob.publicB64, "bob", "approve 12", { ...signed, wait_seconds: 30 }, now),
    undefined,
  );
  assert.match(checkCliSignature(bob.publicB64, "bob", "approve 13", signed, now)!, /not this login's/);
  assert.match(
    checkCliSignature(bob.publicB64, "bob", "approve 12", { ...signed, planHash: "cd34" }, now)!,
    /not this login's/,
  );
  assert.match(checkCliSignature(bob.publicB64, "alice", "approve 12", signed, now)!, /not this login's/);
  assert.match(checkCliSignature(other.publicB64, "bob", "approve 12", signed, now)!, /not this login's/);
  const later = new Date(now.getTime() + MAX_SKEW_MS + 1000);
  assert.match(checkCliSignature(bob.publicB64, "bob", "approve 12", signed, later)!, /not within 5 minutes/);
  assert.match(
    checkCliSignature(bob.publicB64, "bob", "approve 12", { planHash: "ab12" }, now)!,
    /no signature/,
  );
});

Deno.test("a superuser submitting as bob through the CLI inbox cannot approve: bob signs his commands", async (t) => {
  await using cluster = await startCluster({ name: "cli-signature" });
  await applyTargetSql(cluster.primary.sql(), { parts: ["audit"] });
  await prepareGateTables(cluster.primary.sql());
  const bob = keyPair();
  const stateDb = await cluster.createDatabase("sigstate");
  const tb = await startTestBot(cluster, {
    stateDb,
    config: testConfig(cluster, (d) => {
      d.access.cli_operators = { alice: USERS.alice, bob: USERS.bob };
      d.access.cli_keys = { bob: bob.publicB64 };
    }),
  });
  await cluster.primary.psql(`create role bob login password 'bob-pw' in role bisman_cli`);
  const superuser = cluster.primary.sql(stateDb);
  const target = cluster.primary.sql();
  const dir = await Deno.makeTempDir({ prefix: "bisman-cli-sig-" });
  const keyFile = `${dir}/bob.pem`;
  await Deno.writeTextFile(keyFile, bob.privatePem, { mode: 0o600 });
  /** Submits `command` as `login` the way a superuser can: cli_submit() under SET SESSION AUTHORIZATION. */
  const submitAs = async (login: string, command: string, options: Record<string, unknown>) => {
    const id = await superuser.begin(async (tx) => {
      await tx.unsafe(`set local session authorization ${login}`);
      const [r] = await tx<{ id: string }[]>`select bisman_ops.cli_submit(${command}, ${
        tx.json(options as never)
      }) as id`;
      return Number(r.id);
    });
    return await waitFor(async () => {
      const [r] = await superuser<{ exit_code: number | null; reply: { text?: string } | null }[]>`
        select exit_code, reply from bisman_ops.cli_inbox where id = ${id} and done_at is not null`;
      return r;
    }, { what: `CLI command ${command}` });
  };
  try {
    let id = 0;
    let planHash = "";
    await t.step("as bob, without bob's key: refused, nothing ran", async () => {
      const a = await ask(tb, "gate-test forgedcli");
      assert.ok(a.id, a.text);
      id = a.id!;
      planHash = (await tb.bot.gate.view(id))!.request.plan_hash;
      const r = await submitAs("bob", `approve ${id}`, { planHash });
      assert.notEqual(r.exit_code, 0, r.reply?.text ?? "");
      assert.match(r.reply?.text ?? "", /came in as bob, but it carries no signature/);
      await tb.bot.gate.idle();
      assert.equal(await runsOf(target, "forgedcli"), 0);
      assert.equal((await tb.bot.gate.view(id))!.approvals.length, 0, "no approval recorded");
    });

    await t.step("bob's own CLI signs with his key, and his approval runs it once", async () => {
      const lines: string[] = [];
      const out = await runCli(["approve", String(id), "--plan", planHash], {
        report: (l) => lines.push(l),
        ask: false,
        env: {
          HOME: Deno.env.get("HOME"),
          BISMAN_CLI_DATABASE_URL: cluster.primary.url({
            database: stateDb,
            user: "bob",
            password: "bob-pw",
          }),
          BISMAN_CLI_KEY_FILE: keyFile,
        },
      });
      assert.equal(out.exit, 0, `${out.text}\n${lines.join("\n")}`);
      await tb.waitForState(id, "succeeded");
      assert.equal(await runsOf(target, "forgedcli"), 1);
    });

    await t.step("bob's signature, copied by the superuser onto another command, is refused", async () => {
      const [signed] = await superuser<{ options: Record<string, unknown> }[]>`
        select options from bisman_ops.cli_inbox where login = 'bob' and options ? 'sig' order by id desc limit 1`;
      const a = await ask(tb, "gate-test copiedsig");
      const other = (await tb.bot.gate.view(a.id!))!.request.plan_hash;
      const r = await submitAs("bob", `approve ${a.id}`, { ...signed.options, planHash: other });
      assert.notEqual(r.exit_code, 0);
      assert.match(r.reply?.text ?? "", /signature is not this login's for this command/);
      await tb.bot.gate.idle();
      assert.equal(await runsOf(target, "copiedsig"), 0);
    });
  } finally {
    await tb.stop();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
});
