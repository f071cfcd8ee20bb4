import assert from "node:assert/strict";
import {
  LONG_NUMBER_DIGITS,
  maskPgauditRecord,
  maskSecretTokens,
  maskStatement,
} from "../../core/statement_mask.ts";
import { maskStatementFor, redactionOf, redactRow } from "../../core/redact.ts";
import { ConfigError, parseConfig } from "../../core/config.ts";
import { createLogger, Secrets } from "../../core/log.ts";
import { rng } from "../fuzz/_cases.ts";
import { renderAlertParent } from "../../views/alerts.ts";
import { redactDetails } from "../../ops/security_events.ts";

const VERIFIER =
  "SCRAM-SHA-256$4096:80N2VbUpUFOCthby2xpAKw==$XtS0DrJgFPzC/3X3iNxwdoWTFqgTdmcHxWO5YKMJuB8=:5XMwKV2sVMlWnDcy0fxO5ftexmYCriC94jMptESyUH4=";
const MD5 = "md5a3556571e93b0d20722ba62be61e8c2d";

function masks(input: string, expected: string, opts: { keepNumbers?: boolean } = {}) {
  assert.equal(maskStatement(input, opts), expected, `masking ${JSON.stringify(input)}`);
}

Deno.test("maskStatement() masks the password of every CREATE/ALTER ROLE, USER and GROUP form", () => {
  masks(`ALTER ROLE "bisman_vault" WITH PASSWORD 'n3w-r00t'`, `ALTER ROLE "bisman_vault" WITH PASSWORD '?'`);
  masks(
    "create user y with encrypted password 'zz' valid until 'infinity'",
    "create user y with encrypted password '?' valid until '?'",
  );
  masks("CREATE GROUP g PASSWORD 'x'", "CREATE GROUP g PASSWORD '?'");
  masks(`alter user "Odd ""Name""" password 'a''b c'`, `alter user "Odd ""Name""" password '?'`);
  masks(`alter role x password '${VERIFIER}'`, "alter role x password '?'");
  masks(`alter role x password '${MD5}'`, "alter role x password '?'");
  // Statements PostgreSQL refuses still show in pg_stat_activity: whatever follows PASSWORD goes.
  masks("ALTER ROLE x PASSWORD hunter2", "ALTER ROLE x PASSWORD '?'");
  masks(`ALTER ROLE x PASSWORD "hunter2"`, "ALTER ROLE x PASSWORD '?'");
  masks("ALTER ROLE x PASSWORD 12345678", "ALTER ROLE x PASSWORD '?'", { keepNumbers: true });
  masks(`ALTER ROLE x PASSWORD ${VERIFIER}`, "ALTER ROLE x PASSWORD '?'");
  masks("ALTER ROLE x PASSWORD = 'a'", "ALTER ROLE x PASSWORD = '?'");
  // NULL and a bind parameter carry no password.
  masks("ALTER ROLE x PASSWORD NULL", "ALTER ROLE x PASSWORD NULL");
  masks("alter role z password $1", "alter role z password $1");
  // Elsewhere "password" is a column name and the word after it stays.
  masks("select password from users where id = $1", "select password from users where id = $1");
});

Deno.test("maskStatement() masks every literal form PostgreSQL reads, and keeps identifiers, keywords and parameters", () => {
  masks(
    "insert into cards (id, pan, cvv, note) values (7, '4111 1111 1111 1111', 123, $1)",
    "insert into cards (id, pan, cvv, note) values (?, '?', ?, $1)",
  );
  masks(`select E'it\\'s \\\\ ''x''', e'\\x41'`, "select '?', '?'");
  masks("select $$a 'b' \"c\"$$, $fn$ body $$ inner $$ $fn$", "select '?', '?'");
  masks("select U&'d\\0061t''a' UESCAPE '!', u&\"ident\"", `select '?' UESCAPE '?', u&"ident"`);
  masks("select B'0101', X'ff', N'nchar', n'x'", "select '?', '?', '?', '?'");
  masks("select 1, 2.5, .5e-3, 1e10, 0x1F, 1_000_000", "select ?, ?, ?, ?, ?, ?");
  masks("select 42, 4111111111111111, 3.14", `select 42, ?, 3.14`, { keepNumbers: true });
  masks(`select "Tab""le".col, a$$b$$, $2 from t`, `select "Tab""le".col, a$$b$$, $2 from t`);
  masks("select 'unterminated", "select '?'");
});

