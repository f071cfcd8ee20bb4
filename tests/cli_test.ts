import assert from "node:assert/strict";
import { stringify } from "yaml";
import postgres from "postgres";
import { startCluster, type TestCluster } from "../standins/cluster.ts";
import { createBismanDatabase } from "./support/bisman_schema.ts";
import { SlackStandIn } from "../standins/slack.ts";
import { VaultStandIn } from "../standins/vault.ts";
import { connectState } from "../core/state_db.ts";
import { AuditLog } from "../core/audit.ts";
import { Secrets } from "../core/log.ts";
import { TEST_SIGNING_KEY } from "./support/bot.ts";
import { IntegrityKeys } from "../core/keys.ts";

const root = new URL("../", import.meta.url).pathname;

interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
  ms: number;
}

/** The break-glass CLI's world: a cluster with the BISMAN schema, Vault, a config file, and no Slack. */
async function setUp(cluster: TestCluster) {
  const { db, sql } = await createBismanDatabase(cluster, { rows: { clients: 20, invoices: 20 } });
  await sql.end();
  const stateDb = await cluster.createDatabase("cli_state");
  const vault = await VaultStandIn.start();
  // A Slack that answered once and is now down: its URL refuses connections.
  const slack = await SlackStandIn.start({ teamId: "T0TEST" });
  const slackUrl = slack.apiUrl;
  await slack.stop();

  const dir = await Deno.makeTempDir({ prefix: "bisman-cli-test-" });
  const configPath = `${dir}/bisman.yaml`;
  const conn = {
    host: "127.0.0.1",
    port: cluster.primary.port,
    database: db,
    user: "postgres",
    sslmode: "disable",
  };
  await Deno.writeTextFile(
    configPath,
    stringify({
      workspace: { team_id: "T0TEST" },
      slack: { ops_channel: "C0OPS" },
      access: {
        operators: { users: ["U0ALICE", "U0BOB"] },
        approvers: { users: ["U0BOB", "U0CAROL"] },
        cli_operators: { alice: "U0ALICE", bob: "U0BOB", carol: "U0CAROL" },
      },
      targets: {
        main: {
          primary: conn,
          roles: { bisman_app: { path: "bisman/db", key: "app_password" } },
        },
      },
    }),
  );
  const env: Record<string, string> = {
    PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin",
    HOME: Deno.env.get("HOME") ?? "/root",
    BISMAN_CONFIG: configPath,
    DATABASE_URL: cluster.primary.url({ database: stateDb }),
    SLACK_BOT_TOKEN: "xoxb-test-token",
    SLACK_API_URL: slackUrl,
    VAULT_ADDR: vault.addr,
    VAULT_TOKEN: vault.rootToken,
    BISMAN_SIGNING_KEY: TEST_SIGNING_KEY,
    NO_COLOR: "1",
  };
  const run = async (...args: string[]): Promise<CliRun> => {
    const started = performance.now();
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "cli.ts", ...args],
      cwd: root,
      env,
      clearEnv: true,
      stdout: "piped",
      stderr: "piped",
    }).output();
    const dec = new TextDecoder();
    return {
      code: out.code,
      stdout: dec.decode(out.stdout),
      stderr: dec.decode(out.stderr),
      ms: performance.now() - started,
    };
  };
  return {
    db,
    stateDb,
    vault,
    run,
    audit: async () => {
      const state = connectState(env.DATABASE_URL, { max: 1 });
      try {
        const log = new AuditLog(state, new Secrets(), undefined, IntegrityKeys.fromEnv(env));
        return { rows: await log.rows(), verdict: await log.verify() };
      } finally {
        await state.end();
      }
    },
    cleanUp: async () => {
      await vault.stop();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

Deno.test("cli: help, status, bad usage and refusals, with Slack down", async (t) => {
  await using cluster = await startCluster({ name: "cli", preload: ["pg_stat_statements"] });
  const w = await setUp(cluster);
  try {
    await t.step(
      "help lists the /bisman subcommands and the CLI's request subcommands, without any config",
      async () => {
        const r = await w.run("help");
        assert.equal(r.code, 0, r.stderr);
        assert.match(r.stdout, /deno task ops status \[target\]/);
        assert.match(r.stdout, /approve <id> \[--confirm <text>\]/);
        assert.match(r.stdout, /Exit codes: 0 ok, 1 failed, 2 bad usage or refused, 3 not permitted/);
      },
    );

    await t.step("status runs at once as the mapped operator and prints plain text", async () => {
      const r = await w.run("--as", "alice", "status");
      assert.equal(r.code, 0, r.stderr);
      assert.match(
        r.stdout,
        new RegExp(`primary 127\\.0\\.0\\.1:${cluster.primary.port} primary PostgreSQL 15`),
      );
      assert.doesNotMatch(r.stdout, /:large_green_circle:|\*main\*/, "no Slack markup in the terminal");
    });

    await t.step("--json gives the reply and the exit code", async () => {
      const r = await w.run("--as", "alice", "--json", "status");
      assert.equal(r.code, 0, r.stderr);
      const body = JSON.parse(r.stdout);
      assert.equal(body.ok, true);
      assert.equal(body.exit_code, 0);
      assert.match(body.text, /main:/);
      assert.ok(Array.isArray(body.blocks));
    });

    await t.step("bad usage exits 2 and names the argument", async () => {
      const bad = await w.run("--as", "alice", "status", "x;y");
      assert.equal(bad.code, 2);
      assert.match(bad.stderr, /Bad argument 1: a target name/);
      const unknown = await w.run("--as", "alice", "stauts");
      assert.equal(unknown.code, 2);
      assert.match(unknown.stderr, /Did you mean `\/bisman status`\?/);
      const flag = await w.run("--nope", "status");
      assert.equal(flag.code, 2);
      assert.match(flag.stderr, /Unknown flag --nope/);
    });

    await t.step("a login outside access.cli_operators, and a non-operator, exit 3", async () => {
      const outsider = await w.run("--as", "dave", "status");
      assert.equal(outsider.code, 3);
      assert.match(outsider.stderr, /dave may not use the break-glass CLI/);
      const carol = await w.run("--as", "carol", "reset-stats");
      assert.equal(carol.code, 3);
      assert.match(carol.stderr, /is for operators/);
    });

    await t.step("the audit log names the CLI logins and still verifies", async () => {
      const { rows, verdict } = await w.audit();
      const actors = new Set(rows.filter((r) => r.action === "command.received").map((r) => r.actor));
      assert.ok(actors.has("cli:alice"), [...actors].join(","));
      assert.ok(actors.has("cli:carol"));
      assert.ok(actors.has("cli:dave"));
      assert.ok(verdict.ok);
    });
  } finally {
    await w.cleanUp();
  }
});

Deno.test("cli: rotate bisman_app by one operator runs after another approves it, with Slack down", async (t) => {
  await using cluster = await startCluster({ name: "cli-rotate", preload: ["pg_stat_statements"] });
  const w = await setUp(cluster);
  const login = async (password: string) => {
    const sql = postgres({
      host: "127.0.0.1",
      port: cluster.primary.port,
      database: w.db,
      username: "bisman_app",
      password,
      max: 1,
      connect_timeout: 5,
      onnotice: () => {},
    });
    try {
      await sql`select 1`;
      return true;
    } catch {
      return false;
    } finally {
      await sql.end({ timeout: 1 });
    }
  };
  try {
    const before = "app-password-before-rotation";
    w.vault.kvPut("bisman/db", { app_password: before });
    await cluster.primary.psql(`alter role bisman_app password '${before}'`);
    assert.ok(await login(before));

    let id = 0;
    await t.step(
      "rotate creates a request and prints its ID and plan; Slack is reported down once",
      async () => {
        const r = await w.run("--as", "alice", "rotate", "bisman_app");
        assert.equal(r.code, 0, r.stderr + r.stdout);
        const m = /Request #(\d+): rotate on main \(pending\)/.exec(r.stdout);
        assert.ok(m, r.stdout);
        id = Number(m[1]);
        assert.match(r.stdout, /Steps:\n {4}1\. /);
        assert.match(r.stdout, /bisman\/db/, "the plan names the Vault path");
        assert.match(r.stdout, new RegExp(`deno task ops approve ${id}`));
        assert.equal(r.stderr.match(/Slack is unreachable/g)?.length, 1, r.stderr);
        assert.ok(r.ms < 20_000, `the CLI took ${r.ms} ms with Slack down`);
        assert.equal(
          w.vault.kvGet("bisman/db")?.data.app_password,
          before,
          "nothing changed before approval",
        );
      },
    );

    await t.step("the requester's own approval is refused with exit 3 and nothing runs", async () => {
      const r = await w.run("--as", "alice", "approve", String(id));
      assert.equal(r.code, 3);
      assert.match(r.stderr, new RegExp(`You requested #${id}, so your approval does not count`));
      const show = await w.run("--as", "bob", "--json", "request", String(id));
      assert.equal(JSON.parse(show.stdout).request.state, "pending");
      assert.ok(await login(before));
    });

    await t.step(
      "another operator's approval rotates: Vault's new password logs in, the old one not",
      async () => {
        const r = await w.run("--as", "bob", "approve", String(id));
        assert.equal(r.code, 0, r.stderr + r.stdout);
        assert.match(r.stdout, new RegExp(`Request #${id}: rotate on main \\(succeeded\\)`));
        const after = w.vault.kvGet("bisman/db")!.data.app_password;
        assert.notEqual(after, before);
        assert.ok(await login(after), "the password in Vault logs in");
        assert.ok(!(await login(before)), "the old password no longer does");
        assert.ok(
          !r.stdout.includes(after) && !r.stderr.includes(after),
          "the CLI never prints the password",
        );
        const again = await w.run("--as", "bob", "approve", String(id));
        assert.equal(again.code, 2, "a closed request is refused with 2");
      },
    );

    await t.step("every step is in the audit log as cli:<login>, without the password", async () => {
      const { rows, verdict } = await w.audit();
      const of = (action: string) => rows.filter((r) => r.request_id === id && r.action === action);
      assert.equal(of("request.created")[0]?.actor, "cli:alice");
      assert.equal(of("request.approved")[0]?.actor, "cli:bob");
      assert.ok(of("approval.refused").some((r) => r.actor === "cli:alice"));
      assert.ok(rows.some((r) => r.request_id === id && r.outcome === "succeeded"));
      const after = w.vault.kvGet("bisman/db")!.data.app_password;
      assert.ok(!JSON.stringify(rows).includes(after));
      assert.ok(verdict.ok);
    });
  } finally {
    await w.cleanUp();
  }
});
