import assert from "node:assert/strict";
import { startCluster } from "../../standins/cluster.ts";
import { testConfigDoc, USERS } from "../support/bot.ts";
import {
  approveVia,
  type BotProcess,
  requestVia,
  spawnBot,
  writeConfigFile,
} from "../support/bot_process.ts";
import { waitFor } from "../../standins/wait.ts";
import { login, seedRotatableRoles } from "../support/rotation.ts";
import { SlackStandIn } from "../../standins/slack.ts";
import { VaultStandIn } from "../../standins/vault.ts";
import { getRequest } from "../../gate/store.ts";

/** Each kill point, three times; every restart recovers the previous run, then serves the next one. */
const KILL_POINTS = ["rotate.after_alter", "rotate.after_vault_write", "rotate.after_commit"] as const;
const RUNS = KILL_POINTS.flatMap((k) => [k, k, k]);

Deno.test("rotate: the bot killed at each fault point and restarted leaves the password in Vault working", async (t) => {
  await using cluster = await startCluster({ name: "rotate-crash" });
  const vault = await VaultStandIn.start();
  const slack = await SlackStandIn.start({
    teamId: "T0TEST",
    users: { [USERS.alice]: { name: "alice" }, [USERS.bob]: { name: "bob" } },
  });
  const roles = await seedRotatableRoles(cluster, vault, "bisman/db", {
    crash_app: { key: "app_password", password: "crash-initial-pw" },
  }, { readonly_password: "unrelated-ro-pw" });
  const stateDb = await cluster.createDatabase("state");
  const state = cluster.primary.sql(stateDb);
  const configFile = await writeConfigFile(testConfigDoc(cluster, (doc) => {
    doc.targets.main.roles = roles;
  }));
  const env = (failpoint?: string) => ({
    SLACK_SIGNING_SECRET: slack.signingSecret,
    SLACK_BOT_TOKEN: slack.botToken,
    SLACK_API_URL: slack.apiUrl,
    DATABASE_URL: cluster.primary.url({ database: stateDb }),
    VAULT_ADDR: vault.addr,
    VAULT_TOKEN: vault.rootToken,
    ...(failpoint ? { BISMAN_FAILPOINT: failpoint } : {}),
  });
  let bot: BotProcess | undefined;
  const seen: string[] = [];
  const logLines: string[] = [];
  try {
    bot = await spawnBot({ configFile, env: env(RUNS[0]) });
    let previous: { id: number; point: string; version: number } | undefined;
    for (let i = 0; i <= RUNS.length; i++) {
      if (previous) {
        const { id, point, version } = previous;
        await t.step(
          `run ${i}: after a kill at ${point}, reconcile leaves Vault's password working`,
          async () => {
            const row = await waitFor(async () => {
              const r = await getRequest(state, id);
              return r?.reconcile ? r : undefined;
            }, { what: `reconcile of request #${id}`, timeoutMs: 30_000 });
            assert.equal(row.state, "interrupted");
            const now = vault.kvGet("bisman/db")!;
            assert.equal(
              await login(cluster, "crash_app", now.data.app_password),
              true,
              "Vault's password logs in",
            );
            assert.equal(now.data.readonly_password, "unrelated-ro-pw");
            if (point === "rotate.after_alter") {
              assert.equal(row.reconcile!.status, "not_done", row.reconcile!.note);
              assert.equal(now.version, version, "Vault unchanged");
            } else {
              assert.equal(row.reconcile!.status, "done", row.reconcile!.note);
              assert.equal(now.version, version + 1);
              assert.equal(
                await login(cluster, "crash_app", vault.kvGet("bisman/db", version)!.data.app_password),
                "28P01",
              );
              if (point === "rotate.after_vault_write") assert.match(row.reconcile!.note, /repaired/);
            }
            seen.push(now.data.app_password);
          },
        );
      }
      if (i === RUNS.length) break;
      const point = RUNS[i];
      const version = vault.kvVersions("bisman/db");
      const id = await requestVia(slack, bot!, "rotate crash_app", USERS.alice);
      assert.equal(await approveVia(slack, bot!, id, USERS.bob), 200);
      await bot!.waitForLine(new RegExp(`"failpoint reached","failpoint":"${point.replace(".", "\\.")}"`));
      await bot!.kill();
      logLines.push(...bot!.stderr);
      previous = { id, point, version };
      // The next process recovers this run, then (with the next fault point armed) serves the next one.
      bot = await spawnBot({ configFile, env: env(RUNS[i + 1]) });
    }
    await t.step("no password reached Slack or the bot's log", () => {
      const slackText = JSON.stringify([slack.calls, slack.messages, slack.responses]);
      assert.match(slackText, /was interrupted/);
      logLines.push(...bot!.stderr);
      assert.equal(logLines.filter((l) => l.includes("failpoint reached")).length, RUNS.length);
      for (const pw of seen) {
        assert.ok(!slackText.includes(pw), "Slack saw a password");
        assert.ok(!logLines.some((l) => l.includes(pw)), "the bot's log holds a password");
      }
    });
  } finally {
    await bot?.stop();
    await slack.stop();
    await vault.stop();
    await Deno.remove(configFile).catch(() => undefined);
  }
});
