import assert from "node:assert/strict";
import postgres from "postgres";
import { startCluster } from "../../standins/cluster.ts";
import { VaultStandIn } from "../../standins/vault.ts";
import { VaultClient } from "../../core/vault.ts";
import { parseConfig } from "../../core/config.ts";
import { NotPermitted } from "../../core/errors.ts";
import { cleartextRefusal, probeAuthMethod } from "../../ops/_auth_probe.ts";
import { tryLogin } from "../../ops/_role_login.ts";
import { rotateCredentials } from "../../ops/rotate_credentials.ts";
import { enableTls } from "../../standins/tls.ts";
import { testConfig } from "../support/bot.ts";
import { testOpDeps } from "../support/op_deps.ts";
import { seedRotatableRoles } from "../support/rotation.ts";

/** A loopback TCP relay that keeps every byte the client sent, to see what crossed the wire. */
function recordingRelay(port: number) {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const sent: Uint8Array[] = [];
  const pump = async (from: Deno.Conn, to: Deno.Conn, keep: boolean) => {
    try {
      for await (const chunk of from.readable) {
        if (keep) sent.push(chunk);
        await to.write(chunk);
      }
    } catch {
      // one side closed
    } finally {
      try {
        to.close();
      } catch {
        // already closed
      }
    }
  };
  (async () => {
    for await (const client of listener) {
      const server = await Deno.connect({ hostname: "127.0.0.1", port });
      void pump(client, server, true);
      void pump(server, client, false);
    }
  })().catch(() => {});
  return {
    port: (listener.addr as Deno.NetAddr).port,
    saw: (text: string) =>
      new TextDecoder().decode(new Uint8Array(sent.flatMap((c) => [...c]))).includes(text),
    close: () => listener.close(),
  };
}

const conn = (port: number, extra: Record<string, unknown> = {}) =>
  parseConfig({
    workspace: { team_id: "T0TEST" },
    slack: { ops_channel: "C0OPS" },
    access: { operators: { users: [] }, approvers: { users: [] } },
    targets: { main: { primary: { host: "127.0.0.1", port, user: "x", sslmode: "disable", ...extra } } },
  }).targets.main.primary;

