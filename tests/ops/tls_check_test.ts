import assert from "node:assert/strict";
import postgres from "postgres";
import { startCluster } from "../../standins/cluster.ts";
import { createBismanDatabase, setTestPassword } from "../support/bisman_schema.ts";
import { testOpDeps } from "../support/op_deps.ts";
import { testConfig } from "../support/bot.ts";
import { enableTls, seedHba, writeHba } from "../../standins/tls.ts";
import { checkTls, type TlsCheckResult } from "../../ops/tls_check.ts";

const status = (r: TlsCheckResult) => Object.fromEntries(r.checks.map((c) => [c.check, c.status]));
const check = (r: TlsCheckResult, name: string) => r.checks.find((c) => c.check === name)!;

Deno.test("tls_check flags host lines, trust, a missing final reject and non-TLS sessions, and passes a cluster configured as the seed says", async (t) => {
  await using cluster = await startCluster({ name: "tls", preload: ["pgaudit", "pg_stat_statements"] });
  const { db, sql } = await createBismanDatabase(cluster);
  const cleanups: (() => Promise<void>)[] = [];
  try {
    await t.step(
      "the harness's cluster (host lines, trust, no TLS) fails every transport check, with the lines named",
      async () => {
        const deps = await testOpDeps(cluster, {
          config: testConfig(cluster, (doc) => (doc.targets.main.primary.database = db)),
        });
        try {
          const r = await checkTls({ target: "main" }, deps);
          assert.equal(r.ok, false);
          assert.deepEqual(status(r), {
            ssl: "critical",
            hba_hostssl: "critical",
            hba_auth: "critical",
            hba_final_reject: "critical",
            non_tls_connections: "critical",
            password_encryption: "ok",
            pgaudit_loaded: "ok",
            pgaudit_roles: "ok",
            pgaudit_settings: "ok",
          });
          const hostLines = check(r, "hba_hostssl").evidence;
          assert.ok(
            hostLines.some((l) =>
              /^line \d+: host all postgres 127\.0\.0\.1\/255\.255\.255\.255 trust$/.test(l)
            ),
            hostLines.join("\n"),
          );
          assert.ok(
            hostLines.some((l) => /host all all 127\.0\.0\.1\/255\.255\.255\.255 scram-sha-256/.test(l)),
          );
          assert.ok(check(r, "hba_auth").evidence.every((l) => / trust$/.test(l)));
          assert.ok(
            check(r, "non_tls_connections").evidence.some((l) =>
              /postgres from 127\.0\.0\.1 .*\(bisman-ops\)/.test(l)
            ),
            "the bot's own plain connection is one of them",
          );
        } finally {
          await deps.close();
        }
      },
    );

    await t.step("pgaudit per role: a role whose pgaudit.log was changed by hand is named", async () => {
      await cluster.primary.psql("alter role bisman_app set pgaudit.log = 'none'");
      const deps = await testOpDeps(cluster, {
        config: testConfig(cluster, (doc) => (doc.targets.main.primary.database = db)),
      });
      try {
        const r = await checkTls({ target: "main" }, deps);
        assert.equal(check(r, "pgaudit_roles").status, "warning");
        assert.deepEqual(check(r, "pgaudit_roles").evidence, [
          "bisman_app: pgaudit.log = none, expected write",
        ]);
      } finally {
        await deps.close();
        await cluster.primary.psql("alter role bisman_app set pgaudit.log = 'write'");
      }
    });

    await t.step(
      "configured as the seed says (ssl on, hostssl + scram-sha-256, final reject), every check passes",
      async () => {
        const certs = await enableTls(cluster);
        await writeHba(cluster, seedHba(["127.0.0.1/32"]));
        // Plain connections opened before the change are still there: close them, as a restart would.
        await sql.end({ timeout: 1 });
        await cluster.primary.psql(
          "select pg_terminate_backend(pid) from pg_stat_activity where client_addr is not null and pid <> pg_backend_pid()",
        );
        Deno.env.set("TLS_TEST_BOT_PW", await setTestPassword(cluster, "bisman_ops"));
        const deps = await testOpDeps(cluster, {
          config: testConfig(cluster, (doc) => {
            doc.targets.main.primary = {
              host: "127.0.0.1",
              port: cluster.primary.port,
              database: db,
              user: "bisman_ops",
              password_env: "TLS_TEST_BOT_PW",
              sslmode: "verify-full",
              ca_file: certs.caFile,
            };
          }),
        });
        try {
          const r = await checkTls({ target: "main" }, deps);
          assert.deepEqual(r.checks.filter((c) => c.status !== "ok"), [], JSON.stringify(r.checks, null, 1));
          assert.equal(r.ok, true);
          assert.match(check(r, "ssl").detail, /ssl = on \(minimum protocol TLSv1\.2\)/);
          assert.match(
            check(r, "hba_final_reject").detail,
            /hostssl all all 0\.0\.0\.0\/0\.0\.0\.0 reject; .*hostssl all all ::\/:: reject/,
          );

          // A plain connection is now refused outright, and a TLS one is accepted.
          const plain = postgres({
            host: "127.0.0.1",
            port: cluster.primary.port,
            database: db,
            username: "bisman_ops",
            password: Deno.env.get("TLS_TEST_BOT_PW"),
            ssl: false,
            max: 1,
            connect_timeout: 5,
            onnotice: () => {},
          });
          try {
            await assert.rejects(plain`select 1`, /no pg_hba\.conf entry|reject/);
          } finally {
            await plain.end({ timeout: 1 });
          }
        } finally {
          await deps.close();
        }
      },
    );

    await t.step("a host line added to the seed's file is flagged again", async () => {
      await writeHba(cluster, [
        ...seedHba(["127.0.0.1/32"]).slice(0, 2),
        "host    bisman bisman_app 10.0.1.0/24 scram-sha-256",
        ...seedHba(["127.0.0.1/32"]).slice(2),
      ]);
      const r = await checkTls({ target: "main" }, await quickDeps());
      assert.equal(check(r, "hba_hostssl").status, "critical");
      assert.deepEqual(check(r, "hba_hostssl").evidence, [
        "line 3: host bisman bisman_app 10.0.1.0/255.255.255.0 scram-sha-256",
      ]);
      assert.equal(check(r, "hba_auth").status, "ok");
    });
  } finally {
    for (const c of cleanups) await c();
  }

  async function quickDeps() {
    const d = await testOpDeps(cluster, {
      config: testConfig(cluster, (doc) => {
        doc.targets.main.primary = {
          host: "127.0.0.1",
          port: cluster.primary.port,
          database: db,
          user: "bisman_ops",
          password_env: "TLS_TEST_BOT_PW",
          sslmode: "require",
        };
      }),
    });
    cleanups.push(() => d.close());
    return d;
  }
});