Deno.test("maskStatement() follows PostgreSQL's lexer where a pattern would be tricked", async (t) => {
  await t.step("comments between the words, quotes inside comments, comment markers inside literals", () => {
    masks(`ALTER/**/ROLE/* x */"r"/*'*/PASSWORD/*"*/'s3cret'`, `ALTER/*?*/ROLE/*?*/"r"/*?*/PASSWORD/*?*/'?'`);
    masks("alter role r -- it's\npassword 's3cret'", "alter role r --?\npassword '?'");
    masks("select '/* not a comment', 'x -- y' from t", "select '?', '?' from t");
  });
  await t.step("nested block comments end where PostgreSQL ends them", () => {
    masks("select /* a /* b */ 'in comment' */ 'lit', x", "select /*?*/ '?', x");
  });
  await t.step("a dollar quote ends only at its own tag; an identifier may hold $", () => {
    masks("alter role x password $t$se$$c$u$ret$t$ ok", "alter role x password '?' ok");
    masks("select x$$y, $q$ 'not closed", "select x$$y, '?'");
  });
  await t.step("a backslash before a quote is masked under either standard_conforming_strings", () => {
    // on: 'se\' is one literal and the rest is code; off: the literal runs to the last quote.
    const out = maskStatement("alter role x password 'se\\' s3cret '");
    assert.ok(!out.includes("s3cret"), out);
    const sel = maskStatement("select 'a\\', 'b', hunter2 '");
    assert.ok(!sel.includes("hunter2"), sel);
  });
  await t.step("several statements, mixed case, the role rule resets at each semicolon", () => {
    masks(
      "SELECT 1; aLtEr UsEr X pAsSwOrD hunter2; select password from t",
      "SELECT ?; aLtEr UsEr X pAsSwOrD '?'; select password from t",
    );
  });
  await t.step("text cut short inside a literal, a comment or a dollar quote", () => {
    masks("ALTER ROLE x PASSWORD 'SCRAM-SHA-256$4096:abc", "ALTER ROLE x PASSWORD '?'");
    masks("select /* half a comm", "select /*?*/");
    masks("select $body$ 4111 1111", "select '?'");
    masks("ALTER ROLE x PASSWORD E'abc\\", "ALTER ROLE x PASSWORD '?'");
  });
  await t.step("verifiers and md5 hashes outside any literal", () => {
    masks(`select "${MD5}" from t`, `select "'?'" from t`);
    assert.ok(!maskStatement(`comment on role x is ${VERIFIER}`).includes("XtS0Dr"));
  });
});

Deno.test("maskStatement() is idempotent and accepts anything", () => {
  const inputs = [
    `ALTER ROLE x PASSWORD '${VERIFIER}'; select 1 /* c */ -- d`,
    "CREATE USER test1 WITH PASSWORD <REDACTED>",
    "",
    "'",
    '"',
    "$",
    "$$",
    "/*",
    "--",
    "\u0000\ud800 é ß $é$x$é$",
  ];
  for (const s of inputs) {
    const once = maskStatement(s);
    assert.equal(maskStatement(once), once, JSON.stringify(s));
  }
});

Deno.test("maskSecretTokens() removes verifiers and md5 hashes from free text, and is idempotent", () => {
  const text = `rolpassword=${VERIFIER} and ${MD5.toUpperCase()}; md5 of the dump: 0123`;
  const out = maskSecretTokens(text);
  assert.equal(out, "rolpassword=[redacted SCRAM verifier] and [redacted md5 hash]; md5 of the dump: 0123");
  assert.equal(maskSecretTokens(out), out);
});

Deno.test("maskPgauditRecord() unquotes pgaudit's CSV before masking the statement, and drops parameters", () => {
  assert.equal(
    maskPgauditRecord(
      `2025-01-02 LOG:  AUDIT: SESSION,3,1,WRITE,INSERT,TABLE,public.cards,"insert into cards values (1, '4111, 1111', ""x"")","4111 1111,$1"`,
    ),
    `2025-01-02 LOG:  AUDIT: SESSION,3,1,WRITE,INSERT,TABLE,public.cards,"insert into cards values (?, '?', ""x"")",'?'`,
  );
  assert.equal(
    maskPgauditRecord(
      "LOG:  AUDIT: SESSION,1,1,DDL,CREATE USER MAPPING,USER MAPPING,x,CREATE USER MAPPING FOR x SERVER s OPTIONS (password 'fdw-pw');,<not logged>",
    ),
    "LOG:  AUDIT: SESSION,1,1,DDL,CREATE USER MAPPING,USER MAPPING,x,CREATE USER MAPPING FOR x SERVER s OPTIONS (password '?');,<not logged>",
  );
  // Cut short inside the quoted statement: what is there is still read as SQL.
  assert.equal(
    maskPgauditRecord(`LOG:  AUDIT: SESSION,1,1,ROLE,ALTER ROLE,,,"ALTER ROLE x PASSWORD 'abc, d`),
    `LOG:  AUDIT: SESSION,1,1,ROLE,ALTER ROLE,,,ALTER ROLE x PASSWORD '?'`,
  );
  assert.equal(maskPgauditRecord("not an audit line 'x'"), "not an audit line '?'");
});

