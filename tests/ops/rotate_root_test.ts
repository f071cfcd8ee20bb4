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
    allowedRoles: ["bisman-verify"],
  });
  vault.configureDatabaseRole("bisman-verify", {
    dbName: "bisman",
    creationStatements: [
      `CREATE ROLE "{{name}}" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}'`,
    ],
    defaultTtlSeconds: 300,
  });
  // A role the connection does not allow: Vault refuses to issue it, as a broken connection would.
  vault.configureDatabaseRole("not-allowed", {
    dbName: "bisman",
    creationStatements: [`CREATE ROLE "{{name}}" WITH LOGIN PASSWORD '{{password}}'`],
  });
  const config = testConfig(cluster, (doc) => {
    doc.targets.main.vault = {
      kv_mount: "secret",
      database_connection: "bisman",
      verify_role: "bisman-verify",
    };
  });
  const unverified = testConfig(cluster, (doc) => {
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
      assert.equal(p.verifyRole, "bisman-verify");
      assert.deepEqual(p.verify, [
        "Vault answered 204",
        "Vault's connection works with the new credential: it issued credentials of role bisman-verify, they log in on main/primary, and their lease is revoked",
        "Not checked: the old root password is refused: not checked, only Vault ever knew it",
      ]);
      assert.ok(p.steps.some((s) => s.includes("database/creds/bisman-verify")));
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
      assert.equal(r.verification.status, "verified");
      assert.match(
        r.verification.words,
        /Vault created a user of role bisman-verify over it; they logged in on main\/primary; its lease was revoked/,
      );
      assert.deepEqual(vault.openLeases(), [], "the verify credentials were revoked");
      const [{ n }] = await cluster.primary.sql()<{ n: number }[]>`
        select count(*)::int as n from pg_roles where rolname like 'v-%bisman-v%'`;
      assert.equal(n, 0, "Vault dropped the user it issued");
      assert.deepEqual(
        vault.calls.filter((c) => /creds|leases/.test(c.path)).map((c) => [c.method, c.path, c.status]),
        [["GET", "/v1/database/creds/bisman-verify", 200], ["POST", "/v1/sys/leases/revoke", 204]],
      );
      assert.deepEqual(
        vault.calls.filter((c) => c.path.includes("rotate-root")).map((c) => [c.method, c.status]),
        [["POST", 204]],
      );
      assert.equal(await login(cluster, "vault_root", "root-initial-pw"), "28P01");
      const now = vault.databasePassword("bisman")!;
      assert.notEqual(now, "root-initial-pw");
      assert.equal(await login(cluster, "vault_root", now), true);
      assert.match(op.describeResult!(r), /only Vault knows it now\. Verified: Vault's connection works/);
      assert.match(
        op.describeResult!(r),
        /old root password is refused: not checked, only Vault ever knew it/,
      );
    });
    await t.step(
      "without verify_role the plan promises no connection check, and the result says not checked",
      async () => {
        const d2 = await testOpDeps(cluster, { config: unverified });
        d2.vault = deps.vault;
        try {
          const p2 = await op.plan(op.args.parse({}), d2);
          assert.equal(p2.verifyRole, undefined);
          assert.match(
            p2.verify.join("\n"),
            /Not checked: whether Vault's connection works with the new credential \(set targets\.main\.vault\.verify_role/,
          );
          assert.ok(!p2.verify.some((v) => /old password .* no longer logs in/.test(v)));
          const r = await op.run(p2, d2);
          assert.equal(r.verification.status, "not_checked");
          assert.match(op.describeResult!(r), /Not checked whether Vault's connection works/);
        } finally {
          await d2.close();
        }
      },
    );
    await t.step(
      "when Vault cannot issue credentials after the rotation, the run fails at verify and says so",
      async () => {
        const before = vault.databasePassword("bisman");
        await assert.rejects(
          op.run({ ...p, verifyRole: "not-allowed" }, deps),
          (e: Error & { step?: string; userMessage?: string }) => {
            assert.equal(e.step, "verify");
            assert.match(
              e.userMessage!,
              /rotated the root credential of bisman, but then could not issue credentials of role not-allowed/,
            );
            return true;
          },
        );
        assert.notEqual(vault.databasePassword("bisman"), before, "the rotation itself happened");
      },
    );
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
