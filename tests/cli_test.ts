/**
 * The break-glass CLI end to end: `deno run cli.ts` as a real subprocess (run by root on these machines),
 * logged in to the state database as each person's own role, against a real bot in process (its Slack
 * and Vault are the stand-ins) on a throwaway cluster. Identity is the PostgreSQL login only.
 */

import assert from "node:assert/strict";
import postgres from "postgres";
import { startCluster, type TestCluster } from "../standins/cluster.ts";
import { createBismanDatabase } from "./support/bisman_schema.ts";
import { VaultStandIn } from "../standins/vault.ts";
import { AuditLog } from "../core/audit.ts";
import { Secrets } from "../core/log.ts";
import { startTestBot, type TestBot, testConfig, USERS } from "./support/bot.ts";
import { type CliRun, DENO_DIR, runCli } from "./support/cli_process.ts";

const root = new URL("../", import.meta.url).pathname;

/** Each person's state-database password; dave is in bisman_cli but not in cli_operators, mallory in neither. */
const PEOPLE = {
  alice: "alice-cli-pw",
  bob: "bob-cli-pw",
  carol: "carol-cli-pw",
  dave: "dave-cli-pw",
  mallory: "mallory-cli-pw",
} as const;
type Person = keyof typeof PEOPLE;

/**
 * The CLI's world: a BISMAN target, Vault, a running bot in the shipped role split, and the people's own
 * state-database logins.
 */