Deno.test("redaction.statement_numbers: mask by default, keep on request, and a bad value names the key", () => {
  const doc = {
    workspace: { team_id: "T0TEST" },
    slack: { ops_channel: "C0OPS" },
    access: { operators: { users: ["U0ALICE"] }, approvers: { users: ["U0BOB"] } },
    targets: { prod: { primary: { host: "db", user: "bisman_ops", password_env: "PW" } } },
  };
  const masked = redactionOf(parseConfig(doc));
  assert.equal(maskStatementFor("select 42, 'x'", masked), "select ?, '?'");
  const kept = redactionOf(parseConfig({ ...doc, redaction: { statement_numbers: "keep" } }));
  assert.equal(maskStatementFor("select 42, 'x'", kept), "select 42, '?'");
  assert.equal(maskStatementFor(`select ${"4".repeat(LONG_NUMBER_DIGITS)}`, kept), "select ?");
  assert.throws(
    () => parseConfig({ ...doc, redaction: { statement_numbers: "show" } }, "x.yaml"),
    (e: ConfigError) => e.problems.some((p) => p.startsWith("redaction.statement_numbers:")),
  );
});

Deno.test("redactRow() masks verifiers in values of columns that are not named sensitive", () => {
  const r = { columns: ["password"], mark: "[redacted]" };
  assert.deepEqual(redactRow({ note: `old ${MD5}`, meta: [VERIFIER] }, r), {
    note: "old [redacted md5 hash]",
    meta: ["[redacted SCRAM verifier]"],
  });
});

Deno.test("Secrets.scrub() and every log line mask verifiers no registry knows", () => {
  const secrets = new Secrets();
  const lines: string[] = [];
  createLogger(secrets, { sink: (l) => lines.push(l) }).warn("rotated", {
    statement: `PASSWORD '${VERIFIER}'`,
  });
  assert.equal(lines.length, 1);
  assert.ok(!lines[0].includes("XtS0Dr"), lines[0]);
  assert.ok(JSON.parse(lines[0]).statement.includes("[redacted SCRAM verifier]"));
});

// --- property: for generated hostile statements, the masked text never holds the secret ---------------------

type Rng = () => number;
const pick = <T>(r: Rng, xs: readonly T[]): T => xs[Math.floor(r() * xs.length)];

/** A secret unlike any keyword: upper-case letters and digits, with a marker that placeholders never hold. */
function secretOf(r: Rng): string {
  const abc = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
  let s = "QZ";
  for (let i = 0; i < 14; i++) s += abc[Math.floor(r() * abc.length)];
  return s;
}

/** Noise a hostile writer puts around the secret inside a literal: quotes, comment and dollar markers. */
const INSIDE = ["", " ", "''", '"', "--", "/*", "*/", "$", "$$", "$x$", ";", "\n", "\\\\", "é", ", "];

/** The secret written as a literal of one of PostgreSQL's forms (what the generator claims is a literal). */
function literalOf(r: Rng, secret: string): { text: string; reading: "on" | "off" | "any" } {
  const a = pick(r, INSIDE);
  const b = pick(r, INSIDE);
  const plain = (s: string) => s.replaceAll("\\\\", "").replaceAll("'", "''");
  switch (Math.floor(r() * 8)) {
    case 0:
      return { text: `'${plain(a)}${secret}${plain(b)}'`, reading: "any" };
    case 1: {
      const esc = (s: string) => s.replaceAll("'", "\\'");
      return { text: `${pick(r, ["E", "e"])}'${esc(a)}${secret}${esc(b)}'`, reading: "any" };
    }
    case 2: {
      const tag = pick(r, ["", "q", "body", "_x1"]);
      const clean = (s: string) => (tag === "" ? s.replaceAll("$", "") : s.replaceAll(`$${tag}$`, ""));
      return { text: `$${tag}$${clean(a)}${secret}${clean(b)}$${tag}$`, reading: "any" };
    }
    case 3:
      return { text: `${pick(r, ["U&", "u&"])}'${plain(a)}${secret}${plain(b)}'`, reading: "any" };
    case 4:
      return { text: `${pick(r, ["N", "n"])}'${plain(a)}${secret}${plain(b)}'`, reading: "any" };
    case 5:
      // Written for standard_conforming_strings = off: \' is a quote inside the literal.
      return {
        text: `'${a.replaceAll("'", "\\'")}\\'${secret}\\'${b.replaceAll("'", "\\'")}'`,
        reading: "off",
      };
    case 6:
      return { text: `'${plain(a)}SCRAM-SHA-256$4096:${secret}==$${secret}=:${secret}='`, reading: "any" };
    default:
      return { text: `'${secret.slice(0, 3)}''${secret.slice(3)}'`, reading: "any" };
  }
}

