import assert from "node:assert/strict";
import { startCluster } from "../../standins/cluster.ts";
import { startTestBot, testConfig, USERS } from "../support/bot.ts";
import { testOpDeps } from "../support/op_deps.ts";
import { ask } from "../support/gate.ts";
import { login } from "../support/rotation.ts";
import { VaultStandIn } from "../../standins/vault.ts";
import { VaultClient, VaultError } from "../../core/vault.ts";
import { ACTIONS } from "../../views/actions.ts";
import { rotateRoot as op } from "../../ops/rotate_root.ts";

Deno.test("rotate_root asks Vault to rotate its database connection's password, which then only Vault knows", async (t) => {
  await using cluster = await startCluster({ name: "rotate-root" });
  const vault = await VaultStandIn.start();
  await cluster.primary.sql()`create role vault_root login createrole password 'root-initial-pw'`;
  vault.configureDatabase("bisman", {
    connectionUrl: `postgres://127.0.0.1:${cluster.primary.port}/postgres`,
    username: "vault_root",
    password: "root-initial-pw",
  });
  const config = testConfig(cluster, (doc) => {
    doc.targets.main.vault = { kv_mount: "secret", database_connection: "bisman" };
  });
  const deps = await testOpDeps(cluster, { config });
  deps.vault = new VaultClient({ addr: vault.addr, token: vault.rootToken, secrets: deps.secrets });
  try {
    await runSteps();
  } finally {
    await deps.close();
    await vault.stop();
  }

  async function runSteps() {
    const p = await op.plan(op.args.parse({}), deps);
    await t.step("plan() names the connection and says only Vault will know the password", () => {
      assert.equal(p.connection, "bisman");
      assert.match(p.summary, /root credential of Vault's database connection bisman \(target main\)/);
      assert.ok(p.steps.some((s) => s.includes("database/rotate-root/bisman")));
      assert.ok(p.warnings?.some((w) => /only Vault knows the password/.test(w)));
    });
    await t.step("revalidate() refuses while Vault is sealed", async () => {
      assert.equal(await op.revalidate!(p, deps), undefined);
      vault.seal();
      try {
        assert.equal(await op.revalidate!(p, deps), "Vault is sealed");
      } finally {
        vault.unseal();
      }
    });
    await t.step("run() gets a 204; the old password no longer logs in, Vault's does", async () => {
      const r = await op.run(p, deps);
      assert.equal(r.connection, "bisman");
      assert.deepEqual(
        vault.calls.filter((c) => c.path.includes("rotate-root")).map((c) => [c.method, c.status]),
        [["POST", 204]],
      );
      assert.equal(await login(cluster, "vault_root", "root-initial-pw"), "28P01");
      const now = vault.databasePassword("bisman")!;
      assert.notEqual(now, "root-initial-pw");
      assert.equal(await login(cluster, "vault_root", now), true);
      assert.match(op.describeResult!(r), /only Vault knows it now/);
    });
    await t.step("an unknown connection fails with Vault's reason and what to fix", async () => {
      const wrong = { ...p, connection: "nope" };
      await assert.rejects(op.run(wrong, deps), (e: VaultError) => {
        assert.equal(e.reason, "not_found");
        assert.match(e.userMessage, /no database connection "nope".*database_connection/);
        return true;
      });
    });
    await t.step("reconcile() cannot read back whether it landed, and says so", async () => {
      const v = await op.reconcile!(p, deps);
      assert.equal(v.status, "needs_human");
      assert.match(v.note, /keeps connection bisman's password consistent itself/);
    });

    await t.step("/bisman rotate root runs through the approval gate", async () => {
      const tb = await startTestBot(cluster, {
        config,
        env: { VAULT_ADDR: vault.addr, VAULT_TOKEN: vault.rootToken },
      });
      try {
        const before = vault.databasePassword("bisman")!;
        const a = await ask(tb, "rotate root");
        assert.ok(a.id, a.text);
        assert.equal(await tb.click(ACTIONS.approve, a.id!, USERS.bob), 200);
        await tb.waitForState(a.id!, "succeeded");
        assert.notEqual(vault.databasePassword("bisman"), before);
        assert.equal(await login(cluster, "vault_root", before), "28P01");
        const slackText = JSON.stringify(tb.slack.calls);
        assert.ok(!slackText.includes(vault.databasePassword("bisman")!));
      } finally {
        await tb.stop();
      }
    });
  }
});
