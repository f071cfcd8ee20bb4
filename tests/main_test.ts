import assert from "node:assert/strict";
import { startCluster } from "./support/cluster.ts";
import { freePort } from "./support/ports.ts";
import { waitFor } from "./support/wait.ts";
import { SlackStandIn } from "./standins/slack.ts";

const root = new URL("../", import.meta.url).pathname;

/** Starts `deno run -A main.ts` (what `deno task start` runs) with the given env. */
function spawnBot(env: Record<string, string>) {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "main.ts"],
    cwd: root,
    env,
    clearEnv: true,
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let stderr = "";
  const reading = child.stderr.pipeThrough(new TextDecoderStream()).pipeTo(
    new WritableStream({ write: (chunk) => void (stderr += chunk) }),
  );
  void child.stdout.cancel();
  return {
    child,
    stderr: () => stderr,
    done: async () => ({ status: await child.status, reading: await reading }),
  };
}

Deno.test("main.ts with bisman.example.yaml comes up healthy while the example's targets do not answer", async (t) => {
  await using cluster = await startCluster({ name: "main" });
  const slack = await SlackStandIn.start({ teamId: "T0TEST" });
  const stateDb = await cluster.createDatabase("state");
  const port = await freePort();
  const baseEnv = {
    PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin",
    HOME: Deno.env.get("HOME") ?? "/root",
    SLACK_SIGNING_SECRET: slack.signingSecret,
    SLACK_BOT_TOKEN: slack.botToken,
    SLACK_API_URL: slack.apiUrl,
    BISMAN_CONFIG: "bisman.example.yaml",
    BISMAN_PROD_PASSWORD: "example-password-not-used",
    DATABASE_URL: cluster.primary.url({ database: stateDb }),
    PORT: String(port),
  };
  try {
    await t.step("a failed auth.test keeps /readyz at 503 and is retried, never fatal", async () => {
      slack.failNext("auth.test", { error: "invalid_auth" }, 2);
      const bot = spawnBot(baseEnv);
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
        bot.child.kill("SIGTERM");
        await bot.done();
      }
      assert.ok(
        !bot.stderr().includes("example-password-not-used"),
        "the target password never reaches the log",
      );
    });

    await t.step("an invalid config stops start-up with exit code 2, naming the key", async () => {
      const bad = await Deno.makeTempFile({ suffix: ".yaml" });
      const example = await Deno.readTextFile(`${root}/bisman.example.yaml`);
      await Deno.writeTextFile(bad, example.replace("ops_channel: C0OPS", "ops_channel: general"));
      const bot = spawnBot({ ...baseEnv, BISMAN_CONFIG: bad });
      const { status } = await bot.done();
      assert.equal(status.code, 2);
      assert.match(bot.stderr(), /slack\.ops_channel: a Slack channel ID/);
      await Deno.remove(bad);
    });

    await t.step("an unreachable state database stops start-up with a clear message", async () => {
      const deadPort = await freePort();
      const bot = spawnBot({
        ...baseEnv,
        DATABASE_URL: `postgres://postgres:pw-in-url@127.0.0.1:${deadPort}/x`,
      });
      const { status } = await bot.done();
      assert.equal(status.code, 1);
      assert.match(bot.stderr(), /bisman-ops could not start: /);
      assert.ok(!bot.stderr().includes("pw-in-url"), "the state database password is not printed");
    });
  } finally {
    await slack.stop();
  }
});
