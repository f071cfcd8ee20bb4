import assert from "node:assert/strict";
import { startCluster } from "../../standins/cluster.ts";
import { login, seedRotatableRoles } from "../support/rotation.ts";
import { waitFor } from "../../standins/wait.ts";
import { startTestBot, testConfig, USERS } from "../support/bot.ts";
import { ask } from "../support/gate.ts";
import { VaultStandIn } from "../../standins/vault.ts";
import { ACTIONS } from "../../views/actions.ts";
import { TcpProxy } from "./_tcp_proxy.ts";

Deno.test("Vault sealed or unreachable: rotation is refused or fails with a clear message, the old password keeps working, Vault is unchanged, and rotation works once Vault is back", async (t) => {
  await using cluster = await startCluster({ name: "fault-vault" });
  const vault = await VaultStandIn.start();
  const roles = await seedRotatableRoles(cluster, vault, "bisman/db", {
    fault_app: { key: "app_password", password: "old-fault-app-pw" },
  });
  // The bot reaches Vault through a proxy that can play an unreachable Vault.
  const proxy = TcpProxy.start(Number(new URL(vault.addr).port));
  const tb = await startTestBot(cluster, {
    env: { VAULT_ADDR: `http://127.0.0.1:${proxy.port}`, VAULT_TOKEN: vault.rootToken },
    start: { probeIntervalMs: 300 },
    config: testConfig(cluster, (doc) => {
      doc.targets.main.roles = roles;
    }),
  });
  const vaultOnReadyz = async () => (await (await fetch(`${tb.bot.url}/readyz`)).json()).vault;
  const unchanged = async () => {
    assert.equal(await login(cluster, "fault_app", "old-fault-app-pw"), true, "the old password still works");
    assert.equal(vault.kvVersions("bisman/db"), 1, "Vault is unchanged");
    assert.equal(vault.kvGet("bisman/db")!.data.app_password, "old-fault-app-pw");
  };
  try {
    await t.step(
      "sealed when asked: the request is refused saying Vault is sealed; nothing changes",
      async () => {
        vault.seal();
        const r = await ask(tb, "rotate fault_app");
        assert.match(r.text, /sealed/i);
        assert.equal(r.id, undefined, "no request was recorded");
        await unchanged();
        vault.unseal();
      },
    );

    await t.step(
      "sealed between request and approval: the click re-checks the plan, finds Vault sealed, runs nothing and says so",
      async () => {
        const r = await ask(tb, "rotate fault_app");
        assert.ok(r.id, r.text);
        vault.seal();
        try {
          assert.equal(await tb.click(ACTIONS.approve, r.id!, USERS.carol), 200);
          await tb.waitForState(r.id!, "stale");
          const text = tb.approvalMessage(r.id)!.text ?? "";
          assert.match(text, /not run/);
          assert.match(text, /sealed: unseal it/);
          await unchanged();
          const actions = (await tb.bot.deps.audit.rows({ requestId: r.id })).map((x) => x.action);
          assert.ok(!actions.includes("op.started"), actions.join(", "));
        } finally {
          vault.unseal();
        }
      },
    );

    await t.step(
      "unreachable: /readyz stays 200 and says so; a request answers that Vault does not answer",
      async () => {
        await proxy.down();
        await waitFor(async () => (await vaultOnReadyz()) === "unreachable" || undefined, {
          what: "/readyz reporting Vault unreachable",
        });
        assert.equal((await fetch(`${tb.bot.url}/readyz`)).status, 200, "Vault never makes the bot unready");
        const r = await ask(tb, "rotate fault_app");
        assert.match(r.text, /Vault/);
        assert.match(r.text, /not answer|unreachable|refused|could not reach|cannot reach/i);
        assert.equal(r.id, undefined);
        await unchanged();
        proxy.up();
      },
    );

    await t.step(
      "Vault back: the same rotation is approved and runs; the new password is Vault's and works",
      async () => {
        const r = await ask(tb, "rotate fault_app");
        assert.ok(r.id, r.text);
        assert.equal(await tb.click(ACTIONS.approve, r.id!, USERS.carol), 200);
        await tb.waitForState(r.id!, "succeeded");
        assert.equal(vault.kvVersions("bisman/db"), 2);
        const fresh = vault.kvGet("bisman/db")!.data.app_password;
        assert.notEqual(fresh, "old-fault-app-pw");
        assert.equal(await login(cluster, "fault_app", fresh), true);
        assert.notEqual(await login(cluster, "fault_app", "old-fault-app-pw"), true);
        const secrets = [fresh, "old-fault-app-pw", vault.rootToken];
        for (const line of tb.logs) {
          for (const s of secrets) assert.ok(!line.includes(s), "no secret in the log");
        }
        for (const m of [...tb.slack.messages, ...tb.slack.ephemerals]) {
          for (const s of secrets) assert.ok(!JSON.stringify(m).includes(s), "no secret in Slack");
        }
      },
    );
  } finally {
    await tb.stop();
    await proxy.close();
    await vault.stop();
  }
});
