/**
 * Throwaway PostgreSQL clusters for tests.
 *
 * Every call to {@link startCluster} initdb's a brand-new primary (and optionally a streaming
 * replica made with `pg_basebackup -R`) in its own temp folder under /tmp, on its own free port
 * and its own unix-socket folder, so several clusters can run side by side in one test process.
 *
 * Always stop the cluster, even when the test fails:
 *
 * ```ts
 * const c = await startCluster({ replica: true });
 * try {
 *   const db = await c.createDatabase("audit");
 *   const sql = c.primary.sql(db);
 *   await sql`select 1`;
 * } finally {
 *   await c.stop(); // closes every sql() client, stops the servers, deletes the temp folder
 * }
 * ```
 *
 * or, equivalently, `await using c = await startCluster();`.
 *
 * PostgreSQL refuses to run as root, so when the test runs as root every server-side command
 * (initdb, pg_ctl, pg_basebackup, psql) runs as the `postgres` OS user through
 * `runuser -u postgres --`, and the temp folder is owned by that user.
 *
 * Authentication (pg_hba.conf): the `postgres` superuser is trusted over the unix socket and over
 * TCP from 127.0.0.1 / ::1 (so `url()` and `sql()` need no password), every other role must
 * authenticate with scram-sha-256 over TCP.
 */

import postgres from "postgres";
import { freePort, freePortOn } from "./ports.ts";
import { delay, waitFor } from "./wait.ts";

export { delay, freePort, freePortOn, waitFor };
export type { WaitOptions } from "./wait.ts";

// ---------------------------------------------------------------------------------------------
// Public types
// ---------------------------------------------------------------------------------------------

/** Internal description of one server of a cluster (exported for typing only). */
export interface NodeOptions {
  name: "primary" | "replica";
  host: string;
  port: number;
  dataDir: string;
  socketDir: string;
  logFile: string;
}

export interface ClusterOptions {
  /** Also make a streaming replica with `pg_basebackup -R` (default false). */
  replica?: boolean;
  /** shared_preload_libraries, e.g. ["pgaudit", "pg_stat_statements"]. */
  preload?: string[];
  /**
   * Extra postgresql.conf settings for the primary (the replica inherits them). Give raw values;
   * they are single-quoted and escaped here, e.g. `{ log_statement: "all" }`.
   */
  conf?: Record<string, string>;
  /** Default ["127.0.0.1"]; e.g. ["127.0.0.1", "127.0.0.2"]. */
  listenAddresses?: string[];
  /** Extra pg_hba.conf lines placed BEFORE the defaults. */
  hbaExtra?: string[];
  /** archive_mode = on; tests set archive_command themselves later (default off). */
  archive?: boolean;
  /** Label used in the temp folder name and in error messages. */
  name?: string;
  /**
   * Start the servers at this nice level (benchmarks: a cluster standing in for another machine, such as
   * the seed's separate restore server, takes only the CPU the processes under test leave).
   */
  nice?: number;
}

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  /** Run as the `postgres` OS user (through runuser when the test runs as root). Default false. */
  asPostgres?: boolean;
  /** Extra environment variables (merged over the sanitized environment). */
  env?: Record<string, string>;
}

export interface PgNode {
  readonly name: "primary" | "replica";
  /** "127.0.0.1" */
  readonly host: string;
  readonly port: number;
  readonly dataDir: string;
  readonly socketDir: string;
  /** Server log file (logging_collector off; `pg_ctl -l logFile`). */
  readonly logFile: string;
  /** postgres://user[:pw]@127.0.0.1:port/db ; default user postgres, db postgres. */
  url(opts?: { database?: string; user?: string; password?: string }): string;
  /** A superuser postgres.js client (max 4 conns, notices silenced), closed by cluster.stop(). */
  sql(database?: string): postgres.Sql;
  /**
   * Runs `psql -X -A -t -q -v ON_ERROR_STOP=1` as postgres over the unix socket, feeding `sqlText`
   * on stdin (so multi-statement scripts and CREATE DATABASE work). Returns raw stdout; throws with
   * stderr on failure.
   */
  psql(sqlText: string, database?: string): Promise<string>;
  /** `pg_ctl start -w`. */
  start(): Promise<void>;
  /** `pg_ctl stop -w -m <mode>` (default "fast"); a no-op when the server is not running. */
  stop(mode?: "fast" | "immediate"): Promise<void>;
  /** `pg_ctl reload`, then waits until the postmaster has re-read its configuration. */
  reload(): Promise<void>;
  /** Whole server log ("" if it does not exist yet). */
  readLog(): Promise<string>;
}

export interface TestCluster extends AsyncDisposable {
  /** Temp root owned by postgres. */
  readonly dir: string;
  readonly binDir: string;
  readonly primary: PgNode;
  readonly replica?: PgNode;
  /** Creates a uniquely named database on the primary and returns its name. */
  createDatabase(prefix?: string): Promise<string>;
  /** Waits until the replica has replayed the primary's current WAL LSN (default 15000 ms). */
  waitForReplay(timeoutMs?: number): Promise<void>;
  /**
   * Runs a command (cwd = the cluster dir; a bare program name found in binDir is resolved there;
   * binDir is prepended to PATH). Never throws on a non-zero exit: check `code`.
   */
  run(cmd: string[], opts?: RunOptions): Promise<RunResult>;
  /**
   * Closes all sql() clients, stops the nodes (immediate), removes the dir. Idempotent; never
   * throws, whatever state start-up or the test left behind.
   */
  stop(): Promise<void>;
}

