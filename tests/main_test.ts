import assert from "node:assert/strict";
import { startCluster } from "../standins/cluster.ts";
import { freePort } from "../standins/ports.ts";
import { spawnBot } from "./support/bot_process.ts";
import { TEST_SIGNING_KEY } from "./support/bot.ts";
import { waitFor } from "../standins/wait.ts";
import { SlackStandIn } from "../standins/slack.ts";
import postgres from "postgres";
import { parseAllDocuments } from "yaml";
import { grantRuntimeAccess, migrate, readMigrations } from "../core/migrate.ts";

Deno.test("main.ts with bisman.example.yaml comes up healthy while the example's targets do not answer", async (t) => {
  await using cluster = await startCluster({ name: "main" });
  const slack = await SlackStandIn.start({ teamId: "T0TEST" });
  const stateDb = await cluster.createDatabase("state");
  const baseEnv = {
    SLACK_SIGNING_SECRET: slack.signingSecret,
    SLACK_BOT_TOKEN: slack.botToken,
    SLACK_API_URL: slack.apiUrl,
    BISMAN_PROD_PASSWORD: "example-password-not-used",
    DATABASE_URL: cluster.primary.url({ database: stateDb }),
  };
  // What `deno task start` runs: main.ts, here with the example config as it is.
  const start = (env: Record<string, string>, configFile = "bisman.example.yaml") =>
    spawnBot({ configFile, env, waitReady: false });
  const stderrOf = (bot: Awaited<ReturnType<typeof start>>) => bot.stderr.join("\n");
  try {
    await t.step("a failed auth.test keeps /readyz at 503 and is retried, never fatal", async () => {
      slack.failNext("auth.test", { error: "invalid_auth" }, 2);
      const bot = await start(baseEnv);
      const port = bot.port;
      try {
        const firstReady = await waitFor(async () => {
          const r = await fetch(`http://127.0.0.1:${port}/readyz`).catch(() => undefined);
          if (!r) return undefined;
          return { status: r.status, body: await r.json() };
        }, { what: "bot answering /readyz", timeoutMs: 30_000 });
        assert.equal(firstReady.status, 503);
        assert.equal(firstReady.body.slack, "auth.test pending");
        const ready = await waitFor(async () => {
          const r = await fetch(`http://127.0.0.1:${port}/readyz`);
          const body = await r.json();
          return r.status === 200 && body.targets["prod/primary"] ? body : undefined;
        }, { what: "/readyz 200 with target findings", timeoutMs: 30_000 });
        assert.equal(ready.state, "ok");
        assert.deepEqual(ready.targets["prod/primary"], { status: "unreachable" });
        assert.deepEqual(ready.targets["prod/replica1"], { status: "unreachable" });
        assert.equal(ready.vault, "not configured");
        const health = await fetch(`http://127.0.0.1:${port}/healthz`);
        assert.equal(health.status, 200);
        assert.deepEqual(await health.json(), { status: "ok" });
        const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
        assert.match(metrics, /# TYPE bisman_http_requests_total counter/);
        assert.ok(slack.calls.filter((c) => c.method === "auth.test").length >= 3);
      } finally {
        await bot.stop();
      }
      assert.ok(
        !stderrOf(bot).includes("example-password-not-used"),
        "the target password never reaches the log",
      );
    });

    await t.step("an invalid config stops start-up with exit code 2, naming the key", async () => {
      const bad = await Deno.makeTempFile({ suffix: ".yaml" });
      const example = await Deno.readTextFile(new URL("../bisman.example.yaml", import.meta.url));
      await Deno.writeTextFile(bad, example.replace("ops_channel: C0OPS", "ops_channel: general"));
      const bot = await start(baseEnv, bad);
      const status = await bot.exited;
      assert.equal(status.code, 2);
      assert.match(stderrOf(bot), /slack\.ops_channel: a Slack channel ID/);
      await Deno.remove(bad);
    });

    await t.step("an unreachable state database stops start-up with a clear message", async () => {
      const deadPort = await freePort();
      const bot = await start({
        ...baseEnv,
        DATABASE_URL: `postgres://postgres:pw-in-url@127.0.0.1:${deadPort}/x`,
      });
      const status = await bot.exited;
      assert.equal(status.code, 1);
      assert.match(stderrOf(bot), /bisman-ops could not start: /);
      assert.ok(!stderrOf(bot).includes("pw-in-url"), "the state database password is not printed");
    });

    await t.step(
      "without BISMAN_SIGNING_KEY, or with a short one, start-up stops and names the variable",
      async () => {
        for (
          const [key, said] of [
            ["", /BISMAN_SIGNING_KEY is not set: the key, kept outside the state database/],
            ["c2hvcnQta2V5", /BISMAN_SIGNING_KEY holds 9 bytes; at least 32 are needed/],
          ] as const
        ) {
          const bot = await start({ ...baseEnv, BISMAN_SIGNING_KEY: key });
          assert.notEqual((await bot.exited).code, 0);
          assert.match(stderrOf(bot), said);
          assert.ok(!key || !stderrOf(bot).includes(key), "the key is not printed");
        }
      },
    );
  } finally {
    await slack.stop();
  }
});

/**
 * Runs `main.ts migrate` exactly as the Deployment's `migrate` init container does (its command and named
 * permissions, from deploy/k8s/deployment.yaml; no prompts), with only `env` (plus PATH and DENO_DIR).
 */
async function runMigrate(env: Record<string, string>): Promise<{ code: number; stderr: string }> {
  const base: Record<string, string> = {};
  for (const k of ["PATH", "HOME", "DENO_DIR", "TMPDIR"]) {
    const v = Deno.env.get(k);
    if (v) base[k] = v;
  }
  const deployment = parseAllDocuments(
    await Deno.readTextFile(new URL("../deploy/k8s/deployment.yaml", import.meta.url)),
  )[0].toJS();
  const init = deployment.spec.template.spec.initContainers.find((c: { name: string }) =>
    c.name === "migrate"
  );
  const [deno, run, ...args] = init.command as string[];
  assert.deepEqual([deno, run], ["deno", "run"]);
  const r = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--no-prompt", ...args],
    cwd: new URL("../", import.meta.url).pathname,
    env: { ...base, ...env },
    clearEnv: true,
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).output();
  return { code: r.code, stderr: new TextDecoder().decode(r.stderr) };
}

