import assert from "node:assert/strict";
import { parseCliUrl, pgpassLookup, pickCliUrl } from "../../cli/connect.ts";

Deno.test("cli/connect pickCliUrl() takes --db, then BISMAN_CLI_DATABASE_URL, and never DATABASE_URL", () => {
  assert.deepEqual(pickCliUrl({ db: "postgres://a@h/d" }, { BISMAN_CLI_DATABASE_URL: "postgres://b@h/d" }), {
    url: "postgres://a@h/d",
    from: "--db",
  });
  assert.equal(
    pickCliUrl({ envFile: "f.env" }, { BISMAN_CLI_DATABASE_URL: "postgres://b@h/d" }).from,
    "BISMAN_CLI_DATABASE_URL in f.env",
  );
  assert.throws(
    () => pickCliUrl({}, { DATABASE_URL: "postgres://bisman_ops:secret@h/d" }),
    (e: Error) => /DATABASE_URL is the bot's own login/.test(e.message) && !e.message.includes("secret"),
  );
});

Deno.test("cli/connect parseCliUrl() reads libpq's URL: user, database, port, socket, TLS files", () => {
  const c = parseCliUrl("postgres://alice:p%40ss@db.example:6543/bisman_ops?connect_timeout=3");
  assert.deepEqual(
    {
      host: c.host,
      port: c.port,
      user: c.user,
      password: c.password,
      database: c.database,
      ssl: c.ssl,
      t: c.connectTimeout,
    },
    {
      host: "db.example",
      port: 6543,
      user: "alice",
      password: "p@ss",
      database: "bisman_ops",
      ssl: "prefer",
      t: 3,
    },
  );
  const sock = parseCliUrl("postgres:///state?host=/var/run/postgresql", { USER: "bob" });
  assert.equal(sock.path, "/var/run/postgresql/.s.PGSQL.5432");
  assert.equal(
    sock.user,
    "bob",
    "peer authentication: the server checks the OS login; this only names the role",
  );
  assert.equal(sock.ssl, false);
  const files: Record<string, string> = { "/ca.pem": "CA", "/me.crt": "CERT", "/me.key": "KEY" };
  const key = Deno.makeTempFileSync();
  Deno.chmodSync(key, 0o600);
  files[key] = "KEY";
  const tls = parseCliUrl(
    `postgres://alice@db.example/s?sslmode=verify-full&sslrootcert=/ca.pem&sslcert=/me.crt&sslkey=${key}`,
    {},
    (p) => files[p],
  );
  assert.deepEqual(tls.ssl, {
    rejectUnauthorized: true,
    ca: "CA",
    cert: "CERT",
    key: "KEY",
  });
  Deno.chmodSync(key, 0o644);
  assert.throws(
    () =>
      parseCliUrl(`postgres://alice@h/s?sslmode=require&sslcert=/me.crt&sslkey=${key}`, {}, (p) => files[p]),
    /has group or world access/,
  );
  Deno.removeSync(key);
  assert.throws(() => parseCliUrl("postgres://alice@h/s?sslmode=verify-full"), /needs sslrootcert/);
  assert.throws(
    () => parseCliUrl("postgres://alice@h/s?options=-c%20role%3Dbob"),
    /parameter options, which it does not use/,
  );
  assert.throws(() => parseCliUrl("mysql://alice@h/s"), /must start with postgres:\/\//);
  assert.throws(() => parseCliUrl("postgres://h/s"), /names no user/);
});

Deno.test("cli/connect pgpassLookup() matches libpq's .pgpass lines, wildcards and escapes", () => {
  const text = [
    "# comment",
    "other.host:5432:*:alice:nope",
    "db.example:5432:bisman_ops:alice:first\\:match",
    "*:*:*:alice:fallback",
  ].join("\n");
  const c = { host: "db.example", port: 5432, database: "bisman_ops", user: "alice" };
  assert.equal(pgpassLookup(text, c), "first:match");
  assert.equal(pgpassLookup(text, { ...c, database: "x" }), "fallback");
  assert.equal(pgpassLookup(text, { ...c, user: "bob" }), undefined);
});
