/**
 * Issue 16, "no secret or sensitive literal ever leaves": a real root rotation through Vault (the stand-in
 * sets the new password in clear, `ALTER ROLE "bisman_vault" WITH PASSWORD '…'`, as Vault's postgres plugin
 * does), a real rotation of bisman_app by the bot (a SCRAM verifier), a legacy md5 hash, and a card number
 * written as a literal by the application role; then every report that shows statement text. Neither the
 * passwords, nor any verifier, nor the card number may appear in any Slack call or file, in the bot's log,
 * its audit log export or its state database; the masked statements must appear, so the test fails if a
 * report stops showing them.
 */

import assert from "node:assert/strict";
import postgres from "postgres";
import { startCluster } from "../../standins/cluster.ts";
import { VaultStandIn } from "../../standins/vault.ts";
import { waitFor } from "../../standins/wait.ts";
import { createBismanDatabase } from "../support/bisman_schema.ts";
import { OPS_CHANNEL, startTestBot, type TestBot, testConfig, USERS } from "../support/bot.ts";
import { ask } from "../support/gate.ts";
import { login } from "../support/rotation.ts";
import { ACTIONS } from "../../views/actions.ts";
import { maskPgauditRecord, maskStatement } from "../../core/statement_mask.ts";

const CARD = "4111 1111 1111 1111";

/** Every `text` string in a Slack payload (message text, mrkdwn and plain_text of blocks), one per line. */
function textsOf(value: unknown): string {
  if (Array.isArray(value)) return value.map(textsOf).join("\n");
  if (value && typeof value === "object") {
    return Object.entries(value).map(([k, v]) => (k === "text" && typeof v === "string" ? v : textsOf(v)))
      .join("\n");
  }
  return "";
}

/**
 * Sends `/bisman <text>` and returns the whole answer as shown (text and blocks): the ack's body for an
 * instant answer, else the response_url reply that follows "Working on…" (ask() returns only its text).
 */
async function answerOf(tb: TestBot, text: string, user: string = USERS.alice): Promise<string> {
  // A response_url of its own, so a late reply to an earlier command is never taken for this one's.
  const url = tb.slack.responseUrl({ user, channel: OPS_CHANNEL });
  const r = await tb.command(text, user, { response_url: url });
  assert.equal(r.status, 200, `/bisman ${text}`);
  let body = r.body;
  if (/Working on/.test(body?.text ?? "")) {
    body = (await waitFor(() => tb.slack.responses.findLast((x) => x.url === url), {
      what: `the answer to ${text}`,
    })).body;
  }
  return textsOf(body);
}

const MD5_HASH = "md5" + "9e107d9d372bb6826bd81d3542a419d6";

