import assert from "node:assert/strict";
import { checkVaultPath, parseVaultRef, VaultClient, VaultError } from "../../core/vault.ts";
import { createLogger, Secrets } from "../../core/log.ts";
import { Targets } from "../../core/targets.ts";
import { VaultStandIn } from "../../standins/vault.ts";
import { startCluster } from "../../standins/cluster.ts";
import { testConfig } from "../support/bot.ts";
import { waitFor } from "../../standins/wait.ts";

async function failure(p: Promise<unknown>): Promise<VaultError> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof VaultError, `expected a VaultError, got ${e}`);
    return e;
  }
  assert.fail("expected the call to fail");
}

/** Every text a failure exposes: message, name, and the cause chain. */
function allText(e: unknown): string {
  const parts: string[] = [];
  for (let x: any = e; x; x = x.cause) parts.push(String(x.name), String(x.message), String(x.stack ?? ""));
  return parts.join("\n");
}

Deno.test("VaultClient with a token: KV v2 read, readVersion, metadata and write with check-and-set", async (t) => {
  const v = await VaultStandIn.start();
  const secrets = new Secrets();
  const c = new VaultClient({ addr: v.addr, token: v.rootToken, secrets });
  try {
    await t.step("write creates version 1 (cas 0), then version 2 on cas 1", async () => {
      assert.deepEqual(
        (await c.write("bisman/db", { app_password: "first-secret-1" }, { cas: 0 })).version,
        1,
      );
      const w = await c.write("bisman/db", { app_password: "second-secret-2", other: "keep-me-123" }, {
        cas: 1,
      });
      assert.equal(w.version, 2);
      assert.match(w.createdTime, /^\d{4}-/);
    });
    await t.step(
      "read gives the current version; readVersion an older one; values become secrets",
      async () => {
        const cur = await c.read("bisman/db");
        assert.equal(cur.version, 2);
        assert.deepEqual(cur.data, { app_password: "second-secret-2", other: "keep-me-123" });
        assert.equal(cur.mount, "secret");
        const old = await c.readVersion("bisman/db", 1);
        assert.equal(old.data.app_password, "first-secret-1");
        assert.ok(
          secrets.leaks("x first-secret-1 x") && secrets.leaks("second-secret-2") &&
            secrets.leaks("keep-me-123"),
        );
      },
    );
    await t.step("metadata lists the versions and their times", async () => {
      v.setCreatedTime("bisman/db", 1, "2024-01-01T00:00:00Z");
      const m = await c.metadata("bisman/db");
      assert.equal(m.currentVersion, 2);
      assert.deepEqual(m.versions.map((x) => x.version), [1, 2]);
      assert.equal(m.versions[0].createdTime, "2024-01-01T00:00:00.000Z");
    });
    await t.step(
      "a check-and-set mismatch is a conflict that names no secret and wrote nothing",
      async () => {
        const e = await failure(c.write("bisman/db", { app_password: "third-secret-3" }, { cas: 1 }));
        assert.equal(e.reason, "cas_mismatch");
        assert.equal(e.code, "conflict");
        assert.equal(e.definitelyNotApplied, true);
        assert.match(e.userMessage, /someone else wrote a newer version/);
        assert.ok(!allText(e).includes("third-secret-3"));
        assert.equal(v.kvVersions("bisman/db"), 2);
      },
    );
    await t.step("an absent secret or version is not_found", async () => {
      assert.equal((await failure(c.read("bisman/none"))).reason, "not_found");
      assert.equal((await failure(c.readVersion("bisman/db", 9))).reason, "not_found");
    });
    await t.step("readRef reads path#key in the given mount; a missing key is not_configured", async () => {
      assert.equal(await c.readRef("bisman/db#other"), "keep-me-123");
      await assert.rejects(
        c.readRef("bisman/db#nope"),
        (e: { code?: string }) => e.code === "not_configured",
      );
    });
    await t.step("paths and refs outside the safe alphabet are refused before any request", async () => {
      const before = v.calls.length;
      for (const bad of ["../sys/seal", "bisman/../x", "a b", "x?version=1", "", "bisman//db", "é/x"]) {
        assert.throws(() => checkVaultPath(bad), VaultError, bad);
        await assert.rejects(c.read(bad), VaultError);
      }
      assert.throws(() => parseVaultRef("bisman/db"), VaultError);
      assert.throws(() => parseVaultRef("bisman/db#a;b"), VaultError);
      await assert.rejects(c.rotateRoot("bisman; rm"), VaultError);
      assert.equal(v.calls.length, before, "no request was made");
    });
  } finally {
    await v.stop();
  }
});