/**
 * Starts main.ts as the image runs it: the Dockerfile's CMD (its named permissions, --cached-only), without
 * prompts, with only `env` (plus PATH and DENO_DIR) and the example config.
 */
async function spawnAsImage(env: Record<string, string>) {
  const dockerfile = await Deno.readTextFile(new URL("../Dockerfile", import.meta.url));
  const cmd = JSON.parse(
    dockerfile.split("\n").filter((l) => l.startsWith("CMD ")).at(-1)!.slice(4),
  ) as string[];
  assert.deepEqual(cmd.slice(0, 2), ["deno", "run"]);
  const port = await freePort();
  const base: Record<string, string> = {};
  for (const k of ["PATH", "HOME", "DENO_DIR", "TMPDIR"]) {
    const v = Deno.env.get(k);
    if (v) base[k] = v;
  }
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "--no-prompt", ...cmd.slice(2)],
    cwd: new URL("../", import.meta.url).pathname,
    env: {
      ...base,
      BISMAN_SIGNING_KEY: TEST_SIGNING_KEY,
      ...env,
      BISMAN_CONFIG: "bisman.example.yaml",
      PORT: String(port),
    },
    clearEnv: true,
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  let text = "";
  const reading = new Response(child.stderr).text().then((t) => (text = t));
  return {
    url: `http://127.0.0.1:${port}`,
    /** Its stderr, once stopped. */
    stderr: () => text,
    /** SIGTERM, then waits for the exit and the end of its output. */
    async stop() {
      child.kill("SIGTERM");
      await child.status;
      await reading;
    },
  };
}

