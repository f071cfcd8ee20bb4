import assert from "node:assert/strict";
import { startCluster } from "../../standins/cluster.ts";
import { setupStanza } from "../../standins/pgbackrest.ts";
import { SlackStandIn } from "../../standins/slack.ts";
import { waitFor } from "../../standins/wait.ts";
import { exec, toolEnv } from "../../core/exec.ts";
import { OPS_CHANNEL, TEAM, TEST_SIGNING_KEY, testConfigDoc, USERS } from "../support/bot.ts";
import { spawnBot, writeConfigFile } from "../support/bot_process.ts";
import { pgDump } from "../support/dumps.ts";

/** A wrapper that records the environment it was started with, then runs the real program. */
async function envRecorder(dir: string, name: string, real: string, out: string): Promise<string> {
  const path = `${dir}/${name}`;
  await Deno.writeTextFile(
    path,
    `#!/bin/sh\n/usr/bin/env > "${out}/${name}.$$.env"\nexec "${real}" "$@"\n`,
    { mode: 0o755 },
  );
  await Deno.chmod(path, 0o755);
  return path;
}

/** Every environment the wrappers recorded, by file name. */
async function recorded(out: string): Promise<Map<string, string>> {
  const m = new Map<string, string>();
  for await (const e of Deno.readDir(out)) m.set(e.name, await Deno.readTextFile(`${out}/${e.name}`));
  return m;
}

Deno.test("exec() gives a child the tool environment and what the caller names, nothing else of the process", async () => {
  Deno.env.set("BISMAN_EXEC_TEST_SECRET", "exec-test-secret-4b1e");
  try {
    const r = await exec(["/usr/bin/env"], { env: { PGAPPNAME: "x" } });
    assert.equal(r.code, 0, r.stderr);
    const names = r.stdout.trim().split("\n").map((l) => l.split("=")[0]).sort();
    assert.deepEqual(names, [...Object.keys(toolEnv()), "PGAPPNAME"].sort());
    assert.doesNotMatch(r.stdout, /exec-test-secret-4b1e/);
  } finally {
    Deno.env.delete("BISMAN_EXEC_TEST_SECRET");
  }
});

Deno.test("the programs the bot runs (pgbackrest info, pg_restore --list, pg_restore of a restore test) see none of the bot's secrets", async (t) => {
  await using cluster = await startCluster({ name: "tool-env", archive: true });
  const stanza = await setupStanza(cluster, { name: "bisman" });
  const src = await cluster.createDatabase("src");
  await cluster.primary.psql(
    "create table clients(id int primary key); insert into clients select generate_series(1, 50);",
    src,
  );
  const dumps = `${cluster.dir}/dumps`;
  await Deno.mkdir(dumps);
  await pgDump(cluster, src, `${dumps}/bisman_d0.dump`);

  // The wrappers run as postgres too (pgbackrest through runuser): a folder every user may read and write.
  const bin = `${cluster.dir}/wrappers`;
  const out = `${cluster.dir}/envs`;
  await Deno.mkdir(bin, { mode: 0o755 });
  await Deno.mkdir(out);
  await Deno.chmod(bin, 0o755);
  await Deno.chmod(out, 0o777);
  const pgRestore = await envRecorder(bin, "pg_restore", `${cluster.binDir}/pg_restore`, out);
  const pgbackrest = await envRecorder(bin, "pgbackrest", "/usr/bin/pgbackrest", out);

  const slack = await SlackStandIn.start({ users: { [USERS.alice]: { name: "alice" } } });
  const stateDb = await cluster.createDatabase("state");
  const secrets: Record<string, string> = {
    SLACK_SIGNING_SECRET: slack.signingSecret,
    SLACK_BOT_TOKEN: slack.botToken,
    // The state database trusts local TCP: the password is never checked, only carried.
    DATABASE_URL: `postgres://postgres:state-db-password-93c1@127.0.0.1:${cluster.primary.port}/${stateDb}`,
    ALERTS_TOKEN: "alerts-token-5f0d2a77",
    VAULT_TOKEN: "hvs.vault-token-8e2b41c9",
    BISMAN_SIGNING_KEY: TEST_SIGNING_KEY,
    BISMAN_TARGET_PASSWORD: "target-password-61af0e",
  };
  const configFile = await writeConfigFile(testConfigDoc(cluster, (doc) => {
    doc.targets.main.primary.database = src;
    doc.targets.main.primary.password_env = "BISMAN_TARGET_PASSWORD";
    doc.targets.main.backups = {
      dump_folder: { path: dumps, pattern: "bisman_*.dump" },
      pgbackrest: { stanza: "bisman", config_file: stanza.configFile, run_as: "postgres" },
      tools: { pg_restore: pgRestore, pgbackrest },
    };
    doc.targets.main.restore_test = {
      server: {
        host: "127.0.0.1",
        port: cluster.primary.port,
        database: "postgres",
        user: "postgres",
        sslmode: "disable",
      },
      allow_on_primary: true,
      requires_approval: false,
      compare_with: "none",
      verify: [{ name: "clients", sql: "select count(*) from clients", min: 50 }],
    };
  }));
  const bot = await spawnBot({
    configFile,
    env: { ...secrets, SLACK_API_URL: slack.apiUrl, VAULT_ADDR: "http://127.0.0.1:9" },
  });
  const ask = async (text: string) => {
    const res = await slack.sendCommand(bot.eventsUrl, {
      text,
      user_id: USERS.alice,
      team_id: TEAM,
      channel_id: OPS_CHANNEL,
    });
    await res.body?.cancel();
  };
  try {
    await t.step("/bisman backups runs pgbackrest info and pg_restore --list", async () => {
      await ask("backups main");
      await waitFor(async () => {
        const names = [...(await recorded(out)).keys()];
        return names.some((n) => n.startsWith("pgbackrest.")) &&
          names.some((n) => n.startsWith("pg_restore."));
      }, { what: "both tools run", timeoutMs: 30_000 });
    });

    await t.step("/bisman restore-test runs pg_restore into the scratch database", async () => {
      const before = (await recorded(out)).size;
      await ask("restore-test main");
      await waitFor(
        // Long work answers through the Web API in the asker's channel (slack/answers.ts), not the response_url.
        () => slack.messages.some((m) => /Restore test of main passed/.test(m.text ?? "")),
        {
          what: "the restore test to pass",
          timeoutMs: 60_000,
        },
      );
      assert.ok((await recorded(out)).size > before, "pg_restore ran again");
    });

    await t.step("no recorded environment holds any of the bot's secrets or its env names", async () => {
      const envs = await recorded(out);
      assert.ok(envs.size >= 3, `${envs.size} runs recorded`);
      for (const [file, text] of envs) {
        assert.match(text, /^PATH=/m, `${file} recorded an environment`);
        for (const [name, value] of Object.entries(secrets)) {
          assert.ok(!text.includes(value), `${file} holds the value of ${name}`);
          assert.doesNotMatch(text, new RegExp(`^${name}=`, "m"), `${file} holds ${name}`);
        }
        assert.doesNotMatch(text, /^(SLACK|VAULT|BISMAN|DATABASE)_/m, `${file}: no bot variable at all`);
      }
    });
  } finally {
    await bot.stop();
    await slack.stop();
  }
});