Deno.test("VaultClient maps sealed, 500, timeout and unreachable to Slack-safe VaultErrors", async (t) => {
  const v = await VaultStandIn.start();
  const secrets = new Secrets();
  const c = new VaultClient({ addr: v.addr, token: v.rootToken, secrets, timeoutMs: 300 });
  try {
    v.kvPut("bisman/db", { app_password: "p" });
    await t.step("sealed: reason sealed, health says sealed, a write is definitely not applied", async () => {
      v.seal();
      try {
        const e = await failure(c.write("bisman/db", { app_password: "sealed-secret-x" }, { cas: 1 }));
        assert.equal(e.reason, "sealed");
        assert.equal(e.status, 503);
        assert.equal(e.definitelyNotApplied, true);
        assert.match(e.userMessage, /is sealed: unseal it/);
        assert.ok(!allText(e).includes("sealed-secret-x"));
        assert.deepEqual(await c.health(), {
          reachable: true,
          initialized: true,
          sealed: true,
          standby: true,
          version: "1.15.0-standin",
        });
      } finally {
        v.unseal();
      }
      assert.equal(v.kvVersions("bisman/db"), 1);
    });
    await t.step("a 500 is a server failure whose outcome is unknown", async () => {
      v.failNext("secret/data/bisman/db", 500);
      const e = await failure(c.write("bisman/db", { app_password: "x-secret-500" }, { cas: 1 }));
      assert.equal(e.reason, "server");
      assert.equal(e.definitelyNotApplied, false);
      assert.match(e.userMessage, /failed \(HTTP 500/);
    });
    await t.step("a hung Vault times out after timeoutMs", async () => {
      v.delayNext("secret/data/bisman/db", 1500);
      const started = performance.now();
      const e = await failure(c.read("bisman/db"));
      assert.equal(e.reason, "timeout");
      assert.equal(e.definitelyNotApplied, false);
      assert.ok(performance.now() - started < 1200, "the client gave up before Vault answered");
      assert.match(e.userMessage, /did not answer within 300 ms/);
    });
    await t.step("a wrong token is a permission error that does not echo the token", async () => {
      const bad = new VaultClient({ addr: v.addr, token: "hvs.not-the-token", secrets });
      const e = await failure(bad.read("bisman/db"));
      assert.equal(e.reason, "permission");
      assert.ok(!allText(e).includes("hvs.not-the-token"));
    });
    await t.step("an unknown rotate-root connection is not_found with Vault's reason", async () => {
      const e = await failure(c.rotateRoot("nope"));
      assert.equal(e.reason, "not_found");
      assert.match(e.userMessage, /no database connection "nope"/);
    });
    await t.step("nothing listens: unreachable, and health() reports it without throwing", async () => {
      const dead = new VaultClient({
        addr: "http://127.0.0.1:1",
        token: "t-123456",
        secrets,
        timeoutMs: 500,
      });
      assert.equal((await failure(dead.read("bisman/db"))).reason, "unreachable");
      const h = await dead.health();
      assert.equal(h.reachable, false);
      assert.match(h.error ?? "", /unreachable/);
    });
    await t.step("VAULT_ADDR without credentials answers not configured", async () => {
      const none = VaultClient.fromEnv({ vaultAddr: v.addr }, secrets)!;
      await assert.rejects(none.read("bisman/db"), (e: { code?: string }) => e.code === "not_configured");
      assert.equal(VaultClient.fromEnv({}, secrets), undefined);
    });
  } finally {
    await v.stop();
  }
});

Deno.test("VaultClient with AppRole logs in lazily, again on 403, and again before the token expires", async (t) => {
  const v = await VaultStandIn.start({ tokenTtlSeconds: 2 });
  const secrets = new Secrets();
  const lines: string[] = [];
  const log = createLogger(secrets, { sink: (l) => lines.push(l) });
  const c = VaultClient.fromEnv(
    { vaultAddr: v.addr, vaultRoleId: v.approle.roleId, vaultSecretId: v.approle.secretId },
    secrets,
    log,
  )!;
  const logins = () => v.calls.filter((x) => x.path === "/v1/auth/approle/login").length;
  try {
    v.kvPut("bisman/db", { app_password: "approle-secret" });
    await t.step("the first call logs in, the next reuses the token", async () => {
      assert.equal(logins(), 0);
      assert.equal((await c.read("bisman/db")).version, 1);
      await c.read("bisman/db");
      assert.equal(logins(), 1);
    });
    await t.step("a revoked token (403) triggers one new login and the call succeeds", async () => {
      revokeAll(v);
      assert.equal((await c.read("bisman/db")).data.app_password, "approle-secret");
      assert.equal(logins(), 2);
    });
    await t.step("near its TTL the token is replaced before it expires, so no call meets a 403", async () => {
      const from = v.calls.length;
      // Keep working, as the bot does, until the client has renewed on its own (at 80% of the 2-second TTL).
      await waitFor(async () => (await c.read("bisman/db")).version === 1 && logins() === 3, {
        what: "a third AppRole login",
        timeoutMs: 4000,
        intervalMs: 100,
      });
      assert.ok(v.calls.slice(from).every((x) => x.status !== 403), "no request was refused with 403");
    });
    await t.step("wrong AppRole credentials are a Slack-safe error naming no secret", async () => {
      const bad = new VaultClient({
        addr: v.addr,
        roleId: v.approle.roleId,
        secretId: "wrong-secret-id",
        secrets,
      });
      const e = await failure(bad.read("bisman/db"));
      assert.equal(e.reason, "bad_request");
      assert.match(e.userMessage, /log in with AppRole: Vault refused it/);
      assert.ok(!allText(e).includes("wrong-secret-id"));
    });
    assert.ok(!lines.some((l) => l.includes(v.approle.secretId)), "the secret ID is never logged");
  } finally {
    await v.stop();
  }
});

/**
 * Revokes every token the stand-in issued, as an operator revoking the bot's token would. The client keeps
 * its token private, so the stand-in's token table is read here (the root token is never revoked).
 */
function revokeAll(v: VaultStandIn): void {
  const tokens = (v as unknown as { tokens: Map<string, unknown> }).tokens;
  for (const t of [...tokens.keys()]) v.revokeToken(t);
}

Deno.test("Targets reads a connection's vault: path#key password through the client, in the target's mount", async () => {
  await using cluster = await startCluster({ name: "vault-targets" });
  const v = await VaultStandIn.start({ kvMount: "kv" });
  const secrets = new Secrets();
  const c = new VaultClient({ addr: v.addr, token: v.rootToken, secrets });
  try {
    await cluster.primary.sql()`create role ops_login login password 'vault-held-password-1'`;
    v.kvPut("bisman/ops", { password: "vault-held-password-1" });
    const config = testConfig(cluster, (doc) => {
      doc.targets.main.primary.user = "ops_login";
      doc.targets.main.primary.vault = "bisman/ops#password";
      doc.targets.main.vault = { kv_mount: "kv" };
    });
    const targets = new Targets(config, secrets, (ref, mount) => c.readRef(ref, { mount }));
    try {
      const sql = await targets.pool("main");
      const [r] = await sql<{ u: string }[]>`select current_user as u`;
      assert.equal(r.u, "ops_login");
      assert.ok(secrets.leaks("vault-held-password-1"), "the password was registered as a secret");
      assert.ok(v.calls.some((x) => x.path === "/v1/kv/data/bisman/ops"));
    } finally {
      await targets.close();
    }
  } finally {
    await v.stop();
  }
});