// ---------------------------------------------------------------------------------------------
// Process helpers
// ---------------------------------------------------------------------------------------------

const IS_ROOT = Deno.uid() === 0;
const INSTALL_HINT = "apt-get install -y postgresql-15 postgresql-15-pgaudit (as root; without root: " +
  "sudo apt-get install -y postgresql-15 postgresql-15-pgaudit)";

interface ExecOptions {
  asPostgres?: boolean;
  env?: Record<string, string>;
  cwd?: string;
  stdin?: string;
}

/**
 * What the servers and tools inherit: the path, home, user, locale, time zone and temp folder, and
 * PGBACKREST_* — never libpq's PG* variables (PGHOST, PGPORT, PGSSLMODE, PGDATA, …, which would redirect
 * or break the harness's own connections), and nothing else: the sandbox runs the bot in this process,
 * and its secrets (tokens, `password_env` variables) must not reach a PostgreSQL server's environment.
 */
function baseEnv(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(Deno.env.toObject())) {
    if (INHERITED_ENV.test(k)) env[k] = v;
  }
  return env;
}

const INHERITED_ENV = /^(PATH|HOME|USER|LOGNAME|SHELL|LANG|LANGUAGE|LC_[A-Z]+|TZ|TMPDIR|PGBACKREST_\w+)$/;

function formatCmd(argv: string[]): string {
  return argv.map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replaceAll("'", `'\\''`)}'`)).join(" ");
}

async function exec(cmd: string[], opts: ExecOptions = {}): Promise<RunResult> {
  if (cmd.length === 0) throw new Error("exec: empty command");
  const argv = opts.asPostgres && IS_ROOT ? ["runuser", "-u", "postgres", "--", ...cmd] : cmd;
  const command = new Deno.Command(argv[0], {
    args: argv.slice(1),
    cwd: opts.cwd,
    env: { ...baseEnv(), ...(opts.env ?? {}) },
    clearEnv: true,
    stdin: opts.stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
  });
  let output: Deno.CommandOutput;
  try {
    if (opts.stdin === undefined) {
      output = await command.output();
    } else {
      const child = command.spawn();
      const writer = child.stdin.getWriter();
      try {
        await writer.write(new TextEncoder().encode(opts.stdin));
        await writer.close();
      } catch {
        // The process may exit before reading all input; its exit code and stderr tell why.
      }
      output = await child.output();
    }
  } catch (err) {
    throw new Error(`Could not run ${formatCmd(argv)}: ${err instanceof Error ? err.message : err}`, {
      cause: err,
    });
  }
  const dec = new TextDecoder();
  return { code: output.code, stdout: dec.decode(output.stdout), stderr: dec.decode(output.stderr) };
}

async function mustExec(cmd: string[], opts: ExecOptions = {}): Promise<RunResult> {
  const res = await exec(cmd, opts);
  if (res.code !== 0) {
    const argv = opts.asPostgres && IS_ROOT ? ["runuser", "-u", "postgres", "--", ...cmd] : cmd;
    const detail = [res.stderr.trim(), res.stdout.trim()].filter(Boolean).join("\n");
    throw new Error(
      `Command failed (exit ${res.code}): ${formatCmd(argv)}${detail ? `\n${detail}` : ""}`,
    );
  }
  return res;
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
}

async function isExecutable(path: string): Promise<boolean> {
  try {
    const st = await Deno.stat(path);
    return st.isFile && ((st.mode ?? 0o755) & 0o111) !== 0;
  } catch {
    return false;
  }
}

let postgresIds: { uid: number; gid: number } | undefined;

async function postgresUser(): Promise<{ uid: number; gid: number }> {
  if (postgresIds) return postgresIds;
  const passwd = await Deno.readTextFile("/etc/passwd").catch(() => "");
  for (const line of passwd.split("\n")) {
    const f = line.split(":");
    if (f[0] === "postgres" && f.length >= 4) {
      postgresIds = { uid: Number(f[2]), gid: Number(f[3]) };
      return postgresIds;
    }
  }
  throw new Error(
    `There is no "postgres" OS user to run the servers as (PostgreSQL refuses to run as root). ` +
      `Install the server package, which creates it: ${INSTALL_HINT}`,
  );
}

/** chown -R postgres:postgres (only when running as root). */
async function giveToPostgres(path: string): Promise<void> {
  if (!IS_ROOT) return;
  const { uid, gid } = await postgresUser();
  const walk = async (p: string): Promise<void> => {
    await Deno.chown(p, uid, gid);
    const st = await Deno.lstat(p);
    if (st.isDirectory) {
      for await (const entry of Deno.readDir(p)) await walk(`${p}/${entry.name}`);
    }
  };
  await walk(path);
}