Deno.test("probeAuthMethod() reads which authentication the server asks for, sending no password", async (t) => {
  await using cluster = await startCluster({
    name: "auth-probe",
    hbaExtra: [
      "host    all  plain_pw   127.0.0.1/32  password",
      "host    all  md5_role   127.0.0.1/32  md5",
      "host    all  refused    127.0.0.1/32  reject",
      "hostssl all  tls_pw     127.0.0.1/32  password",
      "hostssl all  tls_scram  127.0.0.1/32  scram-sha-256",
    ],
  });
  const sql = cluster.primary.sql();
  for (const r of ["plain_pw", "md5_role", "refused", "tls_pw", "tls_scram", "scram_role"]) {
    await sql.unsafe(`create role ${r} login password 'pw-${r}-0123456789'`);
  }
  const plain = conn(cluster.primary.port);

  await t.step("over plain TCP: password, SCRAM, md5 with a SCRAM verifier, trust, reject", async () => {
    assert.deepEqual(await probeAuthMethod(plain, "plain_pw"), {
      ok: true,
      method: "cleartext",
      tls: false,
      code: 3,
    });
    assert.deepEqual(await probeAuthMethod(plain, "scram_role"), {
      ok: true,
      method: "scram",
      tls: false,
      code: 10,
    });
    // md5 in pg_hba.conf with a SCRAM verifier stored: the server asks for SCRAM.
    assert.equal((await probeAuthMethod(plain, "md5_role") as { method: string }).method, "scram");
    assert.equal((await probeAuthMethod(plain, "postgres") as { method: string }).method, "trust");
    const refused = await probeAuthMethod(plain, "refused");
    assert.equal(refused.ok, false);
    assert.match((refused as { detail: string }).detail, /^28000 .*pg_hba\.conf rejects connection/);
    assert.match(
      cleartextRefusal("plain_pw", await probeAuthMethod(plain, "plain_pw"))!,
      /clear text .*without TLS/,
    );
    assert.equal(cleartextRefusal("scram_role", await probeAuthMethod(plain, "scram_role")), undefined);
    const down = await probeAuthMethod(conn(1), "x");
    assert.equal(down.ok, false);
  });

  await t.step("over verified TLS: the same questions, asked inside the encrypted channel", async () => {
    const certs = await enableTls(cluster);
    const verified = conn(cluster.primary.port, { sslmode: "verify-full", ca_file: certs.caFile });
    assert.deepEqual(await probeAuthMethod(verified, "tls_pw"), {
      ok: true,
      method: "cleartext",
      tls: true,
      code: 3,
    });
    assert.deepEqual(await probeAuthMethod(verified, "tls_scram"), {
      ok: true,
      method: "scram",
      tls: true,
      code: 10,
    });
    // A password request inside TLS is still refused: PostgreSQL would receive the plaintext.
    assert.match(
      cleartextRefusal("tls_pw", await probeAuthMethod(verified, "tls_pw"))!,
      /clear text \(pg_hba\.conf method "password"\)/,
    );
    // verify-full with a CA file that does not hold the signing CA: no TLS, so no request is read at all.
    const other = await Deno.makeTempFile();
    await Deno.writeTextFile(
      other,
      (await Deno.readTextFile(certs.caFile)).replace(/[A-Za-z]{8}/, "AAAAAAAA"),
    );
    assert.equal(
      (await probeAuthMethod(
        conn(cluster.primary.port, { sslmode: "verify-full", ca_file: other }),
        "tls_scram",
      )).ok,
      false,
    );
  });

  await t.step(
    "tryLogin() never sends a password the server asks for in clear; a plain client would",
    async () => {
      const relay = recordingRelay(cluster.primary.port);
      try {
        const via = { target: "main", name: "primary", role: "primary" as const, conn: conn(relay.port) };
        const r = await tryLogin(via, "plain_pw", "pw-plain_pw-0123456789");
        assert.equal(r.ok, false);
        assert.match((r as { detail: string }).detail, /^not tried: .*clear text/);
        assert.equal(relay.saw("pw-plain_pw-0123456789"), false, "the password did not cross the wire");
        // The control: postgres.js answers the server's request for a clear-text password at once.
        const naive = postgres({
          host: "127.0.0.1",
          port: relay.port,
          database: "postgres",
          username: "plain_pw",
          password: "pw-plain_pw-0123456789",
          max: 1,
          onnotice: () => {},
        });
        await naive`select 1`;
        await naive.end();
        assert.equal(
          relay.saw("pw-plain_pw-0123456789"),
          true,
          "a client without the probe sent it in clear",
        );
        // And a SCRAM login through the probe still logs in.
        assert.deepEqual(await tryLogin(via, "scram_role", "pw-scram_role-0123456789"), { ok: true });
      } finally {
        relay.close();
      }
    },
  );
});

Deno.test("a rotation is refused where pg_hba.conf would have the new password sent in clear: nothing changes", async () => {
  await using cluster = await startCluster({
    name: "rotate-cleartext",
    hbaExtra: ["host all clear_app 127.0.0.1/32 password"],
  });
  const vault = await VaultStandIn.start();
  try {
    const roles = await seedRotatableRoles(cluster, vault, "bisman/db", {
      clear_app: { key: "clear_password", password: "clear-app-old-0123456789" },
    });
    const config = testConfig(cluster, (doc) => {
      doc.targets.main.roles = roles;
    });
    const deps = await testOpDeps(cluster, { config, migrate: true });
    deps.vault = new VaultClient({ addr: vault.addr, token: vault.rootToken, secrets: deps.secrets });
    try {
      const versionBefore = vault.kvGet("bisman/db")!.version;
      await assert.rejects(
        rotateCredentials.plan({ role: "clear_app" }, deps),
        (err) =>
          err instanceof NotPermitted &&
          /Cannot rotate clear_app on main: the server asks for clear_app's password in clear text/.test(
            err.userMessage,
          ),
      );
      assert.equal(vault.kvGet("bisman/db")!.version, versionBefore, "Vault untouched");
      // The old password still logs in (over the `password` method: this test's own client sends it).
      const old = postgres({
        host: "127.0.0.1",
        port: cluster.primary.port,
        database: "postgres",
        username: "clear_app",
        password: "clear-app-old-0123456789",
        max: 1,
      });
      await old`select 1`;
      await old.end();
    } finally {
      await deps.close();
    }
  } finally {
    await vault.stop();
  }
});
