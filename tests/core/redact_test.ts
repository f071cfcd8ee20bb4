import assert from "node:assert/strict";
import { startCluster } from "../../standins/cluster.ts";
import { createBismanDatabase } from "../support/bisman_schema.ts";
import { startTestBot, testConfig, USERS } from "../support/bot.ts";
import { ask } from "../support/gate.ts";
import { waitFor } from "../../standins/wait.ts";
import { DEFAULT_SENSITIVE_COLUMNS, isSensitive, redactRow, sensitiveOf } from "../../core/redact.ts";

const r = { columns: ["password", "token", "iban"], mark: "[redacted]" };

Deno.test("isSensitive() matches configured name parts case-insensitively", () => {
  assert.equal(isSensitive("Password_Hash", r), true);
  assert.equal(isSensitive("api_token", r), true);
  assert.equal(isSensitive("IBAN", r), true);
  assert.equal(isSensitive("email", r), false);
  assert.deepEqual(sensitiveOf(["email", "password", "iban_country"], r), ["password", "iban_country"]);
  assert.ok(DEFAULT_SENSITIVE_COLUMNS.includes("card_number"));
});

Deno.test("redactRow() replaces sensitive values at any depth and leaves the rest (and nulls) alone", () => {
  const row = {
    id: 1,
    email: "a@b",
    password: "pw",
    meta: { api_token: "t", list: [{ iban: "NL91" }] },
    token: null,
  };
  assert.deepEqual(redactRow(row, r), {
    id: 1,
    email: "a@b",
    password: "[redacted]",
    meta: { api_token: "[redacted]", list: [{ iban: "[redacted]" }] },
    token: null,
  });
  assert.equal(row.password, "pw", "the input is not changed");
  assert.equal(redactRow(null, r), null);
});

Deno.test("/bisman audit shows old and new row data with sensitive columns redacted, in Slack and in the CSV", async (t) => {
  await using cluster = await startCluster({ name: "redact" });
  const { db, sql } = await createBismanDatabase(cluster, { rows: { clients: 5, invoices: 5 } });
  await sql.unsafe(`
    create table public.app_users (id int primary key, email text, password_hash text, card_number text,
                                   profile jsonb);
    create trigger audit_dml after insert or update or delete on public.app_users
      for each row execute function public.audit_dml();`);
  const secrets = ["SuperSecretHash123", "NewSecret456", "4111111111111111", "tok-999"];
  await sql`insert into public.app_users values (1, 'old@example.test', ${secrets[0]}, ${secrets[2]},
                                                 ${sql.json({ name: "Ann", api_token: secrets[3] })})`;
  await sql`update public.app_users set email = 'new@example.test', password_hash = ${
    secrets[1]
  } where id = 1`;
  await sql`delete from public.app_users where id = 1`;
  const config = testConfig(cluster, (doc) => {
    doc.targets.main.primary.database = db;
    doc.redaction = { sensitive_columns: ["password", "card_number", "token"], mark: "[redacted]" };
  });
  const tb = await startTestBot(cluster, { config });
  try {
    await t.step("the message shows what changed, never a sensitive value", async () => {
      const res = await ask(tb, "audit main table=app_users since=1h", USERS.bob);
      assert.equal(res.visibility, "ephemeral");
      for (const s of secrets) assert.ok(!res.text.includes(s), `${s} must not be shown`);
      assert.match(
        res.text,
        /email: old@example\.test → new@example\.test; password_hash: \[redacted\] → \[redacted\]/,
      );
      assert.match(res.text, /\+id=1, email=old@example\.test, .*card_number=\[redacted\]/);
      assert.match(res.text, /profile=\{"name":"Ann","api_token":"\[redacted\]"\}/);
      assert.match(res.text, /-id=1, .*password_hash=\[redacted\]/);
    });

    await t.step(
      "format=csv sends every row with its data, redacted, to the asker's direct messages",
      async () => {
        const res = await ask(tb, "audit main table=app_users since=1h format=csv", USERS.bob);
        assert.match(res.text, /app_users/);
        const file = await waitFor(
          () => tb.slack.files.find((f) => f.completed && /^bisman-audit-main-\d+\.csv$/.test(f.filename)),
          {
            what: "the CSV",
          },
        );
        assert.equal(file.channel, "D0BOB");
        const csv = file.content!;
        for (const s of secrets) assert.ok(!csv.includes(s), `${s} must not be in the CSV`);
        const lines = csv.trim().split("\r\n");
        assert.equal(lines.length, 4, "header and three rows");
        assert.match(lines[0], /^id,occurred_at,table,action,.*,changed,old_data,new_data,query$/);
        assert.match(csv, /""password_hash"":""\[redacted\]""/);
        assert.match(csv, /""email"":""new@example\.test""/);
      },
    );

    await t.step("the bot's own logs and Slack calls carry none of the values either", () => {
      const calls = JSON.stringify(tb.slack.calls) + JSON.stringify(tb.slack.responses) + tb.logs.join("\n");
      for (const s of secrets) assert.ok(!calls.includes(s), `${s} leaked`);
    });
  } finally {
    await tb.stop();
    await sql.end();
  }
});