const GAPS = [" ", "  ", "\t", "\n", " /* ' */ ", "/*x/*y*/z*/", " -- ' $$\n", "\r\n", "\f"];
const gap = (r: Rng) => pick(r, GAPS);
const cased = (r: Rng, w: string) =>
  [...w].map((c) => (r() < 0.5 ? c.toUpperCase() : c.toLowerCase())).join("");

/** One generated statement text holding `secret` where PostgreSQL would read a literal or a password. */
function statementOf(r: Rng, secret: string): string {
  const lit = literalOf(r, secret).text;
  const role = pick(r, ["bisman_app", `"bisman_vault"`, `"Odd ""x"""`, "u1"]);
  const before = pick(r, ["", "select 1;", "begin;", "/* app */", "select 'a'';--';"]);
  const after = pick(r, ["", " valid until 'infinity'", "; select 2", " login", ";"]);
  switch (Math.floor(r() * 5)) {
    case 0:
    case 1: {
      const verb = `${cased(r, pick(r, ["create", "alter"]))}${gap(r)}${
        cased(r, pick(r, ["role", "user", "group"]))
      }`;
      const w = r() < 0.5 ? `${gap(r)}${cased(r, "with")}` : "";
      const enc = r() < 0.3 ? `${gap(r)}${cased(r, "encrypted")}` : "";
      const pw = r() < 0.15 ? pick(r, [secret, `"${secret}"`]) : lit; // a bare word: refused, but shown
      return `${before}${gap(r)}${verb}${gap(r)}${role}${w}${enc}${gap(r)}${cased(r, "password")}${
        gap(r)
      }${pw}${after}`;
    }
    case 2:
      return `${before}${gap(r)}insert into cards (pan, n) values (${lit},${gap(r)}42)${after}`;
    case 3:
      return `${before}select * from t where a = ${lit}${gap(r)}and b = ${lit}${after}`;
    default:
      return `${before}${gap(r)}/* ${secret.replaceAll("*/", "")} */ select 1 --${secret}\n${after}`;
  }
}

Deno.test("maskStatement() never lets a generated secret through: 3,000 seeded hostile statements, whole and cut short", () => {
  const seed = Number(Deno.env.get("MASK_FUZZ_SEED") ?? 20250116);
  const r = rng(seed);
  for (let i = 0; i < 3000; i++) {
    const secret = secretOf(r);
    const full = statementOf(r, secret);
    const cut = r() < 0.4 ? full.slice(0, Math.floor(r() * (full.length + 1))) : full;
    for (const keepNumbers of [false, true]) {
      const out = maskStatement(cut, { keepNumbers });
      // No 5 characters in a row of the secret survive (a cut may leave only its beginning).
      for (let k = 0; k + 5 <= secret.length; k++) {
        const part = secret.slice(k, k + 5);
        assert.ok(
          !out.includes(part),
          `seed ${seed} case ${i}: ${JSON.stringify(part)} of the secret survives\n  in:  ${
            JSON.stringify(cut)
          }\n  out: ${JSON.stringify(out)}`,
        );
      }
      assert.equal(maskStatement(out, { keepNumbers }), out, `seed ${seed} case ${i}: not idempotent`);
    }
  }
});

Deno.test("renderAlertParent() masks a query label (postgres_exporter's include_query) and verifiers in any label", () => {
  const body = renderAlertParent({
    fingerprint: "0123456789abcdef",
    alertname: "SlowQueries",
    status: "firing",
    labels: { instance: "db:9187", query: `update cards set pan = '${"4111 1111 1111 1111"}' where id = 7` },
    annotations: { summary: "Mean query time 2s", detail: `rolpassword ${MD5}` },
    startsAt: "2025-01-02T03:04:05Z",
    endsAt: null,
    source: "alertmanager",
  }, []);
  const shown = JSON.stringify(body);
  assert.ok(!shown.includes("4111 1111"), shown);
  assert.ok(!shown.includes(MD5), shown);
  assert.match(shown, /update cards set pan = '\?' where id = \?/);
});

Deno.test("redactDetails() masks a security event's statement and its sensitive keys", () => {
  const r = { columns: ["password", "token"], mark: "[redacted]" };
  assert.deepEqual(
    redactDetails({
      command_tag: "COMMENT",
      query: "comment on table t is 'card 4111 1111 1111 1111'; alter role x password E'a\\'b'",
      api_token: "tok-1",
    }, r),
    {
      command_tag: "COMMENT",
      query: "comment on table t is '?'; alter role x password '?'",
      api_token: "[redacted]",
    },
  );
});
