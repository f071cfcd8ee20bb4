import assert from "node:assert/strict";
import { startCluster } from "../standins/cluster.ts";
import { freePort } from "../standins/ports.ts";
import { spawnBot } from "./support/bot_process.ts";
import { waitFor } from "../standins/wait.ts";
import { SlackStandIn } from "../standins/slack.ts";

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
  } finally {
    await slack.stop();
  }
});