Deno.test("the shipped role split: `main.ts migrate` as the owner, then a bot that only checks, as a role that does not own its schema", async (t) => {
  await using cluster = await startCluster({ name: "main-roles" });
  const slack = await SlackStandIn.start({ teamId: "T0TEST" });
  const ownerPw = `owner-${crypto.randomUUID()}`;
  const runtimePw = `runtime-${crypto.randomUUID()}`;
  await cluster.primary.psql(
    `create role bisman_owner login password '${ownerPw}';\n` +
      `create role bisman_runtime login password '${runtimePw}';`,
  );
  const stateDb = await cluster.createDatabase("rolesplit");
  await cluster.primary.psql(`alter database "${stateDb}" owner to bisman_owner`);
  const ownerUrl = cluster.primary.url({ database: stateDb, user: "bisman_owner", password: ownerPw });
  const runtimeUrl = cluster.primary.url({ database: stateDb, user: "bisman_runtime", password: runtimePw });
  const all = await readMigrations();
  const botEnv = {
    SLACK_SIGNING_SECRET: slack.signingSecret,
    SLACK_BOT_TOKEN: slack.botToken,
    SLACK_API_URL: slack.apiUrl,
    BISMAN_PROD_PASSWORD: "example-password-not-used",
    DATABASE_URL: runtimeUrl,
    // As the Deployment runs it: no DATABASE_MIGRATION_URL, check only.
    BISMAN_MIGRATIONS: "check",
  };
  const owner = postgres(ownerUrl, { max: 1, onnotice: () => {} });
  try {
    await t.step("the init container's command needs both URLs and says which is missing", async () => {
      const r = await runMigrate({ DATABASE_URL: runtimeUrl });
      assert.equal(r.code, 2);
      assert.match(r.stderr, /DATABASE_MIGRATION_URL is not set/);
    });

    await t.step("a bot whose schema is behind refuses to start, naming both revisions", async () => {
      const refusal = async () => {
        const bot = await spawnBot({ configFile: "bisman.example.yaml", env: botEnv, waitReady: false });
        assert.equal((await bot.exited).code, 1);
        return bot.stderr.join("\n");
      };
      // A fresh database: nothing applied yet.
      assert.match(
        await refusal(),
        new RegExp(`schema is at no migration, and this build needs ${all.at(-1)!.name}`),
      );
      // The previous release's schema, applied by the owner, but without the runtime role's grants.
      await migrate(owner, all.slice(0, -1));
      assert.match(
        await refusal(),
        /cannot read bisman_ops\.migrations .*run the migrations as the schema's owner/,
      );
      // As the previous release's Job left it: with the runtime role's grants.
      await grantRuntimeAccess(owner, "bisman_runtime");
      const bot = await spawnBot({ configFile: "bisman.example.yaml", env: botEnv, waitReady: false });
      const status = await bot.exited;
      assert.equal(status.code, 1);
      const err = bot.stderr.join("\n");
      assert.match(err, /bisman-ops could not start: Refusing to start/);
      assert.ok(err.includes(`schema is at ${all.at(-2)!.name}`), err);
      assert.ok(err.includes(`this build needs ${all.at(-1)!.name}`), err);
      assert.match(err, /BISMAN_MIGRATIONS=check/);
      const [{ n }] = await owner<{ n: number }[]>`select count(*)::int as n from bisman_ops.migrations`;
      assert.equal(n, all.length - 1, "the bot applied nothing");
      assert.ok(!err.includes(runtimePw), "no password in the output");
    });

    await t.step("`main.ts migrate` applies the rest as the owner and grants the runtime role", async () => {
      const r = await runMigrate({ DATABASE_URL: runtimeUrl, DATABASE_MIGRATION_URL: ownerUrl });
      assert.equal(r.code, 0, r.stderr);
      assert.ok(r.stderr.includes(all.at(-1)!.name), r.stderr);
      assert.ok(!r.stderr.includes(ownerPw) && !r.stderr.includes(runtimePw), "no password in the output");
      const [{ owner: o }] = await owner<{ owner: string }[]>`
        select c.relowner::regrole::text as owner from pg_class c where c.oid = 'bisman_ops.audit_log'::regclass`;
      assert.equal(o, "bisman_owner", "the runtime role does not own the state schema");
    });

    await t.step(
      "the checking bot then starts as the runtime role, with the image's own permissions, and cannot rewrite the audit log",
      async () => {
        const bot = await spawnAsImage({ ...botEnv, BISMAN_VERSION: "1.2.3", BISMAN_COMMIT: "0abc123" });
        try {
          await waitFor(async () => {
            const r = await fetch(`${bot.url}/readyz`).catch(() => undefined);
            await r?.body?.cancel();
            return r?.status === 200;
          }, { what: "/readyz 200", timeoutMs: 30_000 });
          // The process series work under named permissions too (Deno opens /proc/self only to -A).
          const metrics = await (await fetch(`${bot.url}/metrics`)).text();
          const value = (name: string) => Number(new RegExp(`^${name} (\\S+)$`, "m").exec(metrics)?.[1]);
          assert.ok(value("process_resident_memory_bytes") > 10 * 2 ** 20, metrics);
          assert.ok(value("process_cpu_seconds_total") > 0);
          assert.ok(value("nodejs_eventloop_lag_seconds") >= 0);
          assert.match(metrics, /^bisman_build_info\{version="1\.2\.3",commit="0abc123",deno="[^"]+"\} 1$/m);
        } finally {
          await bot.stop();
        }
        assert.doesNotMatch(bot.stderr(), /NotCapable|Requires .* access/, "no permission the image lacks");
        const runtime = postgres(runtimeUrl, { max: 1, onnotice: () => {} });
        try {
          await assert.rejects(
            runtime`delete from bisman_ops.audit_log`,
            /permission denied for table audit_log/,
          );
          await assert.rejects(
            runtime`create table bisman_ops.x (y int)`,
            /permission denied for schema bisman_ops/,
          );
        } finally {
          await runtime.end();
        }
      },
    );

    await t.step("BISMAN_MIGRATIONS takes only apply or check", async () => {
      const bot = await spawnBot({
        configFile: "bisman.example.yaml",
        env: { ...botEnv, BISMAN_MIGRATIONS: "sometimes" },
        waitReady: false,
      });
      assert.equal((await bot.exited).code, 2);
      assert.match(bot.stderr.join("\n"), /BISMAN_MIGRATIONS must be "apply" or "check", got "sometimes"/);
    });
  } finally {
    await owner.end();
    await slack.stop();
  }
});
