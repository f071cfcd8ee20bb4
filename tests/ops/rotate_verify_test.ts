import assert from "node:assert/strict";
import { startCluster } from "../../standins/cluster.ts";
import { testConfig, USERS } from "../support/bot.ts";
import { testOpDeps } from "../support/op_deps.ts";
import { login, seedRotatableRoles } from "../support/rotation.ts";
import { VaultStandIn } from "../../standins/vault.ts";
import { VaultClient } from "../../core/vault.ts";
import { rotateArgs, rotateCredentials as op } from "../../ops/rotate_credentials.ts";
import { passwordsChecked, verifyPasswordChange } from "../../ops/_password_check.ts";

// One cluster whose pg_hba.conf trusts one role over TCP (as a careless line would) and asks every other
// role for a SCRAM password: the same rotation proves something for one and nothing for the other.
Deno.test("rotation verification: under trust it reports not verified and why; under SCRAM the old password fails and the new one works", async (t) => {
  await using cluster = await startCluster({
    name: "rotate-verify",
    hbaExtra: ["host all trusted_app 127.0.0.1/32 trust"],
  });
  const vault = await VaultStandIn.start();
  const roles = await seedRotatableRoles(cluster, vault, "verify/db", {
    trusted_app: { key: "trusted_password", password: "old-trusted-pw" },
    scram_app: { key: "scram_password", password: "old-scram-pw" },
  });
  const config = testConfig(cluster, (doc) => {
    doc.targets.main.roles = roles;
  });
  const deps = await testOpDeps(cluster, { config, migrate: true });
  deps.vault = new VaultClient({ addr: vault.addr, token: vault.rootToken, secrets: deps.secrets });
  deps.actor = USERS.alice;
  const primary = deps.targets.member("main", "primary");
  try {
    await t.step("passwordsChecked() tells a trusted role from a password-checked one", async () => {
      const trusted = await passwordsChecked(primary, "trusted_app");
      assert.equal(trusted.checked, false);
      if (!trusted.checked) assert.match(trusted.why, /random wrong password.*trust/);
      assert.deepEqual(await passwordsChecked(primary, "scram_app"), { checked: true });
    });

    await t.step("the plan promises only what the run checks", async () => {
      const p = await op.plan(rotateArgs.parse({ role: "scram_app" }), deps);
      assert.match(
        p.verify[0],
        /a random wrong password is refused .* "not verified" and why.*the new password logs in, and the old one .* is refused/,
      );
    });

    await t.step("under trust: rotated, and the result says not verified and why", async () => {
      const p = await op.plan(rotateArgs.parse({ role: "trusted_app" }), deps);
      const r = await op.run(p, deps);
      const o = r.roles[0];
      assert.equal(o.status, "rotated");
      assert.equal(o.verified, undefined, "no login could tell");
      assert.match(
        o.verification!,
        /^not verified: main\/primary .* let trusted_app log in with a random wrong password/,
      );
      const text = op.describeResult!(r);
      assert.match(text, /trusted_app: rotated \(secret\/verify\/db#trusted_password v1→v2, not verified: /);
      assert.doesNotMatch(text, /(?<!not )verified:/);
      // Both passwords "log in" here, which is exactly why nothing was proved.
      assert.equal(await login(cluster, "trusted_app", "old-trusted-pw"), true);
      const rows = await deps.audit.rows();
      const rotated = rows.find((x) =>
        x.action === "credential.rotated" && x.details.role === "trusted_app"
      )!;
      assert.equal(rotated.details.verified, undefined);
      assert.match(String(rotated.details.verification), /^not verified/);
    });

    await t.step(
      "under SCRAM: the old password is refused and the new one logs in, both checked",
      async () => {
        const p = await op.plan(rotateArgs.parse({ role: "scram_app" }), deps);
        const r = await op.run(p, deps);
        const o = r.roles[0];
        assert.equal(o.status, "rotated");
        assert.equal(o.verified, true);
        assert.equal(
          o.verification,
          "verified: the new password logs in, the old one is refused (and so is a random wrong one)",
        );
        assert.equal(await login(cluster, "scram_app", "old-scram-pw"), "28P01");
        assert.equal(await login(cluster, "scram_app", vault.kvGet("verify/db")!.data.scram_password), true);
        // The verification's own attempts: one random wrong password and the old one, both refused.
        const log = await cluster.primary.readLog();
        assert.ok(
          (log.match(/password authentication failed for user "scram_app"/g) ?? []).length >= 2,
          "the server refused the wrong and the old password",
        );
      },
    );

    await t.step("verifyPasswordChange() fails when the new password does not log in", async () => {
      const current = vault.kvGet("verify/db")!.data.scram_password;
      const failed = await verifyPasswordChange(primary, "scram_app", "not-the-password", current);
      assert.equal(failed.status, "failed");
      assert.match(failed.words, /^verification FAILED: the new password does not log in \(28P01/);
    });
  } finally {
    await deps.close();
    await vault.stop();
  }
});
