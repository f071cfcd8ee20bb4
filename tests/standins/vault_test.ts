import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import vault from "node-vault";
import postgres from "postgres";
import { VaultStandIn } from "../../standins/vault.ts";

/** Admin connection to the machine's PostgreSQL (trust auth, superuser postgres). */
const PG_ADMIN_URL = Deno.env.get("STANDIN_PG_ADMIN_URL") ?? "postgres://postgres@127.0.0.1:5432/postgres";

type VaultErr = Error & { response?: { statusCode: number; body: unknown } };

async function rejection(p: Promise<unknown>): Promise<VaultErr> {
  try {
    await p;
  } catch (e) {
    return e as VaultErr;
  }
  assert.fail("expected the call to be rejected");
}

Deno.test("Vault stand-in with node-vault", async (t) => {
  const v = await VaultStandIn.start();
  try {
    const root = () => vault({ apiVersion: "v1", endpoint: v.addr, token: v.rootToken });

    await t.step("health() reports an active, unsealed Vault", async () => {
      const h = await vault({ apiVersion: "v1", endpoint: v.addr }).health();
      assert.equal(h.initialized, true);
      assert.equal(h.sealed, false);
      assert.equal(h.standby, false);
      assert.equal(h.version, "1.15.0-standin");
      assert.equal(v.calls.at(-1)?.status, 200);
    });

    await t.step("KV v2 write/read with versions, as the bot does through node-vault", async () => {
      const c = root();
      const w1 = await c.write("secret/data/bisman/db", { data: { username: "bisman", password: "one" } });
      assert.equal(w1.data.version, 1);
      assert.equal(w1.data.destroyed, false);
      assert.equal(w1.data.deletion_time, "");
      const w2 = await c.write("secret/data/bisman/db", {
        data: { username: "bisman", password: "two" },
        options: { cas: 1 },
      });
      assert.equal(w2.data.version, 2);

      const latest = await c.read("secret/data/bisman/db");
      assert.deepEqual(latest.data.data, { username: "bisman", password: "two" });
      assert.equal(latest.data.metadata.version, 2);
      assert.match(latest.data.metadata.created_time, /^\d{4}-\d\d-\d\dT/);
      const first = await c.read("secret/data/bisman/db?version=1");
      assert.equal(first.data.data.password, "one");
      assert.equal(first.data.metadata.version, 1);

      // Test-side access sees the same store.
      assert.equal(v.kvVersions("bisman/db"), 2);
      assert.equal(v.kvGet("bisman/db")?.data.password, "two");
      assert.equal(v.kvGet("bisman/db", 1)?.data.password, "one");
      assert.equal(v.kvPut("bisman/db", { username: "bisman", password: "three" }), 3);
      assert.equal((await c.read("secret/data/bisman/db")).data.data.password, "three");

      const absent = await rejection(c.read("secret/data/bisman/nothing"));
      assert.equal(absent.response?.statusCode, 404);
      assert.deepEqual(absent.response?.body, { errors: [] });
    });

    await t.step("a CAS conflict surfaces as an error carrying Vault's message", async () => {
      const e = await rejection(
        root().write("secret/data/bisman/db", { data: { password: "x" }, options: { cas: 1 } }),
      );
      assert.match(e.message, /check-and-set parameter did not match the current version/);
      assert.equal(e.response?.statusCode, 400);
      assert.equal(v.kvVersions("bisman/db"), 3, "nothing written");
      // cas 0 means "only if absent"
      const created = await root().write("secret/data/bisman/fresh", {
        data: { a: "1" },
        options: { cas: 0 },
      });
      assert.equal(created.data.version, 1);
      const again = await rejection(
        root().write("secret/data/bisman/fresh", { data: { a: "2" }, options: { cas: 0 } }),
      );
      assert.equal(again.response?.statusCode, 400);
    });

    await t.step("metadata lists every version; setCreatedTime ages one", async () => {
      v.setCreatedTime("bisman/db", 1, "2024-01-02T03:04:05Z");
      const m = await root().read("secret/metadata/bisman/db");
      assert.equal(m.data.current_version, 3);
      assert.equal(m.data.oldest_version, 0);
      assert.equal(m.data.max_versions, 0);
      assert.deepEqual(Object.keys(m.data.versions), ["1", "2", "3"]);
      assert.deepEqual(m.data.versions["1"], {
        created_time: "2024-01-02T03:04:05.000Z",
        deletion_time: "",
        destroyed: false,
      });
      assert.equal(m.data.created_time, "2024-01-02T03:04:05.000Z");
      assert.equal(
        (await root().read("secret/data/bisman/db?version=1")).data.metadata.created_time,
        "2024-01-02T03:04:05.000Z",
      );
      assert.equal(v.kvGet("bisman/db", 1)?.created_time, "2024-01-02T03:04:05.000Z");
    });

    await t.step("wrong or missing token → 403 permission denied", async () => {
      const wrong = await rejection(
        vault({ apiVersion: "v1", endpoint: v.addr, token: "hvs.nope" }).read("secret/data/bisman/db"),
      );
      assert.equal(wrong.message, "permission denied");
      assert.equal(wrong.response?.statusCode, 403);
      const none = await rejection(
        vault({ apiVersion: "v1", endpoint: v.addr }).read("secret/data/bisman/db"),
      );
      assert.equal(none.response?.statusCode, 403);
    });

    await t.step("sealed → 503 errors; health() still answers, with sealed:true", async () => {
      v.seal();
      try {
        const e = await rejection(root().read("secret/data/bisman/db"));
        assert.equal(e.message, "Vault is sealed");
        assert.equal(e.response?.statusCode, 503);
        const login = await rejection(
          vault({ apiVersion: "v1", endpoint: v.addr }).approleLogin({ role_id: "a", secret_id: "b" }),
        );
        assert.equal(login.response?.statusCode, 503);
        const h = await root().health();
        assert.equal(h.sealed, true);
        assert.equal(v.calls.at(-1)?.status, 503);
        await root().health({ sealedcode: 200 });
        assert.equal(v.calls.at(-1)?.status, 200);
      } finally {
        v.unseal();
      }
      assert.equal((await root().read("secret/data/bisman/db")).data.metadata.version, 3);
    });

    await t.step("AppRole login via approleLogin, then reads work with the issued token", async () => {
      const c = vault({ apiVersion: "v1", endpoint: v.addr });
      const bad = await rejection(c.approleLogin({ role_id: v.approle.roleId, secret_id: "wrong" }));
      assert.equal(bad.message, "invalid role or secret ID");
      assert.equal(bad.response?.statusCode, 400);
      const badRole = await rejection(c.approleLogin({ role_id: "nope", secret_id: v.approle.secretId }));
      assert.equal(badRole.message, "invalid role or secret ID");

      const res = await c.approleLogin({ role_id: v.approle.roleId, secret_id: v.approle.secretId });
      assert.match(res.auth.client_token, /^hvs\./);
      assert.equal(res.auth.lease_duration, 3600);
      assert.equal(res.auth.renewable, true);
      assert.ok(res.auth.policies.includes("bisman-ops"));
      assert.equal(c.token, res.auth.client_token, "node-vault adopts the token (tokenSource)");
      assert.equal((await c.read("secret/data/bisman/db")).data.data.password, "three");
      const self = await c.tokenLookupSelf();
      assert.equal(self.data.path, "auth/approle/login");
      assert.ok(self.data.ttl > 3500);

      v.revokeToken(res.auth.client_token);
      assert.equal((await rejection(c.read("secret/data/bisman/db"))).response?.statusCode, 403);
    });

    await t.step("issued tokens expire after their TTL and can be renewed", async () => {
      const short = await VaultStandIn.start({ tokenTtlSeconds: 1 });
      try {
        const c = vault({ apiVersion: "v1", endpoint: short.addr });
        await c.approleLogin({ role_id: short.approle.roleId, secret_id: short.approle.secretId });
        const renewed = await c.tokenRenewSelf();
        assert.equal(renewed.auth.lease_duration, 1);
        await new Promise((r) => setTimeout(r, 1100));
        const e = await rejection(c.read("secret/data/anything"));
        assert.equal(e.response?.statusCode, 403);
      } finally {
        await short.stop();
      }
    });

    await t.step("node-vault's requestOptions.timeout bounds a hung Vault", async () => {
      v.delayNext("secret/data/bisman/db", 500);
      const c = vault({
        apiVersion: "v1",
        endpoint: v.addr,
        token: v.rootToken,
        requestOptions: { timeout: 100 },
      });
      const e = await rejection(c.read("secret/data/bisman/db")) as VaultErr & { code?: string };
      assert.equal(e.code, "ECONNABORTED");
      assert.match(e.message, /timeout of 100ms exceeded/);
      const abandoned = v.calls.at(-1)!;
      const deadline = Date.now() + 2000;
      while (abandoned.status === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      assert.equal(abandoned.status, 200, "the stand-in still answers the abandoned request");
    });

    await t.step("failNext injects a status for a path prefix", async () => {
      v.failNext("secret/data/bisman/db", 500);
      const e = await rejection(root().read("secret/data/bisman/db"));
      assert.equal(e.response?.statusCode, 500);
      assert.equal((await root().read("secret/data/bisman/db")).data.metadata.version, 3);
    });

    await t.step("calls record method, path and status but no bodies", () => {
      const kvWrites = v.calls.filter((c) => c.method === "POST" && c.path === "/v1/secret/data/bisman/db");
      assert.deepEqual(kvWrites.map((c) => c.status), [200, 200, 400]);
      assert.ok(v.calls.some((c) => c.path === "/v1/secret/data/bisman/db?version=1"));
      const recorded = JSON.stringify(v.calls);
      for (const secret of ["one", "two", v.approle.secretId]) {
        assert.ok(!recorded.includes(`"${secret}"`) && !recorded.includes(secret + '"'), `no ${secret}`);
      }
      assert.deepEqual(Object.keys(v.calls[0]).sort(), ["at", "method", "path", "status"]);
    });

    await t.step("unknown paths → 404 {errors: []}", async () => {
      const e = await rejection(root().read("sys/mounts/whatever"));
      assert.equal(e.response?.statusCode, 404);
      assert.deepEqual(e.response?.body, { errors: [] });
    });

    await t.step(
      "database creds: an unknown role is 400, a role the connection does not allow is 500",
      async () => {
        const c = root();
        const unknown = await rejection(c.read("database/creds/nope"));
        assert.equal(unknown.response?.statusCode, 400);
        assert.deepEqual(unknown.response?.body, { errors: ["unknown role: nope"] });
        v.configureDatabase("creds-conn", {
          connectionUrl: "postgres://127.0.0.1:1/postgres",
          username: "u",
          password: "Never-Shown-Creds-1",
        });
        v.configureDatabaseRole("not-allowed", { dbName: "creds-conn", creationStatements: ["SELECT 1"] });
        const refused = await rejection(c.read("database/creds/not-allowed"));
        assert.equal(refused.response?.statusCode, 500);
        assert.match(refused.message, /"not-allowed" is not an allowed role/);
        // Revoking a lease that is already gone is not an error: revocation is idempotent.
        await c.write("sys/leases/revoke", { lease_id: "database/creds/x/gone" });
        assert.equal(v.calls.at(-1)?.status, 204);
      },
    );

    await t.step("database rotate-root really changes the PostgreSQL password", async () => {
      const admin = postgres(PG_ADMIN_URL, { max: 1, onnotice: () => {} });
      // A name that needs identifier quoting: upper case, a space and a double quote.
      const role = `Bisman Rot "${randomBytes(4).toString("hex")}"`;
      const stuck = `bisman_ro_${randomBytes(4).toString("hex")}`;
      const initial = `Init-${randomBytes(8).toString("hex")}`;
      try {
        await admin`CREATE ROLE ${admin(role)} LOGIN PASSWORD ${admin.unsafe(`'${initial}'`)}`;
        const before = await admin`SELECT rolpassword FROM pg_authid WHERE rolname = ${role}`;
        assert.match(String(before[0].rolpassword), /^SCRAM-SHA-256\$/);

        v.configureDatabase("bisman-pg", {
          connectionUrl: "postgresql://{{username}}:{{password}}@127.0.0.1:5432/postgres",
          username: role,
          password: initial,
        });
        const c = root();
        const rotated = await c.write("database/rotate-root/bisman-pg", {});
        assert.equal(rotated, "", "node-vault resolves a 204 with an empty body");
        assert.equal(v.calls.at(-1)?.status, 204);
        const after = await admin`SELECT rolpassword FROM pg_authid WHERE rolname = ${role}`;
        assert.match(String(after[0].rolpassword), /^SCRAM-SHA-256\$/);
        assert.notEqual(after[0].rolpassword, before[0].rolpassword);
        const pw = v.databasePassword("bisman-pg")!;
        assert.notEqual(pw, initial);
        assert.match(pw, /^[A-Za-z0-9-]{20}$/);
        assert.match(pw, /[a-z]/);
        assert.match(pw, /[A-Z]/);
        assert.match(pw, /[0-9]/);
        assert.match(pw, /-/);

        // A second rotation connects with the password Vault now holds.
        await c.write("database/rotate-root/bisman-pg", {});
        const third = await admin`SELECT rolpassword FROM pg_authid WHERE rolname = ${role}`;
        assert.notEqual(third[0].rolpassword, after[0].rolpassword);
        assert.notEqual(v.databasePassword("bisman-pg"), pw);

        // Unknown connection: Vault's internal-error shape.
        const unknown = await rejection(c.write("database/rotate-root/nope", {}));
        assert.equal(unknown.response?.statusCode, 500);
        assert.match(unknown.message, /failed to find entry for connection with name: "nope"/);

        // ALTER ROLE refused (read-only transactions for this role): 500, password kept, never leaked.
        await admin`CREATE ROLE ${admin(stuck)} LOGIN`;
        await admin`ALTER ROLE ${admin(stuck)} SET default_transaction_read_only = on`;
        const stuckPw = `Stuck-${randomBytes(8).toString("hex")}`;
        v.configureDatabase("stuck", {
          connectionUrl: "postgres://127.0.0.1:5432/postgres",
          username: stuck,
          password: stuckPw,
        });
        const refused = await rejection(c.write("database/rotate-root/stuck", {}));
        assert.equal(refused.response?.statusCode, 500);
        assert.match(
          refused.message,
          /failed to update user: cannot execute ALTER ROLE in a read-only transaction/,
        );
        assert.ok(!refused.message.includes(stuckPw));
        assert.equal(v.databasePassword("stuck"), stuckPw);
        const leaked = JSON.stringify(refused.response?.body);
        assert.doesNotMatch(leaked, /PASSWORD '/);

        // Cannot connect at all: still a 500 without the password.
        v.configureDatabase("gone", {
          connectionUrl: "postgresql://{{username}}:{{password}}@127.0.0.1:5432/postgres",
          username: `no_such_role_${randomBytes(4).toString("hex")}`,
          password: "Secret-Never-Shown-1",
        });
        const gone = await rejection(c.write("database/rotate-root/gone", {}));
        assert.equal(gone.response?.statusCode, 500);
        assert.match(gone.message, /error verifying connection/);
        assert.ok(!gone.message.includes("Secret-Never-Shown-1"));
      } finally {
        await admin`DROP ROLE IF EXISTS ${admin(role)}`;
        await admin`DROP ROLE IF EXISTS ${admin(stuck)}`;
        await admin.end({ timeout: 5 });
      }
    });
  } finally {
    await v.stop();
  }
});
