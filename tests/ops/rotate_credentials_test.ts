import assert from "node:assert/strict";
import postgres from "postgres";
import { startCluster, type TestCluster } from "../../standins/cluster.ts";
import { startTestBot, testConfig, USERS } from "../support/bot.ts";
import { type TestOpDeps, testOpDeps } from "../support/op_deps.ts";
import { ask } from "../support/gate.ts";
import { waitFor } from "../../standins/wait.ts";
import { login, type RotatableRole, seedRotatableRoles } from "../support/rotation.ts";
import { VaultStandIn } from "../../standins/vault.ts";
import { serveLoopback } from "../../standins/http.ts";
import { VaultClient } from "../../core/vault.ts";
import { OpsError } from "../../core/errors.ts";
import { ACTIONS } from "../../views/actions.ts";
import {
  type RotateArgs,
  rotateArgs,
  rotateCredentials as op,
  type RotatePlan,
  type RotateResult,
  RotationIncomplete,
} from "../../ops/rotate_credentials.ts";

/**
 * A pass-through proxy in front of the Vault stand-in that can hold the next KV write until the test
 * releases it, so a test can act at the exact moment between `ALTER ROLE` and the Vault write (seal
 * Vault, inject a 500, write concurrently, cut the transaction's connection). Vault semantics stay the
 * stand-in's: the proxy only delays.
 */
class HoldingProxy {
  #holds: { prefix: string; nth: number; arrived: () => void; released: Promise<void> }[] = [];
  #writes = new Map<string, number>();
  private constructor(readonly url: string, readonly close: () => Promise<void>) {}

  static async start(upstream: string): Promise<HoldingProxy> {
    const ref: { p?: HoldingProxy } = {};
    const server = await serveLoopback(async (req) => {
      const u = new URL(req.url);
      await ref.p!.#maybeHold(req.method, u.pathname);
      const body = req.method === "GET" || req.method === "HEAD" ? undefined : await req.arrayBuffer();
      const res = await fetch(`${upstream}${u.pathname}${u.search}`, {
        method: req.method,
        headers: req.headers,
        body,
      });
      return new Response(await res.arrayBuffer(), { status: res.status, headers: res.headers });
    });
    ref.p = new HoldingProxy(server.url, () => server.close());
    return ref.p;
  }

  async #maybeHold(method: string, path: string): Promise<void> {
    if (method !== "POST" && method !== "PUT") return;
    for (const h of this.#holds) {
      if (!path.startsWith(h.prefix)) continue;
      const n = (this.#writes.get(h.prefix) ?? 0) + 1;
      this.#writes.set(h.prefix, n);
      if (n !== h.nth) return;
      this.#holds.splice(this.#holds.indexOf(h), 1);
      h.arrived();
      await h.released;
      return;
    }
  }

  /** Holds the `nth` write (POST/PUT) under `/v1/<prefix>` from now on; `arrived` resolves when it is held. */
  hold(prefix: string, nth = 1): { arrived: Promise<void>; release: () => void } {
    let arrived!: () => void;
    let release!: () => void;
    const a = new Promise<void>((r) => (arrived = r));
    const released = new Promise<void>((r) => (release = r));
    const full = `/v1/${prefix}`;
    this.#writes.set(full, 0);
    this.#holds.push({ prefix: full, nth, arrived, released });
    return { arrived: a, release };
  }
}

/** The ALTER ROLE a rotation holds open in its transaction, as pg_stat_activity shows it. */
async function openAlter(cluster: TestCluster, role: string) {
  return await waitFor(async () => {
    const rows = await cluster.primary.sql()<{ pid: number; query: string }[]>`
      select pid, query from pg_stat_activity
       where application_name = 'bisman-ops' and state = 'idle in transaction' and query ilike 'alter role%'`;
    return rows.find((r) => r.query.includes(`"${role}"`));
  }, { what: `an open transaction with ALTER ROLE ${role}` });
}

interface Env {
  cluster: TestCluster;
  vault: VaultStandIn;
  proxy: HoldingProxy;
}

/**
 * Creates `roles` with their old passwords, puts them in Vault at `path` (plus an unrelated key that must
 * survive every rotation), and builds OpDeps whose config maps them.
 */
