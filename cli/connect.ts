/**
 * The break-glass CLI's own connection to the state database, as the person typing: their PostgreSQL login
 * (a member of `bisman_cli`), never the bot's `DATABASE_URL`. PostgreSQL authenticates it (a password typed at
 * the prompt or found in their own `PGPASSFILE`, a client certificate, or peer authentication on a local
 * socket), and the bot takes `session_user` of this connection as who typed the command.
 *
 * The URL is libpq's: `postgres://alice@db.example/bisman_ops?sslmode=verify-full&sslrootcert=ca.pem`, with
 * `sslcert`/`sslkey` for a client certificate and `host=/var/run/postgresql` for a Unix socket.
 *
 * @module
 */

import postgres, { type Sql } from "postgres";
import { OpsError } from "../core/errors.ts";

/** The environment variable holding the person's own URL. */
export const CLI_URL_ENV = "BISMAN_CLI_DATABASE_URL";
/** The group role every CLI person belongs to (sql/0009_cli_inbox.sql). */
export const CLI_GROUP = "bisman_cli";

/** Where the CLI's URL came from, for messages. */
export interface CliUrl {
  url: string;
  from: string;
}

/** Picks the URL: `--db`, else `BISMAN_CLI_DATABASE_URL` (from `--env-file` or the environment). */
export function pickCliUrl(
  opts: { db?: string; envFile?: string },
  env: Record<string, string | undefined>,
): CliUrl {
  if (opts.db) return { url: opts.db, from: "--db" };
  const url = env[CLI_URL_ENV];
  if (url) return { url, from: opts.envFile ? `${CLI_URL_ENV} in ${opts.envFile}` : CLI_URL_ENV };
  const bot = env.DATABASE_URL
    ? " DATABASE_URL is the bot's own login and the CLI does not use it: a command typed with it would be " +
      "nobody's."
    : "";
  throw new OpsError(
    "invalid_input",
    `Which database login are you? Set ${CLI_URL_ENV} to your own role on the bot's state database ` +
      `(postgres://<you>@<host>/<database>), or pass --db <url> or --env-file <file> (the sandbox writes ` +
      `.data/cli-<person>.env).${bot} README "The break-glass CLI" says how an admin creates your role.`,
  );
}

/** TLS settings for postgres.js (node:tls options), or a mode name, or off. */
export type CliSsl = false | "prefer" | "require" | Record<string, unknown>;

/** A parsed CLI URL. */
export interface CliConnection {
  host: string;
  /** A Unix socket path (`host=/dir`); then `host` is only used for `.pgpass` ("localhost"). */
  path?: string;
  port: number;
  database: string;
  user: string;
  password?: string;
  ssl: CliSsl;
  connectTimeout: number;
}

const KNOWN = new Set(["sslmode", "sslrootcert", "sslcert", "sslkey", "connect_timeout", "host", "port"]);

function keyFileOk(path: string, what: string): void {
  let mode: number | null;
  try {
    mode = Deno.statSync(path).mode;
  } catch (err) {
    throw new OpsError(
      "invalid_input",
      `Cannot read ${what} ${path}: ${err instanceof Error ? err.message : err}`,
    );
  }
  // libpq refuses a private key others may read; so does the CLI.
  if (mode !== null && (mode & 0o077) !== 0) {
    throw new OpsError(
      "invalid_input",
      `${what} ${path} has group or world access: make it readable by you only (chmod 600)`,
    );
  }
}

/**
 * Parses a libpq-style URL into connection settings, reading certificate files it names.
 * @throws {OpsError} `invalid_input` naming the part that is wrong
 */
