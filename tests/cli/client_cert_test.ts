/**
 * A person's client certificate as their CLI credential: the state database's server verifies it against
 * the test CA (`cert` in pg_hba.conf, CN = login), the CLI verifies the server (`sslmode=verify-full`), and
 * the bot runs the command as the certificate's login. Without the certificate, the same login gets nowhere.
 */

import assert from "node:assert/strict";
import { startCluster } from "../../standins/cluster.ts";
import { enableTls } from "../../standins/tls.ts";
import { startTestBot, testConfig, USERS } from "../support/bot.ts";
import { runCli } from "../support/cli_process.ts";

async function openssl(args: string[], cwd: string): Promise<void> {
  const out = await new Deno.Command("openssl", { args, cwd, stdout: "piped", stderr: "piped" }).output();
  if (out.code !== 0) throw new Error(`openssl ${args[0]}: ${new TextDecoder().decode(out.stderr)}`);
}

Deno.test("cli: a client certificate logs the person in, over TLS that verifies the server", async (t) => {
  // Before the cluster's defaults (scram-sha-256 for every other role): alice only with a certificate.
  await using cluster = await startCluster({
    name: "cli-cert",
    hbaExtra: ["hostssl all alice 127.0.0.1/32 cert", "host all alice 127.0.0.1/32 reject"],
  });
  const certs = await enableTls(cluster);
  // The server verifies client certificates against the test CA (ssl_ca_file, in its data directory).
  const caInData = `${cluster.primary.dataDir}/client_ca.crt`;
  await Deno.writeTextFile(caInData, certs.caPem);
  const st = await Deno.stat(cluster.primary.dataDir);
  if (Deno.uid() === 0 && st.uid !== null && st.gid !== null) await Deno.chown(caInData, st.uid, st.gid);
  await cluster.primary.psql("alter system set ssl_ca_file = 'client_ca.crt'");
  await cluster.primary.reload();

  // alice's certificate, CN = her login, signed by the CA; her key readable by her only.
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
  await openssl(["req", ...ec, "-keyout", "alice.key", "-out", "alice.csr", "-subj", "/CN=alice"], certs.dir);
  await openssl(
    [
      "x509",
      "-req",
      "-in",
      "alice.csr",
      "-CA",
      "ca.crt",
      "-CAkey",
      "ca.key",
      "-out",
      "alice.crt",
      "-days",
      "2",
    ],
    certs.dir,
  );
  await Deno.chmod(`${certs.dir}/alice.key`, 0o600);

  const tb = await startTestBot(cluster, {
    config: testConfig(cluster, (d) => {
      d.access.cli_operators = { alice: USERS.alice };
    }),
  });
  await cluster.primary.psql("create role alice login in role bisman_cli");
  const stateDb = new URL(tb.bot.deps.env.databaseUrl).pathname.slice(1);
  const base = `postgres://alice@127.0.0.1:${cluster.primary.port}/${stateDb}?sslmode=verify-full` +
    `&sslrootcert=${certs.caFile}`;
  const home = await Deno.makeTempDir({ prefix: "bisman-cli-cert-" });
  const cli = (url: string, ...args: string[]) => runCli({ HOME: home, BISMAN_CLI_DATABASE_URL: url }, args);
  try {
    await t.step("with her certificate and key, alice's command runs as cli:alice", async () => {
      const r = await cli(`${base}&sslcert=${certs.dir}/alice.crt&sslkey=${certs.dir}/alice.key`, "status");
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /primary PostgreSQL 15/);
      const rows = await tb.bot.deps.audit.rows();
      assert.ok(rows.some((x) => x.action === "command.received" && x.actor === "cli:alice"));
    });

    await t.step("without the certificate the server refuses the login", async () => {
      const r = await cli(base, "status");
      assert.equal(r.code, 3, r.stderr);
      assert.match(r.stderr, /refused the login alice@127\.0\.0\.1/);
    });

    await t.step(
      "a CA that did not sign the server's certificate stops the CLI before it logs in",
      async () => {
        const other = await Deno.makeTempDir({ prefix: "bisman-other-ca-" });
        await openssl([
          "req",
          "-x509",
          ...ec,
          "-keyout",
          "o.key",
          "-out",
          "o.crt",
          "-days",
          "2",
          "-subj",
          "/CN=other",
        ], other);
        const r = await cli(
          `postgres://alice@127.0.0.1:${cluster.primary.port}/${stateDb}?sslmode=verify-full&sslrootcert=${other}/o.crt` +
            `&sslcert=${certs.dir}/alice.crt&sslkey=${certs.dir}/alice.key`,
          "status",
        );
        assert.equal(r.code, 3, r.stderr);
        assert.match(r.stderr, /did not prove who it is \(TLS\): .*certificate/i);
        await Deno.remove(other, { recursive: true });
      },
    );
  } finally {
    await tb.stop();
    await Deno.remove(home, { recursive: true });
  }
});