async function setup(
  env: Env,
  path: string,
  roles: Record<string, RotatableRole>,
): Promise<TestOpDeps> {
  const mapped = await seedRotatableRoles(env.cluster, env.vault, path, roles, {
    unrelated: "keep-this-value",
  });
  const config = testConfig(env.cluster, (doc) => {
    doc.targets.main.roles = mapped;
  });
  const deps = await testOpDeps(env.cluster, { config, migrate: true });
  deps.vault = new VaultClient({ addr: env.proxy.url, token: env.vault.rootToken, secrets: deps.secrets });
  deps.actor = USERS.alice;
  return deps;
}

async function planFor(deps: TestOpDeps, args: RotateArgs): Promise<RotatePlan> {
  return await op.plan(rotateArgs.parse(args), deps);
}

/** Runs a plan that is expected not to complete; returns the per-role result the error carries. */
async function runIncomplete(
  p: RotatePlan,
  deps: TestOpDeps,
): Promise<{ err: RotationIncomplete; result: RotateResult }> {
  try {
    await op.run(p, deps);
  } catch (e) {
    assert.ok(e instanceof RotationIncomplete, `expected RotationIncomplete, got ${e}`);
    return { err: e, result: e.result };
  }
  assert.fail("expected the rotation to be incomplete");
}

/** Nothing the bot wrote (log lines, audit rows) contains any of `secrets`. */
async function assertNoLeak(deps: TestOpDeps, secrets: string[], extra: string[] = []) {
  const audit = JSON.stringify(await deps.audit.rows());
  for (const s of secrets) {
    assert.ok(!audit.includes(s), "audit log holds a password");
    assert.ok(!deps.logs.some((l) => l.includes(s)), "a log line holds a password");
    for (const e of extra) assert.ok(!e.includes(s), "a message holds a password");
  }
}

const prefix = "secret/data/";