export function parseCliUrl(
  url: string,
  env: Record<string, string | undefined> = {},
  readFile: (path: string) => string = (p) => Deno.readTextFileSync(p),
): CliConnection {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new OpsError(
      "invalid_input",
      "The CLI's database URL is not a URL: postgres://<you>@<host>/<database>",
    );
  }
  if (u.protocol !== "postgres:" && u.protocol !== "postgresql:") {
    throw new OpsError(
      "invalid_input",
      `The CLI's database URL must start with postgres://, not ${u.protocol}//`,
    );
  }
  for (const k of u.searchParams.keys()) {
    if (!KNOWN.has(k)) {
      throw new OpsError(
        "invalid_input",
        `The CLI's database URL has parameter ${k}, which it does not use (known: ${[...KNOWN].join(", ")})`,
      );
    }
  }
  const q = (k: string) => u.searchParams.get(k) ?? undefined;
  const hostParam = q("host");
  const socketDir = hostParam?.startsWith("/") ? hostParam : undefined;
  const host = socketDir ? "localhost" : decodeURIComponent(u.hostname) || hostParam || "localhost";
  const port = Number(u.port || q("port") || 5432);
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw new OpsError(
      "invalid_input",
      `The CLI's database URL has port ${u.port || q("port")}, not a port number`,
    );
  }
  const user = decodeURIComponent(u.username) || env.PGUSER || env.USER || env.LOGNAME || "";
  if (!user) {
    throw new OpsError("invalid_input", "The CLI's database URL names no user: postgres://<you>@\u2026");
  }
  const database = decodeURIComponent(u.pathname.replace(/^\//, "")) || user;
  const mode = q("sslmode") ?? (socketDir ? "disable" : "prefer");
  const modes = ["disable", "allow", "prefer", "require", "verify-ca", "verify-full"];
  if (!modes.includes(mode)) {
    throw new OpsError("invalid_input", `sslmode=${mode} is not one of ${modes.join(", ")}`);
  }
  const rootcert = q("sslrootcert");
  const cert = q("sslcert");
  const key = q("sslkey");
  if ((cert && !key) || (key && !cert)) {
    throw new OpsError("invalid_input", "A client certificate needs both sslcert and sslkey");
  }
  let ssl: CliSsl = mode === "disable" ? false : mode === "require" ? "require" : "prefer";
  if (mode === "disable" && (cert || rootcert)) {
    throw new OpsError("invalid_input", "sslmode=disable with a certificate: drop one of them");
  }
  if (mode.startsWith("verify") || cert || rootcert) {
    const read = (p: string, what: string) => {
      try {
        return readFile(p);
      } catch (err) {
        throw new OpsError(
          "invalid_input",
          `Cannot read ${what} ${p}: ${err instanceof Error ? err.message : err}`,
        );
      }
    };
    if (key) keyFileOk(key, "the client key (sslkey)");
    const verify = mode.startsWith("verify") || (mode === "require" && !!rootcert);
    if (mode.startsWith("verify") && !rootcert) {
      throw new OpsError("invalid_input", `sslmode=${mode} needs sslrootcert=<CA file> to verify the server`);
    }
    ssl = {
      rejectUnauthorized: verify,
      ...(rootcert ? { ca: read(rootcert, "the CA file (sslrootcert)") } : {}),
      ...(cert
        ? { cert: read(cert, "the client certificate (sslcert)"), key: read(key!, "the client key (sslkey)") }
        : {}),
      // verify-ca checks the chain only; verify-full also the host name (node:tls's default; postgres.js
      // passes the host as the TLS server name unless it is an IP address).
      ...(mode === "verify-ca" ? { checkServerIdentity: () => undefined } : {}),
    };
  }
  const timeout = Number(q("connect_timeout") ?? 10);
  return {
    host,
    ...(socketDir ? { path: `${socketDir}/.s.PGSQL.${port}` } : {}),
    port,
    database,
    user,
    ...(u.password ? { password: decodeURIComponent(u.password) } : {}),
    ssl,
    connectTimeout: Number.isFinite(timeout) && timeout > 0 ? timeout : 10,
  };
}

/**
 * The password for a connection from a `.pgpass` file's text (libpq's format: `host:port:db:user:password`,
 * `*` matches anything, `\:` and `\\` escape), or undefined.
 */
export function pgpassLookup(
  text: string,
  c: Pick<CliConnection, "host" | "port" | "database" | "user">,
): string | undefined {
  for (const line of text.split("\n")) {
    if (!line.trim() || line.startsWith("#")) continue;
    const fields: string[] = [];
    let cur = "";
    for (let i = 0; i < line.length; i++) {
      const ch = line[i];
      if (ch === "\\" && i + 1 < line.length) cur += line[++i];
      else if (ch === ":" && fields.length < 4) {
        fields.push(cur);
        cur = "";
      } else cur += ch;
    }
    fields.push(cur.replace(/\r$/, ""));
    if (fields.length !== 5) continue;
    const [h, p, d, u, pw] = fields;
    const match = (pattern: string, value: string) => pattern === "*" || pattern === value;
    if (match(h, c.host) && match(p, String(c.port)) && match(d, c.database) && match(u, c.user)) return pw;
  }
  return undefined;
}

/** The person's `.pgpass` (PGPASSFILE or ~/.pgpass) as libpq reads it: ignored when others may read it. */
function readPgpass(
  env: Record<string, string | undefined>,
  warn: (line: string) => void,
): string | undefined {
  const path = env.PGPASSFILE ?? (env.HOME ? `${env.HOME}/.pgpass` : undefined);
  if (!path) return undefined;
  try {
    const mode = Deno.statSync(path).mode;
    if (mode !== null && (mode & 0o077) !== 0) {
      warn(`Ignoring ${path}: it has group or world access (chmod 600 it), as libpq does`);
      return undefined;
    }
    return Deno.readTextFileSync(path);
  } catch {
    return undefined;
  }
}

/** An open CLI connection and who PostgreSQL says is on it. */
export interface CliSession {
  sql: Sql;
  /** `session_user`: the login that authenticated. */
  login: string;
  close(): Promise<void>;
}

/**
 * Connects as the person and checks they are a CLI user (`bisman_cli` member).
 * @param ask asks for the password at a terminal, when the server wants one and nothing else has it
 * @throws {OpsError} `not_permitted` when PostgreSQL refuses the login or the role is not in bisman_cli,
 * `invalid_input` for a bad URL, `internal` when the database does not answer
 */
export async function connectCli(
  target: CliUrl,
  opts: {
    env: Record<string, string | undefined>;
    ask?: (question: string) => Promise<string>;
    warn: (line: string) => void;
  },
): Promise<CliSession> {
  const c = parseCliUrl(target.url, opts.env);
  let asked = false;
  // postgres.js calls this from a handler whose promise nobody awaits: a throw would end the process as an
  // unhandled rejection. So a failure is kept here, an empty password goes to the server (which refuses
  // it), and the kept failure is what the person is told.
  let passwordFailure: OpsError | undefined;
  const password = async () => {
    try {
      return await findPassword();
    } catch (err) {
      passwordFailure = err instanceof OpsError
        ? err
        : new OpsError("not_permitted", `No password: ${err instanceof Error ? err.message : err}`);
      return "";
    }
  };
  const findPassword = async () => {
    if (c.password !== undefined) return c.password;
    if (opts.env.PGPASSWORD) return opts.env.PGPASSWORD;
    const pgpass = readPgpass(opts.env, opts.warn);
    const found = pgpass === undefined ? undefined : pgpassLookup(pgpass, c);
    if (found !== undefined) return found;
    if (!opts.ask) {
      throw new OpsError(
        "not_permitted",
        `The state database asks for ${c.user}'s password: run the CLI at a terminal to type it, or put it in ` +
          `your own PGPASSFILE (~/.pgpass, mode 600)`,
      );
    }
    asked = true;
    return await opts.ask(`Password for ${c.user} on ${c.host}:${c.port}/${c.database}: `);
  };
  const sql = postgres({
    host: c.host,
    port: c.port,
    ...(c.path ? { path: c.path } : {}),
    database: c.database,
    username: c.user,
    pass: password,
    ssl: c.ssl as never,
    max: 1,
    connect_timeout: c.connectTimeout,
    idle_timeout: 0,
    max_lifetime: 0,
    fetch_types: false,
    onnotice: () => {},
    connection: { application_name: "bisman-ops-cli" },
  });
  const close = () => sql.end({ timeout: 2 }).catch(() => undefined);
  try {
    const [me] = await sql<{ login: string; group: boolean }[]>`
      select session_user::text as login,
             exists (select 1 from pg_roles where rolname = ${CLI_GROUP}) as group`;
    if (!me.group) {
      throw new OpsError(
        "not_configured",
        `The state database has no ${CLI_GROUP} role: the bot's migrations have not run there, or could not ` +
          `create it (an admin runs CREATE ROLE ${CLI_GROUP} NOLOGIN, then restarts the bot)`,
      );
    }
    const [m] = await sql<
      { member: boolean }[]
    >`select pg_has_role(session_user, ${CLI_GROUP}, 'member') as member`;
    if (!m.member) {
      throw new OpsError(
        "not_permitted",
        `You are logged in to the state database as ${me.login}, which is not a CLI user: an admin runs ` +
          `GRANT ${CLI_GROUP} TO ${me.login} (the CLI never works with the bot's own login, DATABASE_URL)`,
      );
    }
    return { sql, login: me.login, close };
  } catch (err) {
    await close();
    throw passwordFailure ?? connectError(err, c, target, asked);
  }
}

function connectError(err: unknown, c: CliConnection, target: CliUrl, asked: boolean): OpsError {
  if (err instanceof OpsError) return err;
  const e = err as { code?: string; message?: string };
  const where = `${c.user}@${c.path ?? `${c.host}:${c.port}`}/${c.database} (from ${target.from})`;
  // 28P01 invalid_password, 28000 invalid_authorization_specification (no pg_hba line, peer mismatch).
  if (e.code === "28P01" || e.code === "28000") {
    return new OpsError(
      "not_permitted",
      `The state database refused the login ${where}: ${e.message}` +
        (asked
          ? ""
          : " (a password comes from the URL, PGPASSWORD, your PGPASSFILE, or the prompt at a terminal)"),
      { cause: err },
    );
  }
  if (e.code === "3D000") {
    return new OpsError("invalid_input", `The state database ${where} does not exist: ${e.message}`, {
      cause: err,
    });
  }
  // node:tls's verification failures (an unknown CA, a name that does not match): not an outage.
  if (
    /certificate|self[- ]signed|altnames|verify/i.test(e.message ?? "") ||
    String(e.code ?? "").startsWith("ERR_TLS")
  ) {
    return new OpsError(
      "not_permitted",
      `The state database ${where} did not prove who it is (TLS): ${e.message}. Check sslrootcert and the host name`,
      { cause: err },
    );
  }
  return new OpsError(
    "unreachable",
    `The state database ${where} does not answer: ${e.message ?? String(err)}`,
    { cause: err },
  );
}