Deno.test("after rotate root, slow-queries, the digest, the weekly review, connections, audit search with CSV and audit-log export show the statements masked and leak nothing", async (t) => {
  await using cluster = await startCluster({
    name: "mask-exits",
    preload: ["pgaudit", "pg_stat_statements"],
    conf: { "pgaudit.log": "role, write", "pgaudit.log_parameter": "on" },
  });
  // The bot's state database lives on a cluster of its own, so pg_stat_statements of the target holds only
  // what happened on the target (the reports rank statements; the state database's would crowd them out).
  await using stateCluster = await startCluster({ name: "mask-exits-state" });
  const stateDb = await stateCluster.createDatabase("state");
  const vault = await VaultStandIn.start();
  const { db, sql } = await createBismanDatabase(cluster, { rows: { clients: 5, invoices: 5 } });
  await sql`create table public.card_payments (id int primary key, holder text, card_number text)`;
  // One string of several statements: the DDL event trigger stores all of it as each event's query, so
  // security_events (read by detect and the digest) holds the card number and both passwords.
  await sql.unsafe(`comment on table public.card_payments is 'sample card ${CARD}';
    create trigger audit_dml after insert or update or delete on public.card_payments
      for each row execute function public.audit_dml();
    create role bisman_vault login createrole password E'vault-initial-pw';
    alter role bisman_app password 'app-initial-pw';`);
  vault.kvPut("bisman/db", { app_password: "app-initial-pw" });
  vault.configureDatabase("bisman", {
    connectionUrl: `postgres://127.0.0.1:${cluster.primary.port}/${db}`,
    username: "bisman_vault",
    password: "vault-initial-pw",
  });
  const config = testConfig(cluster, (doc) => {
    doc.targets.main.primary.database = db;
    doc.targets.main.vault = { kv_mount: "secret", database_connection: "bisman" };
    doc.targets.main.roles = { bisman_app: { path: "bisman/db", key: "app_password" } };
    doc.digest = { slow_queries: 20 };
  });
  // Setting up wrote passwords in clear too; what matters is what happens from here on.
  await sql`select pg_stat_statements_reset()`;
  const tb = await startTestBot(cluster, {
    config,
    stateDb,
    env: {
      VAULT_ADDR: vault.addr,
      VAULT_TOKEN: vault.rootToken,
      DATABASE_URL: stateCluster.primary.url({ database: stateDb }),
    },
  });
  const answers: string[] = [];
  const secrets: Record<string, string> = {
    card: CARD,
    "card digits": CARD.replaceAll(" ", ""),
    md5: MD5_HASH,
    "initial root password": "vault-initial-pw",
  };
  let app: postgres.Sql | undefined;
  let idle: postgres.ReservedSql | undefined;
  try {
    await t.step("the bot rotates bisman_app: a SCRAM verifier in pg_stat_statements", async () => {
      const a = await ask(tb, "rotate bisman_app");
      assert.ok(a.id, a.text);
      assert.equal(await tb.click(ACTIONS.approve, a.id!, USERS.bob), 200);
      await tb.waitForState(a.id!, "succeeded");
      secrets["app password"] = vault.kvGet("bisman/db")!.data.app_password;
      const [{ rolpassword }] = await sql<{ rolpassword: string }[]>`
        select rolpassword from pg_authid where rolname = 'bisman_app'`;
      assert.match(rolpassword, /^SCRAM-SHA-256\$/);
      secrets["app verifier"] = rolpassword;
      secrets["app StoredKey"] = rolpassword.split("$")[2].split(":")[0];
    });

    await t.step(
      "a DBA sets a legacy md5 hash; the application writes a card number as a literal",
      async () => {
        await sql.unsafe(`create role legacy_md5 login password '${MD5_HASH}'`);
        app = postgres({
          host: "127.0.0.1",
          port: cluster.primary.port,
          database: db,
          username: "bisman_app",
          password: secrets["app password"],
          max: 2,
          onnotice: () => {},
        });
        await app.unsafe(`insert into public.card_payments values (1, 'Ann', '${CARD}')`);
        // A session left idle in its transaction: pg_stat_activity shows its last statement, literal and all.
        idle = await app.reserve();
        await idle.unsafe("begin");
        await idle.unsafe(`update public.card_payments set holder = 'Bob' where card_number = '${CARD}'`);
      },
    );

    await t.step("rotate root through Vault: the new root password is set in clear and logs in", async () => {
      const a = await ask(tb, "rotate root");
      assert.ok(a.id, a.text);
      assert.equal(await tb.click(ACTIONS.approve, a.id!, USERS.bob), 200);
      await tb.waitForState(a.id!, "succeeded");
      const root = vault.databasePassword("bisman")!;
      assert.notEqual(root, "vault-initial-pw");
      assert.equal(await login(cluster, "bisman_vault", root), true);
      secrets["root password"] = root;
      const [{ n }] = await sql<{ n: number }[]>`
        select count(*)::int as n from pg_stat_statements where query like ${"%" + root + "%"}`;
      assert.equal(n, 1, "pg_stat_statements holds the root password in clear: the leak this test is about");
    });

    await t.step("the weekly slow-query review shows the rotation statements masked", async () => {
      answers.push(await answerOf(tb, "run slow_query_review"));
      // The run's own answer comes through the response_url once the job is done: wait for it, so that the
      // next command's answer is not mistaken for it.
      await waitFor(
        () => tb.slack.responses.find((r) => /Job slow_query_review run \d+: ok/.test(String(r.body.text))),
        { timeoutMs: 20_000, what: "the run's answer" },
      );
      const review = await waitFor(
        () =>
          tb.slack.messages.find((m) =>
            m.channel === OPS_CHANNEL && /^Weekly slow-query review/.test(m.text ?? "")
          ),
        { timeoutMs: 20_000, what: "the review post" },
      );
      assert.match(JSON.stringify(review.blocks), /ALTER ROLE \\"bisman_vault\\" WITH PASSWORD '\?'/);
    });

    await t.step(
      "/bisman slow-queries shows both ALTER ROLE statements with '?' for the password",
      async () => {
        const a = await answerOf(tb, "slow-queries main limit=50");
        answers.push(a);
        assert.match(a, /ALTER ROLE "bisman_vault" WITH PASSWORD '\?'/);
        assert.match(a, /alter role "bisman_app" password '\?'/);
        assert.match(a, /create role legacy_md5 login password '\?'/);
      },
    );

    await t.step("the daily digest, posted to the ops channel, shows them masked", async () => {
      await tb.command("digest");
      const digest = await waitFor(
        () => tb.slack.messages.find((m) => m.channel === OPS_CHANNEL && /^Daily digest/.test(m.text ?? "")),
        { timeoutMs: 30_000, what: "the digest message" },
      );
      const shown = JSON.stringify(digest.blocks) + JSON.stringify(
        tb.slack.messages.filter((m) => m.thread_ts === digest.ts).map((m) => m.blocks),
      );
      assert.match(shown, /ALTER ROLE \\"bisman_vault\\" WITH PASSWORD '\?'/);
    });

    await t.step(
      "/bisman connections shows the idle session's statement with the card number masked",
      async () => {
        const a = await answerOf(tb, "connections main");
        answers.push(a);
        assert.match(a, /update public\.card_payments set holder = '\?' where card_number = '\?'/);
      },
    );

    await t.step(
      "/bisman audit and its CSV show the INSERT masked and the card column redacted",
      async () => {
        const a = await answerOf(tb, "audit main table=card_payments since=1h", USERS.bob);
        answers.push(a);
        assert.match(a, /card_number=\[redacted\]/);
        const before = tb.slack.files.length;
        answers.push(await answerOf(tb, "audit main table=card_payments since=1h format=csv", USERS.bob));
        const file = await waitFor(
          () => tb.slack.files.slice(before).find((f) => f.completed && /\.csv$/.test(f.filename)),
          { what: "the audit CSV" },
        );
        assert.match(file.content!, /insert into public\.card_payments values \(\?, '\?', '\?'\)/);
      },
    );

    await t.step("detect shows the hand-made DDL's statement masked; security-events answers", async () => {
      const detect = await answerOf(tb, "detect main", USERS.bob);
      answers.push(detect, await answerOf(tb, "security-events main", USERS.bob));
      // The DDL made by hand is evidence, its statement masked (security_events.details.query).
      assert.match(detect, /comment on table public\.card_payments is '\?'/);
    });

    await t.step("the audit-log export carries none of it", async () => {
      const before = tb.slack.files.length;
      answers.push(await answerOf(tb, "audit-log export", USERS.bob));
      const file = await waitFor(
        () => tb.slack.files.slice(before).find((f) => f.completed && /\.jsonl$/.test(f.filename)),
        { what: "the audit-log export" },
      );
      assert.ok(file.content!.split("\n").length > 5, "the export holds the rotations and commands");
    });

    await t.step(
      "nothing secret in any Slack call, file, answer, log line or the bot's state database",
      async () => {
        const state = stateCluster.primary.sql(stateDb);
        const tables = await state<{ t: string }[]>`
        select format('%I.%I', schemaname, tablename) as t from pg_tables where schemaname = 'bisman_ops'`;
        const dump: string[] = [];
        for (const { t: table } of tables) {
          const [{ j }] = await state.unsafe(`select coalesce(json_agg(x), '[]')::text as j from ${table} x`);
          dump.push(j);
        }
        const places: Record<string, string> = {
          "Slack calls": JSON.stringify([tb.slack.calls, tb.slack.responses]),
          "Slack files": JSON.stringify(tb.slack.files),
          "command answers": answers.join("\n"),
          "bot log": tb.logs.join("\n"),
          "state database": dump.join("\n"),
        };
        for (const [what, secret] of Object.entries(secrets)) {
          for (const [where, text] of Object.entries(places)) {
            assert.ok(!text.includes(secret), `the ${what} appears in the ${where}`);
          }
        }
        assert.ok(tb.logs.length > 0 && tb.slack.calls.length > 10, "there was something to search");
      },
    );

    await t.step(
      "pgaudit's own records of the same statements, masked, carry none of it either",
      async () => {
        const log = await cluster.primary.readLog();
        // A record starts at a line that is not a continuation (PostgreSQL indents those with a tab).
        const records = log.split(/\n(?!\t)/).filter((r) => r.includes("AUDIT: "));
        const raw = records.join("\n");
        assert.ok(raw.includes(CARD), "pgaudit logged the application's INSERT with the card number");
        const masked = records.map((r) => maskPgauditRecord(r)).join("\n");
        assert.match(
          masked,
          /AUDIT: SESSION,\d+,\d+,WRITE,INSERT,.*insert into public\.card_payments values/,
        );
        for (const [what, secret] of Object.entries(secrets)) {
          assert.ok(!masked.includes(secret), `the ${what} survives masking of the pgaudit records`);
        }
      },
    );
  } finally {
    if (idle) {
      await idle.unsafe("rollback").catch(() => {});
      idle.release();
    }
    await app?.end({ timeout: 2 });
    await tb.stop();
    await vault.stop();
    await sql.end();
  }
});