Deno.test("rotate credentials on a real cluster and the Vault stand-in", async (t) => {
  await using cluster = await startCluster({ name: "rotate", replica: true, conf: { log_statement: "all" } });
  const vault = await VaultStandIn.start();
  const proxy = await HoldingProxy.start(vault.addr);
  const env: Env = { cluster, vault, proxy };
  const open: postgres.Sql[] = [];
  try {
    await t.step(
      "plan() names the Vault path, key and version, and the role's sessions by application on each server",
      async (t1) => {
        const deps = await setup(env, "p1/db", {
          p1_app: { key: "app_password", password: "old-p1-app-pw" },
        });
        try {
          await cluster.waitForReplay();
          const session = (port: number, app: string) => {
            const s = postgres({
              host: "127.0.0.1",
              port,
              database: "postgres",
              username: "p1_app",
              password: "old-p1-app-pw",
              max: 1,
              idle_timeout: 0,
              onnotice: () => {},
              connection: { application_name: app },
            });
            open.push(s);
            return s;
          };
          const web1 = session(cluster.primary.port, "web-frontend");
          const web2 = session(cluster.primary.port, "web-frontend");
          const reports = session(cluster.replica!.port, "reports");
          await Promise.all([web1`select 1`, web2`select 1`, reports`select 1`]);

          const p = await planFor(deps, { role: "p1_app" });
          assert.equal(p.roles.length, 1);
          const r = p.roles[0];
          assert.equal(r.ref, "secret/p1/db#app_password");
          assert.equal(r.vaultVersion, 1);
          assert.deepEqual(r.sessions, [
            { member: "primary", application: "web-frontend", client: "127.0.0.1", count: 2 },
            { member: "replica1", application: "reports", client: "127.0.0.1", count: 1 },
          ]);
          assert.match(p.summary, /p1_app on main \(Vault secret\/p1\/db#app_password, version 1\)/);
          assert.ok(
            p.warnings?.some((w) =>
              /3 open sessions .*web-frontend.*×2.*reports.*must then read the new password from Vault/.test(
                w,
              )
            ),
          );
          assert.deepEqual(p.fingerprint.vault, { "secret/p1/db": 1 });
          assert.equal(p.fingerprint.roles.p1_app.canLogin, true);
          assert.match(p.fingerprint.roles.p1_app.verifierDigest ?? "", /^[0-9a-f]{16}$/);
          const text = JSON.stringify(p);
          assert.ok(!text.includes("SCRAM-SHA-256$"), "the plan never holds a verifier");
          assert.ok(!text.includes("old-p1-app-pw"));

          await t1.step("revalidate() notices a concurrent change in Vault or PostgreSQL", async () => {
            assert.equal(await op.revalidate!(p, deps), undefined);
            vault.kvPut("p1/db", { app_password: "old-p1-app-pw", unrelated: "keep-this-value" });
            assert.match(
              (await op.revalidate!(p, deps))!,
              /Vault secret\/p1\/db is at version 2, the plan read 1/,
            );
            await cluster.primary.sql()`alter role p1_app password 'someone-else-set-this'`;
            assert.match((await op.revalidate!(p, deps))!, /password of p1_app was changed in PostgreSQL/);
            await cluster.primary.sql()`alter role p1_app password 'old-p1-app-pw'`;
          });

          await t1.step(
            "run() rotates; the result lists the sessions still open on the old password",
            async () => {
              const fresh = await planFor(deps, { role: "p1_app" });
              await reports.end();
              const result = await op.run(fresh, deps);
              const o = result.roles[0];
              assert.equal(o.status, "rotated");
              assert.equal(o.fromVersion, 2);
              assert.equal(o.toVersion, 3);
              assert.equal(o.verified, true);
              assert.deepEqual(o.stillOnOldPassword, [
                { member: "primary", application: "web-frontend", client: "127.0.0.1", count: 2 },
              ]);
              assert.match(
                op.describeResult!(result),
                /still on the old password: primary: web-frontend from 127\.0\.0\.1 ×2/,
              );
              const now = vault.kvGet("p1/db")!;
              assert.equal(now.version, 3);
              assert.equal(
                now.data.unrelated,
                "keep-this-value",
                "the secret's other keys keep their values",
              );
              assert.match(now.data.app_password, /^[A-Za-z0-9+/]{43}=$/);
              assert.equal(await login(cluster, "p1_app", now.data.app_password), true);
              assert.equal(await login(cluster, "p1_app", "old-p1-app-pw"), "28P01");
              await cluster.waitForReplay();
              assert.equal(
                await login(cluster, "p1_app", now.data.app_password, cluster.replica!.port),
                true,
              );
              const [still] = await web1<{ n: number }[]>`select 1 as n`;
              assert.equal(still.n, 1, "open sessions keep working");
              const logs = (await cluster.primary.readLog()) + (await cluster.replica!.readLog());
              assert.ok(!logs.includes(now.data.app_password), "the server log never holds the new password");
              assert.ok(logs.includes("SCRAM-SHA-256$4096:"), "it holds the verifier the bot sent");
              await assertNoLeak(deps, [now.data.app_password], [JSON.stringify(result)]);
              const audited = (await deps.audit.rows()).filter((x) => x.action === "credential.rotated");
              assert.equal(audited.length, 1);
              assert.deepEqual(
                [audited[0].details.role, audited[0].details.from_version, audited[0].details.to_version],
                ["p1_app", 2, 3],
              );
            },
          );
        } finally {
          await Promise.all(open.map((s) => s.end({ timeout: 1 })));
          await deps.close();
        }
      },
    );

    for (const failure of ["500", "sealed"] as const) {
      await t.step(
        `Vault failing on the write (${failure}) rolls back: the old password works and Vault is unchanged`,
        async () => {
          const role = `f_${failure}`;
          const deps = await setup(env, `${role}/db`, { [role]: { key: "pw", password: `old-${role}-pw` } });
          try {
            const p = await planFor(deps, { role });
            const held = proxy.hold(`${prefix}${role}/db`);
            const running = runIncomplete(p, deps);
            await held.arrived;
            const alter = await openAlter(cluster, role);
            assert.ok(alter.query.includes("SCRAM-SHA-256$4096:"), "PostgreSQL sees only the verifier");
            if (failure === "500") vault.failNext(`${prefix}${role}/db`, 500);
            else vault.seal();
            held.release();
            const { err, result } = await running;
            vault.unseal();
            assert.equal(result.roles[0].status, "failed");
            assert.equal(result.roles[0].step, "write Vault");
            assert.match(err.userMessage, failure === "500" ? /HTTP 500/ : /is sealed: unseal it/);
            assert.match(err.userMessage, /Rolled back: the old password still works and Vault is unchanged/);
            assert.equal(await login(cluster, role, `old-${role}-pw`), true);
            assert.equal(vault.kvVersions(`${role}/db`), 1);
            assert.equal(vault.kvGet(`${role}/db`)!.data.pw, `old-${role}-pw`);
          } finally {
            vault.unseal();
            await deps.close();
          }
        },
      );
    }

    await t.step(
      "a check-and-set conflict stops the rotation with a clear message and overwrites nothing",
      async () => {
        const deps = await setup(env, "cas/db", {
          cas_a: { key: "a_pw", password: "old-cas-a-pw" },
          cas_b: { key: "b_pw", password: "old-cas-b-pw" },
        });
        try {
          const p = await planFor(deps, { role: "all" });
          const held = proxy.hold(`${prefix}cas/db`);
          const running = runIncomplete(p, deps);
          await held.arrived;
          // Another writer gets in between the plan's read and the bot's write.
          vault.kvPut("cas/db", { a_pw: "old-cas-a-pw", b_pw: "old-cas-b-pw", unrelated: "theirs" });
          held.release();
          const { err, result } = await running;
          assert.deepEqual(result.roles.map((r) => r.status), ["failed", "skipped"]);
          assert.match(
            err.userMessage,
            /cas_a: NOT rotated at step "write Vault": .*someone else wrote a newer version/,
          );
          assert.match(
            err.userMessage,
            /cas_b: not rotated \(not attempted: the rotation stopped at cas_a\)/,
          );
          assert.equal(vault.kvVersions("cas/db"), 2);
          assert.equal(vault.kvGet("cas/db")!.data.unrelated, "theirs", "the other writer's version stands");
          assert.equal(await login(cluster, "cas_a", "old-cas-a-pw"), true);
          assert.equal(await login(cluster, "cas_b", "old-cas-b-pw"), true);
        } finally {
          await deps.close();
        }
      },
    );

    await t.step("COMMIT failing after the Vault write restores the previous Vault version", async () => {
      const deps = await setup(env, "commit/db", { commit_r: { key: "pw", password: "old-commit-pw" } });
      try {
        const p = await planFor(deps, { role: "commit_r" });
        const held = proxy.hold(`${prefix}commit/db`);
        const running = runIncomplete(p, deps);
        await held.arrived;
        const alter = await openAlter(cluster, "commit_r");
        // The transaction's connection dies while Vault is being written: COMMIT cannot succeed.
        await cluster.primary.sql()`select pg_terminate_backend(${alter.pid})`;
        held.release();
        const { result } = await running;
        const o = result.roles[0];
        assert.equal(o.status, "failed");
        assert.equal(o.step, "COMMIT");
        assert.match(o.message!, /written back as version 3: the old password still works/);
        assert.equal(vault.kvVersions("commit/db"), 3);
        assert.deepEqual(vault.kvGet("commit/db")!.data, vault.kvGet("commit/db", 1)!.data);
        assert.equal(await login(cluster, "commit_r", "old-commit-pw"), true);
        assert.notEqual(await login(cluster, "commit_r", vault.kvGet("commit/db", 2)!.data.pw), true);
      } finally {
        await deps.close();
      }
    });

    await t.step(
      "rotate all with one role failing in the middle reports which rotated and which did not",
      async (t1) => {
        const deps = await setup(env, "all/db", {
          all_1: { key: "one", password: "old-all-1-pw" },
          all_2: { key: "two", password: "old-all-2-pw" },
          all_3: { key: "three", password: "old-all-3-pw" },
        });
        try {
          const p = await planFor(deps, { role: "all" });
          assert.deepEqual(p.roles.map((r) => r.role), ["all_1", "all_2", "all_3"]);
          const held = proxy.hold(`${prefix}all/db`, 2);
          const running = runIncomplete(p, deps);
          await held.arrived;
          vault.failNext(`${prefix}all/db`, 500);
          held.release();
          const { err, result } = await running;
          assert.deepEqual(result.roles.map((r) => [r.role, r.status]), [
            ["all_1", "rotated"],
            ["all_2", "failed"],
            ["all_3", "skipped"],
          ]);
          assert.match(
            err.userMessage,
            /all_1: rotated \(secret\/all\/db#one v1→v2, verified: the new password logs in, the old one is refused/,
          );
          assert.match(err.userMessage, /all_2: NOT rotated at step "write Vault"/);
          const now = vault.kvGet("all/db")!;
          assert.equal(now.version, 2);
          for (const [role, key] of [["all_1", "one"], ["all_2", "two"], ["all_3", "three"]]) {
            assert.equal(
              await login(cluster, role, now.data[key]),
              true,
              `${role} logs in with Vault's password`,
            );
          }
          assert.equal(await login(cluster, "all_1", "old-all-1-pw"), "28P01");

          await t1.step("a second rotate all, without faults, rotates every role one by one", async () => {
            const again = await op.run(await planFor(deps, { role: "all" }), deps);
            assert.deepEqual(again.roles.map((r) => [r.status, r.fromVersion, r.toVersion]), [
              ["rotated", 2, 3],
              ["rotated", 3, 4],
              ["rotated", 4, 5],
            ]);
            const v5 = vault.kvGet("all/db")!;
            for (const [role, key] of [["all_1", "one"], ["all_2", "two"], ["all_3", "three"]]) {
              assert.equal(await login(cluster, role, v5.data[key]), true);
            }
            assert.equal(v5.data.unrelated, "keep-this-value");
            await assertNoLeak(deps, Object.values(v5.data).filter((x) => x !== "keep-this-value"));
          });
        } finally {
          await deps.close();
        }
      },
    );

    await t.step(
      "role names with quotes, semicolons, unicode and unmapped roles are refused before any SQL or Vault call",
      async () => {
        const deps = await setup(env, "names/db", { names_ok: { key: "pw", password: "old-names-pw" } });
        try {
          const logBefore = (await cluster.primary.readLog()).length;
          const callsBefore = vault.calls.length;
          const bad = [
            `names_ok"; drop role names_ok; --`,
            "names_ok'; select pg_sleep(9)",
            "names_ok;drop",
            "rôle_ünïcode",
            "NAMES_OK",
            "bisman_not_mapped",
            "postgres",
          ];
          for (const role of bad) {
            assert.equal(rotateArgs.safeParse({ role }).success, /^[a-z_][a-z0-9_]*$/.test(role), role);
            await assert.rejects(op.plan({ role } as RotateArgs, deps), (e: OpsError) => {
              assert.equal(e.code, "invalid_input");
              assert.match(e.userMessage, /Valid: names_ok, or all/);
              assert.ok(!e.userMessage.includes("drop role") && !e.userMessage.includes("pg_sleep"));
              return true;
            });
          }
          const newLog = (await cluster.primary.readLog()).slice(logBefore);
          for (const word of ["drop role", "pg_sleep", "ünïcode", "bisman_not_mapped"]) {
            assert.ok(!newLog.includes(word), `${word} reached the server`);
          }
          assert.equal(vault.calls.length, callsBefore, "no Vault call was made");
          assert.equal(await login(cluster, "names_ok", "old-names-pw"), true);
        } finally {
          await deps.close();
        }
      },
    );

    await t.step(
      "the bot's own login is left out unless the bot reads its password from that Vault key",
      async () => {
        const deps = await setup(env, "own/db", { own_other: { key: "pw", password: "old-own-pw" } });
        try {
          const config = testConfig(cluster, (doc) => {
            doc.targets.main.roles = {
              own_other: { path: "own/db", key: "pw" },
              postgres: { path: "own/db", key: "postgres_pw" },
            };
          });
          const own = { ...deps, config };
          await assert.rejects(
            op.plan({ role: "postgres" }, own),
            /bot's own login on main.*would lock the bot out/,
          );
          const p = await op.plan({ role: "all" }, own);
          assert.deepEqual(p.roles.map((r) => r.role), ["own_other"]);
          assert.ok(p.warnings?.some((w) => /Left out, the bot's own login .*: postgres/.test(w)));
        } finally {
          await deps.close();
        }
      },
    );

    await t.step(
      "reconcile() makes Vault's password the one that logs in, for each kill point",
      async (t2) => {
        const deps = await setup(env, "rec/db", { rec_r: { key: "pw", password: "old-rec-pw" } });
        try {
          await t2.step("killed before the Vault write: nothing changed, so not_done", async () => {
            const p = await planFor(deps, { role: "rec_r" });
            const v = await op.reconcile!(p, deps);
            assert.equal(v.status, "not_done");
            assert.equal(await login(cluster, "rec_r", "old-rec-pw"), true);
          });
          await t2.step(
            "killed after the Vault write, before COMMIT: PostgreSQL is set to Vault's new password",
            async () => {
              const p = await planFor(deps, { role: "rec_r" });
              // What the dead process left: Vault at v+1 with a password PostgreSQL never committed.
              vault.kvPut("rec/db", { pw: "left-by-dead-process-1", unrelated: "keep-this-value" });
              const v = await op.reconcile!(p, deps);
              assert.equal(v.status, "done");
              assert.match(v.note, /rec_r repaired: set to Vault v2's password/);
              assert.equal(await login(cluster, "rec_r", "left-by-dead-process-1"), true);
              assert.equal(await login(cluster, "rec_r", "old-rec-pw"), "28P01");
              assert.equal(vault.kvVersions("rec/db"), 2, "reconcile never writes Vault");
              assert.ok(!v.note.includes("left-by-dead-process-1"));
            },
          );
          await t2.step(
            "killed after COMMIT: both hold the new password, so done without a change",
            async () => {
              const p = await planFor(deps, { role: "rec_r" });
              vault.kvPut("rec/db", { pw: "committed-new-pw-2", unrelated: "keep-this-value" });
              await cluster.primary.sql()`alter role rec_r password 'committed-new-pw-2'`;
              const v = await op.reconcile!(p, deps);
              assert.equal(v.status, "done");
              assert.match(v.note, /rec_r rotated \(v3 logs in\)/);
            },
          );
          await t2.step(
            "Vault unchanged since the plan but its password does not log in: needs a person",
            async () => {
              const p = await planFor(deps, { role: "rec_r" });
              await cluster.primary.sql()`alter role rec_r password 'changed-behind-vault'`;
              const v = await op.reconcile!(p, deps);
              assert.equal(v.status, "needs_human");
              assert.match(v.note, /predates the rotation/);
              assert.equal(
                await login(cluster, "rec_r", "changed-behind-vault"),
                true,
                "nothing was changed",
              );
            },
          );
        } finally {
          await deps.close();
        }
      },
    );
  } finally {
    await proxy.close();
    await vault.stop();
  }
});

Deno.test("/bisman rotate through the approval gate: old password refused, Vault's logs in, nothing leaks", async (t) => {
  await using cluster = await startCluster({ name: "rotate-bot", conf: { log_statement: "all" } });
  const vault = await VaultStandIn.start();
  const sql = cluster.primary.sql();
  await sql`create role bisman_app login password 'old-bisman-app-pw'`;
  await sql`create role bisman_readonly login password 'old-bisman-ro-pw'`;
  vault.kvPut("bisman/db", { app_password: "old-bisman-app-pw", readonly_password: "old-bisman-ro-pw" });
  const config = testConfig(cluster, (doc) => {
    doc.targets.main.roles = {
      bisman_app: { path: "bisman/db", key: "app_password" },
      bisman_readonly: { path: "bisman/db", key: "readonly_password" },
    };
  });
  const tb = await startTestBot(cluster, {
    config,
    env: { VAULT_ADDR: vault.addr, VAULT_TOKEN: vault.rootToken },
  });
  try {
    await t.step("/readyz shows Vault without affecting the status", async () => {
      const body = await waitFor(async () => {
        const b = await (await fetch(`${tb.bot.url}/readyz`)).json();
        return b.vault === "ok" ? b : undefined;
      }, { what: "vault ok in /readyz" });
      assert.equal(body.status, "ready");
    });
    await t.step("/bisman status shows Vault", async () => {
      const a = await ask(tb, "status");
      assert.match(a.text, /Vault \(http:\/\/127\.0\.0\.1:\d+\): unsealed, 1\.15\.0-standin/);
    });
    await t.step("a bad role name is refused at once, listing the valid ones", async () => {
      const a = await ask(tb, `rotate "bisman_app; drop role bisman_app"`);
      assert.match(
        a.text,
        /not a rotatable role of target main\. Valid: bisman_app, bisman_readonly, or all/,
      );
      assert.equal(a.id, undefined);
    });
    let id = 0;
    await t.step("the request shows the plan: role, Vault path and version", async () => {
      const a = await ask(tb, "rotate bisman_app");
      assert.ok(a.id, a.text);
      id = a.id!;
      const m = tb.approvalMessage(id)!;
      const shown = JSON.stringify(m.blocks);
      assert.match(
        shown,
        /Rotate the password of bisman_app on main \(Vault secret\/bisman\/db#app_password, version 1\)/,
      );
      assert.match(shown, /check-and-set on version 1/);
    });
    await t.step("an approver approves; the rotation runs and the message shows the result", async () => {
      assert.equal(await tb.click(ACTIONS.approve, id, USERS.bob), 200);
      await tb.waitForState(id, "succeeded");
      const view = await tb.bot.gate.view(id);
      assert.match(
        view!.request.summary ?? "",
        /bisman_app: rotated \(secret\/bisman\/db#app_password v1→v2, verified: the new password logs in, the old one is refused/,
      );
    });
    await t.step("the old password fails, Vault's logs in, Vault went up by one", async () => {
      const now = vault.kvGet("bisman/db")!;
      assert.equal(now.version, 2);
      assert.equal(now.data.readonly_password, "old-bisman-ro-pw");
      assert.equal(await login(cluster, "bisman_app", "old-bisman-app-pw"), "28P01");
      assert.equal(await login(cluster, "bisman_app", now.data.app_password), true);
    });
    await t.step("/bisman creds shows each role's age from Vault's history against 90 days", async () => {
      vault.setCreatedTime("bisman/db", 1, new Date(Date.now() - 120 * 86_400_000).toISOString());
      const a = await ask(tb, "creds");
      assert.match(a.text, /1 of 2 credentials on main are past their maximum age: bisman_readonly/);
      assert.match(a.text, /bisman_app secret\/bisman\/db#app_password: 0 days\n/);
      assert.match(a.text, /bisman_readonly secret\/bisman\/db#readonly_password: 120 days OVERDUE/);
    });
    await t.step("no password in Slack, the audit log, the bot's log or the server log", async () => {
      const pw = vault.kvGet("bisman/db")!.data.app_password;
      const slackText = JSON.stringify([
        tb.slack.calls,
        tb.slack.messages,
        tb.slack.responses,
        tb.slack.ephemerals,
      ]);
      assert.ok(slackText.length > 1000 && slackText.includes("bisman_app"));
      assert.ok(!slackText.includes(pw), "Slack saw the password");
      assert.ok(
        !JSON.stringify(await tb.bot.deps.audit.rows()).includes(pw),
        "the audit log holds the password",
      );
      assert.ok(!tb.logs.some((l) => l.includes(pw)), "the bot's log holds the password");
      assert.ok(!(await cluster.primary.readLog()).includes(pw), "the server log holds the password");
    });
  } finally {
    await tb.stop();
    await vault.stop();
  }
});

Deno.test("/bisman rotate and /bisman creds answer that Vault is not configured without VAULT_ADDR", async () => {
  await using cluster = await startCluster({ name: "rotate-novault" });
  const config = testConfig(cluster, (doc) => {
    doc.targets.main.roles = { bisman_app: { path: "bisman/db", key: "app_password" } };
  });
  const tb = await startTestBot(cluster, { config });
  try {
    assert.match((await ask(tb, "status")).text, /Vault: not configured/);
    for (const cmd of ["rotate bisman_app", "rotate all", "rotate root", "creds"]) {
      const a = await ask(tb, cmd);
      assert.match(a.text, /Vault is not configured: set VAULT_ADDR/, cmd);
    }
  } finally {
    await tb.stop();
  }
});