/** Writes a file and makes sure the postgres user owns it. */
async function writeOwned(path: string, text: string, opts: { append?: boolean } = {}): Promise<void> {
  await Deno.writeTextFile(path, text, { append: opts.append ?? false, mode: 0o600 });
  await giveToPostgres(path);
}

function tail(text: string, lines = 40): string {
  const all = text.trimEnd().split("\n");
  return all.slice(-lines).join("\n");
}

function pidAlive(pid: number): boolean {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    const state = stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3);
    return state !== "Z" && state !== "X";
  } catch {
    return false;
  }
}

function postmasterPid(dataDir: string): number | undefined {
  try {
    const first = Deno.readTextFileSync(`${dataDir}/postmaster.pid`).split("\n")[0].trim();
    const pid = Number(first);
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

// ---------------------------------------------------------------------------------------------
// Locating the server binaries
// ---------------------------------------------------------------------------------------------

const SERVER_BINARIES = ["initdb", "pg_ctl", "postgres", "pg_basebackup", "psql"];
let binDirPromise: Promise<string> | undefined;

async function hasServerBinaries(dir: string): Promise<boolean> {
  for (const b of SERVER_BINARIES) if (!(await isExecutable(`${dir}/${b}`))) return false;
  return true;
}

async function locatePgBinDir(): Promise<string> {
  const tried: string[] = [];
  // 1. pg_config --bindir (Debian's /usr/bin/pg_config may describe the client-only dir).
  try {
    const res = await exec(["pg_config", "--bindir"]);
    const dir = res.stdout.trim();
    if (res.code === 0 && dir) {
      tried.push(dir);
      if (await hasServerBinaries(dir)) return dir;
    }
  } catch {
    // no pg_config on PATH
  }
  // 2. /usr/lib/postgresql/<version>/bin, highest version first.
  const versions: { v: number[]; dir: string }[] = [];
  try {
    for await (const e of Deno.readDir("/usr/lib/postgresql")) {
      if (!/^\d+(\.\d+)*$/.test(e.name)) continue;
      versions.push({ v: e.name.split(".").map(Number), dir: `/usr/lib/postgresql/${e.name}/bin` });
    }
  } catch {
    // not a Debian-style layout
  }
  versions.sort((a, b) => {
    for (let i = 0; i < Math.max(a.v.length, b.v.length); i++) {
      const d = (b.v[i] ?? 0) - (a.v[i] ?? 0);
      if (d !== 0) return d;
    }
    return 0;
  });
  for (const { dir } of versions) {
    tried.push(dir);
    if (await hasServerBinaries(dir)) return dir;
  }
  throw new Error(
    `PostgreSQL server binaries (${SERVER_BINARIES.join(", ")}) were not found ` +
      `(looked in: ${tried.length ? tried.join(", ") : "pg_config --bindir, /usr/lib/postgresql/*/bin"}). ` +
      `Install them with: ${INSTALL_HINT}`,
  );
}

/** Directory holding initdb/pg_ctl/postgres (cached). Throws with install instructions if absent. */
export function findPgBinDir(): Promise<string> {
  binDirPromise ??= locatePgBinDir().catch((err) => {
    binDirPromise = undefined;
    throw err;
  });
  return binDirPromise;
}

async function checkPreloadLibraries(binDir: string, libs: string[]): Promise<void> {
  if (libs.length === 0) return;
  const res = await exec([`${binDir}/pg_config`, "--pkglibdir"]).catch(() => undefined);
  const pkglib = res?.code === 0 ? res.stdout.trim() : "";
  if (!pkglib) return; // cannot tell; the server start will report it
  const major = binDir.match(/postgresql\/(\d+)\//)?.[1] ?? "15";
  for (const lib of libs) {
    if (await exists(`${pkglib}/${lib}.so`)) continue;
    const pkg = lib === "pgaudit" ? `postgresql-${major}-pgaudit` : `postgresql-${major}`;
    throw new Error(
      `shared_preload_libraries entry "${lib}" is not installed (${pkglib}/${lib}.so is missing). ` +
        `Install it with: apt-get install -y ${pkg} (as root)`,
    );
  }
}

// ---------------------------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------------------------

const CLUSTER_CONF_FILE = "bisman_cluster.conf";
const NODE_CONF_FILE = "bisman_node.conf";

function quoteConf(value: string): string {
  return `'${value.replaceAll("\\", "\\\\").replaceAll("'", "''")}'`;
}

function confLines(settings: [string, string][]): string {
  return settings.map(([k, v]) => `${k} = ${quoteConf(v)}\n`).join("");
}

function validateConfKey(key: string): void {
  if (!/^[A-Za-z_][A-Za-z0-9_.]*$/.test(key)) throw new Error(`Invalid postgresql.conf setting name: ${key}`);
}

/** Address form usable by Deno.listen for the free-port check. */
function bindCheckAddress(addr: string): string {
  if (addr === "*") return "0.0.0.0";
  if (addr === "localhost") return "127.0.0.1";
  return addr.replace(/^\[|\]$/g, "");
}

function hbaConf(listen: string[], extra: string[]): string {
  const hostLines = (cidr: string) => [
    `host    all          postgres  ${cidr}  trust`,
    `host    replication  postgres  ${cidr}  trust`,
    `host    all          all       ${cidr}  scram-sha-256`,
  ];
  const lines = [
    "# Written by standins/cluster.ts",
    ...extra,
    "local   all          all                    trust",
    ...hostLines("127.0.0.1/32"),
    ...hostLines("::1/128"),
  ];
  const done = new Set(["127.0.0.1", "::1"]);
  for (const raw of listen) {
    const addr = bindCheckAddress(raw);
    if (done.has(addr) || addr === "0.0.0.0" || addr === "::") continue;
    done.add(addr);
    if (/^\d+\.\d+\.\d+\.\d+$/.test(addr)) lines.push(...hostLines(`${addr}/32`));
    else if (addr.includes(":")) lines.push(...hostLines(`${addr}/128`));
  }
  return lines.join("\n") + "\n";
}

// ---------------------------------------------------------------------------------------------
// Nodes and clusters
// ---------------------------------------------------------------------------------------------

const liveClusters = new Set<Cluster>();
let unloadHookInstalled = false;

/** Last-resort cleanup if the process exits without stop() (e.g. Deno.exit in a test). */
function installUnloadHook(): void {
  if (unloadHookInstalled) return;
  unloadHookInstalled = true;
  globalThis.addEventListener("unload", () => {
    for (const c of liveClusters) c.emergencyStopSync();
  });
}

function isBindFailure(err: unknown): boolean {
  const msg = err instanceof Error ? err.message : String(err);
  return /Address already in use|could not create any TCP\/IP sockets|could not bind/i.test(msg);
}

class Node implements PgNode {
  #port: number;

  constructor(
    private readonly cluster: Cluster,
    readonly name: "primary" | "replica",
    readonly host: string,
    port: number,
    readonly dataDir: string,
    readonly socketDir: string,
    readonly logFile: string,
  ) {
    this.#port = port;
  }

  get port(): number {
    return this.#port;
  }

  /** Used while starting up (retry on a port stolen by another process). */
  setPort(port: number): void {
    this.#port = port;
  }

  url(opts: { database?: string; user?: string; password?: string } = {}): string {
    const user = encodeURIComponent(opts.user ?? "postgres");
    const pw = opts.password === undefined ? "" : `:${encodeURIComponent(opts.password)}`;
    const db = encodeURIComponent(opts.database ?? "postgres");
    return `postgres://${user}${pw}@${this.host}:${this.port}/${db}`;
  }

  sql(database = "postgres"): postgres.Sql {
    const client = postgres({
      host: this.host,
      port: this.port,
      user: "postgres",
      database,
      max: 4,
      connect_timeout: 10,
      onnotice: () => {},
      connection: { application_name: "bisman-test" },
    });
    this.cluster.track(client);
    return client;
  }

  async psql(sqlText: string, database = "postgres"): Promise<string> {
    const args = [
      `${this.cluster.binDir}/psql`,
      "-X",
      "-A",
      "-t",
      "-q",
      "-v",
      "ON_ERROR_STOP=1",
      "-h",
      this.socketDir,
      "-p",
      String(this.port),
      "-U",
      "postgres",
      "-d",
      database,
      "-f",
      "-",
    ];
    const res = await exec(args, {
      asPostgres: true,
      cwd: this.cluster.dir,
      stdin: sqlText,
      env: { PGCONNECT_TIMEOUT: "10" },
    });
    if (res.code !== 0) {
      const shown = sqlText.length > 300 ? `${sqlText.slice(0, 300)}…` : sqlText;
      throw new Error(
        `psql on ${this.cluster.label}/${this.name} (db ${database}) failed (exit ${res.code}): ` +
          `${res.stderr.trim() || res.stdout.trim()}\nSQL: ${shown}`,
      );
    }
    return res.stdout;
  }

  async start(): Promise<void> {
    const cmd = [
      ...(this.cluster.nice ? ["nice", "-n", String(this.cluster.nice)] : []),
      `${this.cluster.binDir}/pg_ctl`,
      "-D",
      this.dataDir,
      "-l",
      this.logFile,
      "-w",
      "-t",
      "60",
      "-s",
      "start",
    ];
    const res = await exec(cmd, { asPostgres: true, cwd: this.cluster.dir });
    if (res.code !== 0) {
      throw new Error(
        `Could not start ${this.cluster.label}/${this.name} on port ${this.port} (exit ${res.code}): ` +
          `${formatCmd(cmd)}\n${res.stderr.trim()}\n--- server log tail (${this.logFile}) ---\n` +
          tail(await this.readLog()),
      );
    }
  }

  async stop(mode: "fast" | "immediate" = "fast"): Promise<void> {
    if (!(await exists(`${this.dataDir}/postmaster.pid`))) return;
    const cmd = [
      `${this.cluster.binDir}/pg_ctl`,
      "-D",
      this.dataDir,
      "-m",
      mode,
      "-w",
      "-t",
      "60",
      "-s",
      "stop",
    ];
    const res = await exec(cmd, { asPostgres: true, cwd: this.cluster.dir });
    if (res.code !== 0 && (await exists(`${this.dataDir}/postmaster.pid`))) {
      const pid = postmasterPid(this.dataDir);
      if (pid === undefined || pidAlive(pid)) {
        throw new Error(
          `Could not stop ${this.cluster.label}/${this.name} (exit ${res.code}): ${formatCmd(cmd)}\n` +
            `${res.stderr.trim()}\n--- server log tail ---\n${tail(await this.readLog())}`,
        );
      }
    }
  }

  async reload(): Promise<void> {
    const loadTime = "select pg_conf_load_time()";
    const before = (await this.psql(loadTime)).trim();
    await mustExec([`${this.cluster.binDir}/pg_ctl`, "-D", this.dataDir, "-s", "reload"], {
      asPostgres: true,
      cwd: this.cluster.dir,
    });
    // New backends inherit the postmaster's reload time, so this shows when SIGHUP was processed.
    await waitFor(async () => (await this.psql(loadTime)).trim() !== before, {
      timeoutMs: 10_000,
      intervalMs: 20,
      what: `${this.cluster.label}/${this.name} to reload its configuration`,
    });
  }

  async readLog(): Promise<string> {
    try {
      return await Deno.readTextFile(this.logFile);
    } catch {
      return "";
    }
  }

  /** Best-effort kill, used when pg_ctl could not stop the server. */
  async kill(): Promise<void> {
    const pid = postmasterPid(this.dataDir);
    if (pid === undefined || !pidAlive(pid)) return;
    try {
      Deno.kill(pid, "SIGKILL");
    } catch {
      return;
    }
    for (let i = 0; i < 100 && pidAlive(pid); i++) await delay(20);
  }

  emergencyStopSync(): void {
    const pid = postmasterPid(this.dataDir);
    if (pid === undefined || !pidAlive(pid)) return;
    try {
      Deno.kill(pid, "SIGQUIT"); // = immediate shutdown
    } catch {
      return;
    }
    const deadline = Date.now() + 2000;
    while (pidAlive(pid) && Date.now() < deadline) {
      // busy-wait: no async work is possible during "unload"
    }
  }
}

let dbCounter = 0;

class Cluster implements TestCluster {
  readonly primary: Node;
  replica?: Node;
  readonly #clients = new Set<postgres.Sql>();
  #stopping?: Promise<void>;
  /** Set by openCluster(): stop() shuts down cleanly and keeps the folder. */
  persistent = false;
  reused = false;
  /** Nice level of the servers (see ClusterOptions.nice). */
  nice = 0;

  constructor(
    readonly dir: string,
    readonly binDir: string,
    readonly label: string,
    primary: { port: number; host: string },
  ) {
    this.primary = new Node(
      this,
      "primary",
      primary.host,
      primary.port,
      `${dir}/primary/data`,
      `${dir}/primary/sock`,
      `${dir}/primary/server.log`,
    );
  }

  track(client: postgres.Sql): void {
    this.#clients.add(client);
  }

  async createDatabase(prefix = "test"): Promise<string> {
    let base = prefix.toLowerCase().replace(/[^a-z0-9_]+/g, "_").replace(/^_+|_+$/g, "");
    if (!/^[a-z]/.test(base)) base = `db_${base}`;
    const suffix = `_${(++dbCounter).toString(36)}_${Date.now().toString(36)}${
      Math.floor(Math.random() * 36 ** 3).toString(36)
    }`;
    const name = base.slice(0, 63 - suffix.length) + suffix;
    await this.primary.psql(`CREATE DATABASE "${name}"`);
    return name;
  }

  async waitForReplay(timeoutMs = 15_000): Promise<void> {
    const replica = this.replica;
    if (!replica) {
      throw new Error(`waitForReplay: cluster ${this.label} has no replica (use { replica: true })`);
    }
    // A commit that waits for the local WAL flush, so the target LSN covers every record written
    // (even asynchronously committed ones) before this call; the walsender only ships flushed WAL.
    const lsn = (await this.primary.psql(
      "SET synchronous_commit = local;\n" +
        "DO $$ BEGIN PERFORM pg_current_xact_id(); END $$;\n" +
        "SELECT pg_current_wal_flush_lsn();",
    )).trim();
    await waitFor(
      async () => (await replica.psql(`select pg_last_wal_replay_lsn() >= '${lsn}'::pg_lsn`)).trim() === "t",
      { timeoutMs, intervalMs: 20, what: `${this.label}/replica to replay primary LSN ${lsn}` },
    );
  }

  async run(cmd: string[], opts: RunOptions = {}): Promise<RunResult> {
    if (cmd.length === 0) throw new Error("run: empty command");
    let program = cmd[0];
    if (!program.includes("/") && (await isExecutable(`${this.binDir}/${program}`))) {
      program = `${this.binDir}/${program}`;
    }
    const path = `${this.binDir}:${Deno.env.get("PATH") ?? "/usr/local/bin:/usr/bin:/bin"}`;
    return await exec([program, ...cmd.slice(1)], {
      asPostgres: opts.asPostgres ?? false,
      cwd: this.dir,
      env: { PATH: path, ...(opts.env ?? {}) },
    });
  }

  stop(): Promise<void> {
    this.#stopping ??= this.#doStop();
    return this.#stopping;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.stop();
  }

  async #doStop(): Promise<void> {
    // 1. Clients first, so nothing is left reconnecting to a dying server.
    await Promise.allSettled([...this.#clients].map(async (client) => {
      let timer: ReturnType<typeof setTimeout> | undefined;
      try {
        await Promise.race([
          client.end({ timeout: 1 }),
          new Promise<void>((resolve) => (timer = setTimeout(resolve, 3000))),
        ]);
      } finally {
        clearTimeout(timer);
      }
    }));
    this.#clients.clear();
    // 2. Servers (replica first), immediate mode; fall back to SIGKILL. A persistent cluster shuts
    // down cleanly (fast), so its next start needs no crash recovery.
    for (const node of [this.replica, this.primary]) {
      if (!node) continue;
      try {
        await node.stop(this.persistent ? "fast" : "immediate");
      } catch {
        await node.kill().catch(() => {});
      }
    }
    liveClusters.delete(this);
    if (this.persistent) return;
    // 3. The temp folder.
    for (let attempt = 0; attempt < 3; attempt++) {
      try {
        await Deno.remove(this.dir, { recursive: true });
        return;
      } catch (err) {
        if (err instanceof Deno.errors.NotFound) return;
        if (attempt === 2) {
          console.error(`[cluster ${this.label}] could not remove ${this.dir}: ${err}`);
          return;
        }
        await delay(100);
      }
    }
  }

  emergencyStopSync(): void {
    for (const node of [this.replica, this.primary]) node?.emergencyStopSync();
    if (this.persistent) return;
    try {
      Deno.removeSync(this.dir, { recursive: true });
    } catch {
      // best effort
    }
  }
}

/** Starts a node, retrying on a fresh port if another process grabbed ours first. */
async function startWithPortRetry(node: Node, listenChecks: string[], writeNodeConf: () => Promise<void>) {
  for (let attempt = 1;; attempt++) {
    await writeNodeConf();
    try {
      await node.start();
      return;
    } catch (err) {
      if (attempt >= 3 || !isBindFailure(err)) throw err;
      node.setPort(await freePortOn(listenChecks));
    }
  }
}

/** Settings every start needs, derived once from the options. */
interface Prepared {
  binDir: string;
  preload: string[];
  listen: string[];
  listenChecks: string[];
  extraConf: [string, string][];
  label: string;
}

async function prepare(opts: ClusterOptions): Promise<Prepared> {
  const binDir = await findPgBinDir();
  const preload = opts.preload ?? [];
  await checkPreloadLibraries(binDir, preload);
  if (IS_ROOT) await postgresUser();
  const listen = opts.listenAddresses?.length ? opts.listenAddresses : ["127.0.0.1"];
  const listenChecks = [...new Set(listen.map(bindCheckAddress))];
  const extraConf = Object.entries(opts.conf ?? {});
  for (const [k] of extraConf) validateConfKey(k);
  const label = (opts.name ?? "cluster").toLowerCase().replace(/[^a-z0-9]+/g, "-").replace(/^-+|-+$/g, "")
    .slice(0, 24) || "cluster";
  return { binDir, preload, listen, listenChecks, extraConf, label };
}

function clusterConfText(p: Prepared, opts: ClusterOptions): string {
  const clusterSettings: [string, string][] = [
    ["password_encryption", "scram-sha-256"],
    ["wal_level", "replica"],
    ["max_wal_senders", "10"],
    ["max_replication_slots", "10"],
    ["wal_keep_size", "128MB"],
    ["hot_standby", "on"],
    ["fsync", "off"],
    ["synchronous_commit", "off"],
    ["wal_writer_delay", "10ms"], // async commits reach the replica quickly
    // Kept on: a base backup taken from a standby (pgbackrest backup-standby, pg_basebackup
    // against the replica) is refused when WAL was generated with full_page_writes = off.
    ["full_page_writes", "on"],
    ["shared_buffers", "32MB"],
    ["max_connections", "100"],
    ["log_line_prefix", "%m [%p] %q%u@%d "],
    ["shared_preload_libraries", p.preload.join(",")],
    ["archive_mode", opts.archive ? "on" : "off"],
    ...p.extraConf,
  ];
  return `# Written by standins/cluster.ts (${p.label})\n${confLines(clusterSettings)}`;
}

/** Node-specific settings come last so opts.conf cannot break port/socket/listen handling. */
function nodeConfWriter(node: Node, p: Prepared): () => Promise<void> {
  return () =>
    writeOwned(
      `${node.dataDir}/${NODE_CONF_FILE}`,
      `# Written by standins/cluster.ts (${p.label}/${node.name})\n` +
        confLines([
          ["listen_addresses", p.listen.join(",")],
          ["port", String(node.port)],
          ["unix_socket_directories", node.socketDir],
          ["cluster_name", node.name],
        ]),
    );
}

function replicaNode(cluster: Cluster, port: number): Node {
  const dir = cluster.dir;
  return new Node(
    cluster,
    "replica",
    "127.0.0.1",
    port,
    `${dir}/replica/data`,
    `${dir}/replica/sock`,
    `${dir}/replica/server.log`,
  );
}

/** Waits until the replica is in recovery and streaming from the primary. */
async function waitStreaming(cluster: Cluster, replica: Node): Promise<void> {
  const { primary, label } = cluster;
  await waitFor(async () => (await replica.psql("select pg_is_in_recovery()")).trim() === "t", {
    timeoutMs: 30_000,
    intervalMs: 25,
    what: `${label}/replica to be in recovery`,
  });
  await waitFor(
    async () =>
      (await primary.psql(
        "select count(*) from pg_stat_replication where state = 'streaming' and application_name = 'replica'",
      )).trim() !== "0",
    { timeoutMs: 30_000, intervalMs: 25, what: `${label}/replica to be streaming from the primary` },
  ).catch(async (err) => {
    throw new Error(
      `${err.message}\n--- replica log tail ---\n${tail(await replica.readLog())}` +
        `\n--- primary log tail ---\n${tail(await primary.readLog())}`,
    );
  });
}

/** Makes the replica with `pg_basebackup -R` from the running primary, starts it and waits for streaming. */
async function createReplica(cluster: Cluster, p: Prepared, port: number): Promise<void> {
  const { primary, dir } = cluster;
  const replica = replicaNode(cluster, port);
  cluster.replica = replica;
  await Deno.mkdir(replica.socketDir, { recursive: true });
  await giveToPostgres(`${dir}/replica`);
  await mustExec([
    `${p.binDir}/pg_basebackup`,
    "-h",
    "127.0.0.1",
    "-p",
    String(primary.port),
    "-U",
    "postgres",
    "-D",
    replica.dataDir,
    "-R",
    "-X",
    "stream",
    "--checkpoint=fast",
    "--no-sync",
  ], { asPostgres: true, cwd: dir }).catch(async (err) => {
    throw new Error(`${err.message}\n--- primary log tail ---\n${tail(await primary.readLog())}`, {
      cause: err,
    });
  });
  await Deno.chmod(replica.dataDir, 0o700);
  await startWithPortRetry(replica, p.listenChecks, nodeConfWriter(replica, p));
  await waitStreaming(cluster, replica);
}

/** initdb's and starts the primary in `cluster.dir` (which must exist), then the replica when asked. */
async function initialise(cluster: Cluster, p: Prepared, opts: ClusterOptions, replicaPort?: number) {
  const dir = cluster.dir;
  await Deno.mkdir(`${dir}/primary/sock`, { recursive: true });
  if (opts.replica) await Deno.mkdir(`${dir}/replica/sock`, { recursive: true });
  await giveToPostgres(dir);
  await Deno.chmod(dir, 0o700);

  const { primary } = cluster;
  await mustExec([
    `${p.binDir}/initdb`,
    "-D",
    primary.dataDir,
    "-U",
    "postgres",
    "-A",
    "trust",
    "-E",
    "UTF8",
    "--locale=C",
    "--no-sync",
    "--no-instructions",
  ], { asPostgres: true, cwd: dir });

  await writeOwned(`${primary.dataDir}/pg_hba.conf`, hbaConf(p.listen, opts.hbaExtra ?? []));
  await writeOwned(`${primary.dataDir}/${CLUSTER_CONF_FILE}`, clusterConfText(p, opts));
  await writeOwned(
    `${primary.dataDir}/postgresql.conf`,
    `\n# --- standins/cluster.ts ---\ninclude '${CLUSTER_CONF_FILE}'\ninclude '${NODE_CONF_FILE}'\n`,
    { append: true },
  );
  await startWithPortRetry(primary, p.listenChecks, nodeConfWriter(primary, p));
  if (opts.replica) await createReplica(cluster, p, replicaPort ?? await freePortOn(p.listenChecks));
}

/**
 * Creates and starts a throwaway cluster (primary, plus a streaming replica with `replica: true`).
 * The caller must `await cluster.stop()` in a `finally` (or use `await using`).
 */
export async function startCluster(opts: ClusterOptions = {}): Promise<TestCluster> {
  const p = await prepare(opts);
  const dir = await Deno.makeTempDir({ dir: "/tmp", prefix: `bisman-pg-${p.label}-` });
  const cluster = new Cluster(dir, p.binDir, p.label, {
    host: "127.0.0.1",
    port: await freePortOn(p.listenChecks),
  });
  cluster.nice = opts.nice ?? 0;
  liveClusters.add(cluster);
  installUnloadHook();

  try {
    await initialise(cluster, p, opts);
    return cluster;
  } catch (err) {
    await cluster.stop();
    throw err;
  }
}

// ---------------------------------------------------------------------------------------------
// Persistent clusters (the sandbox's data folder)
// ---------------------------------------------------------------------------------------------

/** Options of {@link openCluster}: those of startCluster plus where the cluster lives. */
export interface PersistentClusterOptions extends ClusterOptions {
  /**
   * The folder that holds the cluster (`primary/`, `replica/`); created when missing, reused when it
   * already holds a cluster. The postgres OS user must be able to reach it.
   */
  dir: string;
  /** Ports to use when they are free (e.g. the previous run's), so URLs stay the same across restarts. */
  ports?: { primary?: number; replica?: number };
}

/** A cluster in a folder that outlives the process. */
export interface PersistentCluster extends TestCluster {
  /** True when an existing data folder was started again rather than created. */
  readonly reused: boolean;
}

function portFree(port: number | undefined, hosts: string[]): boolean {
  if (!port || handedOutHere.has(port)) return false;
  return hosts.every((hostname) => {
    try {
      Deno.listen({ hostname, port, transport: "tcp" }).close();
      return true;
    } catch {
      return false;
    }
  });
}
const handedOutHere = new Set<number>();

async function pickPort(preferred: number | undefined, hosts: string[]): Promise<number> {
  const port = portFree(preferred, hosts) ? preferred! : await freePortOn(hosts);
  handedOutHere.add(port);
  return port;
}

/** Stops a server left running by a previous process that was killed before it could stop it. */
async function stopLeftover(node: Node): Promise<void> {
  const pid = postmasterPid(node.dataDir);
  if (pid === undefined || !pidAlive(pid)) return;
  try {
    await node.stop("fast");
  } catch {
    await node.kill();
  }
}

/**
 * Opens the cluster kept in `opts.dir`: creates it there (like {@link startCluster}) when the folder
 * holds none, or starts the existing primary (and replica) again, on the preferred ports when they are
 * free. A server still running from a killed previous process is stopped first. The settings
 * (`preload`, `conf`, `archive`, pg_hba extras) are rewritten on every open, so they follow the caller.
 *
 * `stop()` shuts the servers down cleanly and keeps the folder.
 */
export async function openCluster(opts: PersistentClusterOptions): Promise<PersistentCluster> {
  const p = await prepare(opts);
  const dir = opts.dir.replace(/\/+$/, "");
  await Deno.mkdir(dir, { recursive: true });
  const cluster = new Cluster(dir, p.binDir, p.label, {
    host: "127.0.0.1",
    port: await pickPort(opts.ports?.primary, p.listenChecks),
  });
  cluster.persistent = true;
  liveClusters.add(cluster);
  installUnloadHook();
  const replicaPort = await pickPort(opts.ports?.replica, p.listenChecks);

  try {
    if (!(await exists(`${cluster.primary.dataDir}/PG_VERSION`))) {
      // A half-made folder from an interrupted first run: start again from nothing.
      for (const n of ["primary", "replica"]) {
        await Deno.remove(`${dir}/${n}`, { recursive: true }).catch(() => {});
      }
      await initialise(cluster, p, opts, replicaPort);
      return cluster;
    }
    cluster.reused = true;
    const { primary } = cluster;
    const replicaExists = await exists(`${dir}/replica/data/PG_VERSION`);
    const replica = replicaExists ? replicaNode(cluster, replicaPort) : undefined;
    for (const node of [replica, primary]) if (node) await stopLeftover(node);

    await writeOwned(`${primary.dataDir}/pg_hba.conf`, hbaConf(p.listen, opts.hbaExtra ?? []));
    await writeOwned(`${primary.dataDir}/${CLUSTER_CONF_FILE}`, clusterConfText(p, opts));
    await startWithPortRetry(primary, p.listenChecks, nodeConfWriter(primary, p));

    if (opts.replica && replica) {
      cluster.replica = replica;
      await writeOwned(`${replica.dataDir}/pg_hba.conf`, hbaConf(p.listen, opts.hbaExtra ?? []));
      await writeOwned(`${replica.dataDir}/${CLUSTER_CONF_FILE}`, clusterConfText(p, opts));
      // pg_basebackup -R wrote the primary's port into primary_conninfo; follow it if it moved.
      const auto = `${replica.dataDir}/postgresql.auto.conf`;
      const text = await Deno.readTextFile(auto);
      await writeOwned(
        auto,
        text.replace(/^(primary_conninfo = '.*?\bport=)\d+/m, `$1${primary.port}`),
      );
      await startWithPortRetry(replica, p.listenChecks, nodeConfWriter(replica, p));
      await waitStreaming(cluster, replica);
    } else if (opts.replica) {
      await createReplica(cluster, p, replicaPort);
    }
    return cluster;
  } catch (err) {
    await cluster.stop();
    throw err;
  }
}

/** libpq arguments that reach `cluster`'s primary as postgres over TCP. */
export function primaryConnArgs(cluster: TestCluster): string[] {
  return ["-h", "127.0.0.1", "-p", String(cluster.primary.port), "-U", "postgres"];
}

/** The argv of a custom-format pg_dump of `db` on `cluster`'s primary into `file`. */
export function pgDumpArgv(cluster: TestCluster, db: string, file: string): string[] {
  return ["pg_dump", "-Fc", ...primaryConnArgs(cluster), "-f", file, db];
}