Deno.test("every quoting form PostgreSQL accepts for a password is masked as pg_stat_statements and pg_stat_activity record it", async (t) => {
  await using cluster = await startCluster({ name: "mask-forms", preload: ["pg_stat_statements"] });
  const sql = cluster.primary.sql();
  await sql`create extension pg_stat_statements`;
  // [statement, the password it sets]: each statement really sets that password, so the literal is one.
  const forms: [string, string][] = [
    [`ALTER ROLE p1 PASSWORD 'Zx1''q--/*Zx1'`, `Zx1'q--/*Zx1`],
    [`alter role p2 with encrypted password E'Zx2\\'q\\\\$$Zx2'`, `Zx2'q\\$$Zx2`],
    [`alter role p3 password $$Zx3'q"--Zx3$$`, `Zx3'q"--Zx3`],
    [`alter role p4 password $t$Zx4$$q$u$Zx4$t$`, `Zx4$$q$u$Zx4`],
    [`alter role p5 password U&'Zx5\\0041''Zx5'`, `Zx5A'Zx5`],
    [`ALTER/* ' */ROLE -- '\n p6 /* /* nested ' */ */ PASSWORD\n'Zx6Zx6'`, "Zx6Zx6"],
    [`SELECT 1; aLtEr UsEr p7 PaSsWoRd 'Zx7Zx7'; SELECT 2`, "Zx7Zx7"],
  ];
  for (let i = 1; i <= forms.length; i++) await sql.unsafe(`create role p${i} login`);
  await sql`select pg_stat_statements_reset()`;
  const conn = await sql.reserve();
  const [{ pid }] = await conn<{ pid: number }[]>`select pg_backend_pid() as pid`;
  /** pg_stat_activity's text of `conn`'s last statement, read from another session. */
  const lastStatement = async () =>
    (await sql<{ query: string }[]>`select query from pg_stat_activity where pid = ${pid}`)[0].query;
  const activity: string[] = [];
  try {
    await t.step("each statement sets the password it claims (the literal is real)", async () => {
      for (const [i, [statement, password]] of forms.entries()) {
        await conn.unsafe(statement);
        activity.push(await lastStatement());
        assert.equal(await login(cluster, `p${i + 1}`, password), true, statement);
      }
    });
    await t.step("a backslash-escaped quote under standard_conforming_strings = off", async () => {
      await conn.unsafe(`set standard_conforming_strings = off`);
      await conn.unsafe(`alter role p1 password 'Zx8\\'q Zx8 '`);
      activity.push(await lastStatement());
      assert.equal(await login(cluster, "p1", "Zx8'q Zx8 "), true);
      await conn.unsafe(`set standard_conforming_strings = on`);
    });
    await t.step("pg_stat_statements' text and pg_stat_activity's, masked, hold no password", async () => {
      const rows = await sql<{ query: string }[]>`
        select query from pg_stat_statements where query ~* 'password'`;
      assert.ok(rows.length >= forms.length, rows.map((r) => r.query).join("\n"));
      assert.ok(activity.some((q) => q.includes("Zx8")), "pg_stat_activity shows the statement in clear");
      for (const text of [...rows.map((r) => r.query), ...activity]) {
        const out = maskStatement(text);
        for (let k = 1; k <= 8; k++) assert.ok(!out.includes(`Zx${k}`), `${text}\n→ ${out}`);
      }
    });
  } finally {
    conn.release();
  }
});