async function setUp(cluster: TestCluster) {
  const { db, sql } = await createBismanDatabase(cluster, { rows: { clients: 20, invoices: 20 } });
  await sql.end();
  const vault = await VaultStandIn.start();
  const config = testConfig(cluster, (d) => {
    d.access.cli_operators = { alice: USERS.alice, bob: USERS.bob, carol: USERS.carol };
    d.targets.main.primary.database = db;
    d.targets.main.replicas = [];
    d.targets.main.roles = { bisman_app: { path: "bisman/db", key: "app_password" } };
  });
  // The shipped role split: the schema's owner runs the migrations (it lacks CREATEROLE, so an admin made
  // bisman_cli first), the bot runs as a runtime role that owns nothing.
  const stateDb = await cluster.createDatabase("clistate");
  await cluster.primary.psql(`
    create role cli_test_owner login password 'owner-pw';
    create role cli_test_runtime login password 'runtime-pw';
    create role bisman_cli nologin;
    alter database "${stateDb}" owner to cli_test_owner;`);
  const stateUrl = cluster.primary.url({
    database: stateDb,
    user: "cli_test_runtime",
    password: "runtime-pw",
  });
  const tb: TestBot = await startTestBot(cluster, {
    config,
    stateDb,
    env: {
      DATABASE_URL: stateUrl,
      DATABASE_MIGRATION_URL: cluster.primary.url({
        database: stateDb,
        user: "cli_test_owner",
        password: "owner-pw",
      }),
      VAULT_ADDR: vault.addr,
      VAULT_TOKEN: vault.rootToken,
    },
  });
  // An admin gives each person a login in bisman_cli (mallory gets a login and nothing else).
  await cluster.primary.psql(
    Object.entries(PEOPLE).map(([p, pw]) =>
      `create role ${p} login password '${pw}'${p === "mallory" ? "" : " in role bisman_cli"};`
    ).join("\n"),
  );
  const home = await Deno.makeTempDir({ prefix: "bisman-cli-home-" });
  const urlOf = (p: Person, password: string | null = PEOPLE[p]) =>
    cluster.primary.url({ database: stateDb, user: p, ...(password === null ? {} : { password }) }) +
    "?sslmode=disable";

  const spawn = (env: Record<string, string>, args: string[]): Promise<CliRun> =>
    runCli({ HOME: home, ...env }, args);
  /**
   * Runs the CLI at a terminal (util-linux `script` gives it a pseudo-terminal) and types each answer once
   * its question has appeared, as a person would. Returns everything the terminal showed.
   */
  const atTerminal = async (
    env: Record<string, string>,
    args: string[],
    answers: { question: RegExp; answer: string }[],
  ): Promise<{ code: number; screen: string }> => {
    const quote = (a: string) => `'${a.replaceAll("'", `'\\''`)}'`;
    const child = new Deno.Command("script", {
      args: ["-qec", [Deno.execPath(), "run", "-A", "cli.ts", ...args].map(quote).join(" "), "/dev/null"],
      cwd: root,
      env: {
        PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin",
        HOME: home,
        NO_COLOR: "1",
        TERM: "dumb",
        DENO_DIR,
        ...env,
      },
      clearEnv: true,
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const writer = child.stdin.getWriter();
    const kill = setTimeout(() => child.kill("SIGKILL"), 60_000);
    let screen = "";
    let next = 0;
    let from = 0;
    const dec = new TextDecoder();
    for await (const chunk of child.stdout) {
      screen += dec.decode(chunk, { stream: true });
      while (next < answers.length && answers[next].question.test(screen.slice(from))) {
        from = screen.length;
        await writer.write(new TextEncoder().encode(`${answers[next++].answer}\r`));
      }
    }
    clearTimeout(kill);
    await writer.close().catch(() => {});
    const status = await child.status;
    await child.stderr.cancel();
    return { code: status.code, screen: screen.replaceAll("\r", "") };
  };
  return {
    db,
    vault,
    tb,
    atTerminal,
    home,
    stateUrl,
    urlOf,
    /** Runs the CLI as `who` (BISMAN_CLI_DATABASE_URL set to their own login). */
    as: (who: Person, ...args: string[]) => spawn({ BISMAN_CLI_DATABASE_URL: urlOf(who) }, args),
    /** Runs the CLI with exactly `env` added. */
    spawn,
    state: () => cluster.primary.sql(stateDb),
    audit: async () => {
      const log = new AuditLog(cluster.primary.sql(stateDb), new Secrets());
      return { rows: await log.rows(), verdict: await log.verify() };
    },
    cleanUp: async () => {
      await tb.stop().catch(() => {});
      await vault.stop();
      await Deno.remove(home, { recursive: true });
    },
  };
}

Deno.test("cli: who is typing is the PostgreSQL login; help, output, exit codes and refusals", async (t) => {
  await using cluster = await startCluster({ name: "cli", preload: ["pg_stat_statements"] });
  const w = await setUp(cluster);
  try {
    await t.step(
      "help needs no database; it lists the subcommands, the request ones and the exit codes",
      async () => {
        const r = await w.spawn({}, ["help"]);
        assert.equal(r.code, 0, r.stderr);
        assert.match(r.stdout, /deno task ops status \[target\]/);
        assert.match(r.stdout, /approve <id> \[--plan <hash>\] \[--confirm <text>\]/);
        assert.match(r.stdout, /Exit codes: 0 ok, 1 failed, 2 bad usage or refused, 3 not permitted/);
        assert.doesNotMatch(r.stdout, /--as/);
      },
    );

    await t.step("--as is refused with exit 2 and a reason, before anything connects", async () => {
      const r = await w.as("alice", "--as", "bob", "status");
      assert.equal(r.code, 2);
      assert.match(r.stderr, /--as is gone: the CLI does not take anyone's word for who is typing/);
      const inline = await w.spawn({}, ["--as=bob", "status"]);
      assert.equal(inline.code, 2);
    });

    await t.step(
      "without a login of one's own the CLI says how to get one, and never uses DATABASE_URL",
      async () => {
        const none = await w.spawn({}, ["status"]);
        assert.equal(none.code, 2);
        assert.match(none.stderr, /Set BISMAN_CLI_DATABASE_URL to your own role on the bot's state database/);
        const bots = await w.spawn({ DATABASE_URL: w.stateUrl }, ["status"]);
        assert.equal(bots.code, 2);
        assert.match(bots.stderr, /DATABASE_URL is the bot's own login and the CLI does not use it/);
      },
    );

    await t.step("status runs in the bot as the login's person and prints plain text", async () => {
      const r = await w.as("alice", "status");
      assert.equal(r.code, 0, r.stderr);
      assert.match(
        r.stdout,
        new RegExp(`primary 127\\.0\\.0\\.1:${cluster.primary.port} primary PostgreSQL 15`),
      );
      assert.doesNotMatch(r.stdout, /:large_green_circle:|\*main\*/, "no Slack markup in the terminal");
    });

    await t.step("--json gives the reply, the blocks and the exit code", async () => {
      const r = await w.as("alice", "--json", "status");
      assert.equal(r.code, 0, r.stderr);
      const body = JSON.parse(r.stdout);
      assert.equal(body.ok, true);
      assert.equal(body.exit_code, 0);
      assert.match(body.text, /main:/);
      assert.ok(Array.isArray(body.blocks));
    });

    await t.step(
      "bad usage exits 2 and names the argument; a typo gets a suggestion without a bot",
      async () => {
        const bad = await w.as("alice", "status", "x;y");
        assert.equal(bad.code, 2);
        assert.match(bad.stderr, /Bad argument 1: a target name/);
        const unknown = await w.spawn({}, ["stauts"]);
        assert.equal(unknown.code, 2);
        assert.match(unknown.stderr, /Did you mean `\/bisman status`\?/);
        const flag = await w.spawn({}, ["--nope", "status"]);
        assert.equal(flag.code, 2);
        assert.match(flag.stderr, /Unknown flag --nope/);
      },
    );

    await t.step(
      "a login outside access.cli_operators is refused by the bot; a non-operator exits 3",
      async () => {
        const dave = await w.as("dave", "status");
        assert.equal(dave.code, 3, dave.stderr);
        assert.match(
          dave.stderr,
          /dave may not use the break-glass CLI: an admin adds "dave: <Slack user ID>" to access\.cli_operators/,
        );
        const carol = await w.as("carol", "reset-stats");
        assert.equal(carol.code, 3, carol.stderr);
        assert.match(carol.stderr, /is for operators/);
      },
    );

    await t.step("a login outside bisman_cli, and a wrong password, are refused with exit 3", async () => {
      const mallory = await w.as("mallory", "status");
      assert.equal(mallory.code, 3);
      assert.match(mallory.stderr, /logged in to the state database as mallory, which is not a CLI user/);
      const wrong = await w.spawn({ BISMAN_CLI_DATABASE_URL: w.urlOf("alice", "not-her-password") }, [
        "status",
      ]);
      assert.equal(wrong.code, 3);
      assert.match(
        wrong.stderr,
        /refused the login alice@127\.0\.0\.1:\d+\/\S+ \(from BISMAN_CLI_DATABASE_URL\)/,
      );
      assert.doesNotMatch(wrong.stderr + wrong.stdout, /not-her-password/);
    });

    await t.step(
      "a password comes from the person's own PGPASSFILE (mode 600 only), else it is asked for",
      async () => {
        const noPw = { BISMAN_CLI_DATABASE_URL: w.urlOf("alice", null) };
        const asked = await w.spawn(noPw, ["status"]);
        assert.equal(asked.code, 3);
        assert.match(asked.stderr, /asks for alice's password: run the CLI at a terminal to type it/);
        const file = `${w.home}/pgpass`;
        await Deno.writeTextFile(file, `127.0.0.1:*:*:alice:${PEOPLE.alice}\n`, { mode: 0o600 });
        await Deno.chmod(file, 0o600);
        const ok = await w.spawn({ ...noPw, PGPASSFILE: file }, ["status"]);
        assert.equal(ok.code, 0, ok.stderr);
        await Deno.chmod(file, 0o644);
        const open = await w.spawn({ ...noPw, PGPASSFILE: file }, ["status"]);
        assert.equal(open.code, 3);
        assert.match(open.stderr, /Ignoring .*pgpass: it has group or world access/);
      },
    );

    await t.step("at a terminal the CLI asks for the password, and never echoes it", async () => {
      const r = await w.atTerminal({ BISMAN_CLI_DATABASE_URL: w.urlOf("alice", null) }, ["status"], [
        { question: /Password for alice on 127\.0\.0\.1:\d+\/\S+: $/, answer: PEOPLE.alice },
      ]);
      assert.equal(r.code, 0, r.screen);
      assert.match(r.screen, /primary PostgreSQL 15/);
      assert.ok(!r.screen.includes(PEOPLE.alice), `the password was echoed:\n${r.screen}`);
    });

    await t.step("the audit log names the CLI logins and still verifies", async () => {
      const { rows, verdict } = await w.audit();
      const actors = new Set(rows.filter((r) => r.action === "command.received").map((r) => r.actor));
      assert.ok(actors.has("cli:alice"), [...actors].join(","));
      assert.ok(actors.has("cli:carol"));
      assert.ok(actors.has("cli:dave"));
      assert.ok(!actors.has("cli:mallory"), "mallory's command never reached the bot");
      assert.ok(verdict.ok);
    });
  } finally {
    await w.cleanUp();
  }
});

Deno.test("cli: alice requests a rotation, bob approves the plan he was shown, it runs once; no bot, no run", async (t) => {
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
  const state = w.state();
  const approvals = async (id: number) =>
    (await state`select approver from bisman_ops.approvals where request_id = ${id}`).map((r) => r.approver);
  const stateOf = async (id: number) =>
    (await state`select state from bisman_ops.requests where id = ${id}`)[0]?.state;
  try {
    const before = "app-password-before-rotation";
    w.vault.kvPut("bisman/db", { app_password: before });
    await cluster.primary.psql(`alter role bisman_app password '${before}'`);
    assert.ok(await login(before));

    let id = 0;
    let hash = "";
    await t.step("rotate by alice creates a request and prints its ID and plan", async () => {
      const r = await w.as("alice", "rotate", "bisman_app");
      assert.equal(r.code, 0, r.stderr + r.stdout);
      const m = /Request #(\d+): rotate on main \(pending\)/.exec(r.stdout);
      assert.ok(m, r.stdout);
      id = Number(m[1]);
      assert.match(r.stdout, /Steps:\n {4}1\. /);
      assert.match(r.stdout, /bisman\/db/, "the plan names the Vault path");
      assert.match(r.stdout, new RegExp(`deno task ops approve ${id}`));
      hash = /plan ([0-9a-f]{12});/.exec(r.stdout)![1];
      assert.equal(w.vault.kvGet("bisman/db")?.data.app_password, before, "nothing changed before approval");
    });

    await t.step(
      "without a terminal, approve shows the plan and wants its hash; nothing is approved",
      async () => {
        const r = await w.as("bob", "approve", String(id));
        assert.equal(r.code, 2);
        assert.match(r.stderr, new RegExp(`Request #${id}: rotate on main \\(pending\\)`));
        assert.match(
          r.stderr,
          new RegExp(`To approve exactly this plan: deno task ops approve ${id} --plan ${hash}`),
        );
        const wrong = await w.as("bob", "approve", String(id), "--plan", "0123456789ab");
        assert.equal(wrong.code, 2);
        assert.match(wrong.stderr, new RegExp(`plan is ${hash}, not the 0123456789ab you gave`));
        assert.deepEqual(await approvals(id), []);
      },
    );

    await t.step("root cannot approve as another operator: --as and SUDO_USER change nothing", async () => {
      const as = await w.as("alice", "--as", "bob", "approve", String(id), "--plan", hash);
      assert.equal(as.code, 2);
      assert.match(as.stderr, /--as is gone/);
      const sudo = await w.spawn(
        { BISMAN_CLI_DATABASE_URL: w.urlOf("alice"), SUDO_USER: "bob", USER: "bob", LOGNAME: "bob" },
        ["approve", String(id), "--plan", hash],
      );
      assert.equal(sudo.code, 3, sudo.stderr);
      assert.match(sudo.stderr, new RegExp(`You requested #${id}, so your approval does not count`));
      assert.deepEqual(await approvals(id), [], "nothing was approved");
      assert.equal(await stateOf(id), "pending");
      const show = await w.as("bob", "--json", "request", String(id));
      assert.equal(show.code, 0, show.stderr);
      assert.equal(JSON.parse(show.stdout).request.state, "pending");
      assert.equal(JSON.parse(show.stdout).request.plan_hash, hash);
      const open = await w.as("carol", "requests");
      assert.match(open.stdout, new RegExp(`Request #${id}: rotate on main \\(pending\\)`));
      assert.ok(await login(before));
    });

    const bobAtTerminal = (yes: string) =>
      w.atTerminal({ BISMAN_CLI_DATABASE_URL: w.urlOf("bob") }, ["approve", String(id)], [
        { question: new RegExp(`Approve request #${id}, plan ${hash}\\? \\[y/N\\] $`), answer: yes },
      ]);

    await t.step("at a terminal, approve shows the plan first and asks; no approves nothing", async () => {
      const r = await bobAtTerminal("n");
      assert.equal(r.code, 2, r.screen);
      const shown = r.screen.indexOf(`Request #${id}: rotate on main (pending)`);
      assert.ok(
        shown >= 0 && shown < r.screen.indexOf("[y/N]"),
        `the plan comes before the question:\n${r.screen}`,
      );
      assert.match(r.screen, /bisman\/db/);
      assert.match(r.screen, new RegExp(`Not approved: request #${id} stays pending`));
      assert.deepEqual(await approvals(id), []);
    });

    await t.step(
      "bob says yes to the plan he was shown: it runs once; Vault's new password logs in",
      async () => {
        const r = await bobAtTerminal("y");
        assert.equal(r.code, 0, r.screen);
        assert.match(r.screen, new RegExp(`Request #${id}: rotate on main \\(succeeded\\)`));
        const after = w.vault.kvGet("bisman/db")!.data.app_password;
        assert.notEqual(after, before);
        assert.ok(await login(after), "the password in Vault logs in");
        assert.ok(!(await login(before)), "the old password no longer does");
        assert.ok(!r.screen.includes(after), "the CLI never prints the password");
        const again = await w.as("bob", "approve", String(id), "--plan", hash);
        assert.equal(again.code, 2, "a closed request is refused with 2");
        assert.deepEqual(await approvals(id), [USERS.bob]);
      },
    );

    await t.step("every step is in the audit log as cli:<login>, once, without the password", async () => {
      const { rows, verdict } = await w.audit();
      const of = (action: string) => rows.filter((r) => r.request_id === id && r.action === action);
      assert.equal(of("request.created")[0]?.actor, "cli:alice");
      assert.deepEqual(of("request.approved").map((r) => r.actor), ["cli:bob"]);
      assert.ok(of("approval.refused").some((r) => r.actor === "cli:alice"));
      assert.equal(
        rows.filter((r) => r.request_id === id && r.outcome === "succeeded").length,
        1,
        "ran once",
      );
      const after = w.vault.kvGet("bisman/db")!.data.app_password;
      assert.ok(!JSON.stringify(rows).includes(after));
      assert.ok(verdict.ok);
    });

    await t.step(
      "a CLI request edited in the state database is refused when approved through the CLI: plan_tampered, Vault unchanged",
      async () => {
        const r = await w.as("alice", "rotate", "bisman_app");
        assert.equal(r.code, 0, r.stderr + r.stdout);
        const edited = Number(/Request #(\d+)/.exec(r.stdout)![1]);
        const shown = /plan ([0-9a-f]{12});/.exec(r.stdout)![1];
        const vaultBefore = w.vault.kvGet("bisman/db")!.version;
        // As the state database's superuser: what the approver is shown stays the same (so the CLI's own
        // check of the plan hash passes), but the row says a different policy and approvals needed.
        await state`update bisman_ops.requests
                       set approvals_needed = 2, policy = policy || '{"approvals":2}'::jsonb
                     where id = ${edited}`;
        const bob = await w.as("bob", "approve", String(edited), "--plan", shown);
        assert.notEqual(bob.code, 0);
        assert.match(bob.stderr + bob.stdout, /altered in the state database after the bot made it/);
        assert.equal(await stateOf(edited), "pending", "nothing ran");
        assert.deepEqual(await approvals(edited), []);
        assert.equal(w.vault.kvGet("bisman/db")!.version, vaultBefore, "Vault unchanged");
        const { rows } = await w.audit();
        const tampered = rows.filter((x) => x.request_id === edited && x.action === "plan_tampered");
        assert.equal(tampered[0]?.actor, "cli:bob");
        assert.match(String(tampered[0]?.details.problem), /approvals_needed, policy were changed/);
      },
    );

    await t.step(
      "with no bot running, the CLI says so within its bound, and the command never runs",
      async () => {
        await w.tb.stop();
        const r = await w.as("alice", "--wait", "2", "rotate", "bisman_app");
        assert.equal(r.code, 1, r.stderr);
        assert.match(r.stderr, /No bot took the command within 2 s: is the bot running\? Nothing was done/);
        assert.ok(r.ms < 30_000, `the CLI took ${Math.round(r.ms)} ms`);
        const [row] = await state`
        select picked_by, done_at from bisman_ops.cli_inbox where login = 'alice' order by id desc limit 1`;
        assert.equal(row.picked_by, null);
        assert.ok(row.done_at, "the command is closed, so a bot that starts later cannot take it");
        const [{ n }] = await state`select count(*)::int as n from bisman_ops.requests`;
        assert.equal(n, 2, "no new request (the first one, and the edited one)");
      },
    );
  } finally {
    await w.cleanUp();
  }
});
