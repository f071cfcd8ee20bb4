/**
 * Running PostgreSQL's client programs (pg_restore) from the bot's host: a cleared environment with the
 * connection in libpq variables (the password never reaches argv, where `ps` would show it), streamed
 * stderr for progress, and the parts of `pg_restore --list` the backup checks need.
 *
 * @module
 */

import type { ConnectionConfig } from "../core/config.ts";
import type { Secrets } from "../core/log.ts";
import { APPLICATION_NAME } from "../core/targets.ts";
import { toolEnv } from "../core/exec.ts";

/** The outcome of one program run. */
export interface ToolResult {
  /** Exit code; 127 when the program is not installed, 124 when it was stopped by the timeout. */
  code: number;
  stdout: string;
  stderr: string;
  ms: number;
}

/**
 * The environment for a libpq program: {@link toolEnv} only (never the bot's secrets, and an operator's
 * PGHOST or PGPASSWORD must not redirect the bot), and the connection when one is given, with the password
 * of that one server.
 */
export function libpqEnv(conn?: ConnectionConfig, password?: string): Record<string, string> {
  const env: Record<string, string> = { ...toolEnv(), PGAPPNAME: APPLICATION_NAME };
  if (!conn) return env;
  env.PGHOST = conn.host;
  env.PGPORT = String(conn.port);
  env.PGUSER = conn.user;
  env.PGSSLMODE = conn.sslmode;
  env.PGCONNECT_TIMEOUT = String(conn.connect_timeout_seconds);
  if (conn.ca_file) env.PGSSLROOTCERT = conn.ca_file;
  if (password !== undefined) env.PGPASSWORD = password;
  return env;
}

/**
 * Runs a program with a clean environment, calling `onStderrLine` for each line of stderr as it arrives.
 * Never throws for a failing program: a missing one is code 127, a timed-out one 124.
 */
export async function runTool(
  argv: string[],
  opts: {
    env: Record<string, string>;
    timeoutMs?: number;
    onStderrLine?: (line: string) => void;
    /** Called for each line of stdout as it arrives (pgBackRest reports its progress there). */
    onStdoutLine?: (line: string) => void;
    /** Stops the program (SIGTERM) when aborted; the result then has code 130. */
    signal?: AbortSignal;
  },
): Promise<ToolResult> {
  const started = performance.now();
  const controller = new AbortController();
  let timedOut = false;
  let stopped = false;
  const onStop = () => {
    stopped = true;
    controller.abort();
  };
  if (opts.signal?.aborted) onStop();
  opts.signal?.addEventListener("abort", onStop, { once: true });
  const timer = opts.timeoutMs
    ? setTimeout(() => {
      timedOut = true;
      controller.abort();
    }, opts.timeoutMs)
    : undefined;
  try {
    if (stopped) return { code: 130, stdout: "", stderr: "stopped before it started", ms: 0 };
    let child: Deno.ChildProcess;
    try {
      child = new Deno.Command(argv[0], {
        args: argv.slice(1),
        env: opts.env,
        clearEnv: true,
        stdin: "null",
        stdout: "piped",
        stderr: "piped",
        signal: controller.signal,
      }).spawn();
    } catch (err) {
      if (err instanceof Deno.errors.NotFound || err instanceof Deno.errors.PermissionDenied) {
        return {
          code: 127,
          stdout: "",
          stderr: `${argv[0]}: not installed or not executable`,
          ms: performance.now() - started,
        };
      }
      throw err;
    }
    const readAll = async (stream: ReadableStream<Uint8Array>, onLine?: (l: string) => void) => {
      const decoder = new TextDecoder();
      let text = "";
      let pending = "";
      for await (const chunk of stream) {
        const s = decoder.decode(chunk, { stream: true });
        text += s;
        if (onLine) {
          pending += s;
          const lines = pending.split("\n");
          pending = lines.pop() ?? "";
          for (const l of lines) onLine(l);
        }
      }
      if (onLine && pending) onLine(pending);
      return text;
    };
    const [stdout, stderr, status] = await Promise.all([
      readAll(child.stdout, opts.onStdoutLine),
      readAll(child.stderr, opts.onStderrLine),
      child.status,
    ]);
    return {
      code: timedOut ? 124 : stopped ? 130 : status.code,
      stdout,
      stderr,
      ms: performance.now() - started,
    };
  } finally {
    clearTimeout(timer);
    opts.signal?.removeEventListener("abort", onStop);
  }
}

/**
 * Whether `program` can be run: an absolute path that is an executable file, or a bare name found on PATH.
 * Checked first so that a missing tool is reported as such (runuser, for one, hides exit code 127).
 */
export async function programExists(program: string): Promise<boolean> {
  const isExec = async (p: string) => {
    try {
      const st = await Deno.stat(p);
      return st.isFile && ((st.mode ?? 0o755) & 0o111) !== 0;
    } catch {
      return false;
    }
  };
  if (program.includes("/")) return await isExec(program);
  const dirs = (Deno.env.get("PATH") ?? "/usr/local/bin:/usr/bin:/bin").split(":").filter(Boolean);
  for (const d of dirs) if (await isExec(`${d}/${program}`)) return true;
  return false;
}

/**
 * `argv` to run at nice `level` through nice(1), when the level is above 0 and nice is installed (it is in
 * coreutils; without it the program runs at the bot's priority rather than not at all).
 * @example
 * await niced(["pg_restore", "-j", "2", "d.dump"], 10); // ["nice", "-n", "10", "pg_restore", "-j", "2", "d.dump"]
 */
export async function niced(argv: string[], level: number): Promise<string[]> {
  if (level <= 0 || !(await programExists("nice"))) return argv;
  return ["nice", "-n", String(level), ...argv];
}

/**
 * The lines of a tool's stderr worth showing a person: its `error:`/`FATAL` lines first, at most
 * `max` characters, with secrets scrubbed.
 * @example
 * toolError("pg_restore: error: could not read from input file: end of file\n", secrets);
 * // "pg_restore: error: could not read from input file: end of file"
 */
export function toolError(stderr: string, secrets: Secrets, max = 400): string {
  const lines = stderr.split("\n").map((l) => l.trim()).filter(Boolean);
  const important = lines.filter((l) => /error|fatal|ERROR|could not|unable/.test(l));
  const shown = (important.length ? important : lines.slice(-3)).slice(0, 4).join(" / ");
  const text = secrets.scrub(shown || "no output");
  return text.length > max ? `${text.slice(0, max - 1)}\u2026` : text;
}

/** What `pg_restore --list` says about a custom-format dump. */
export interface DumpListing {
  /** TOC entries pg_restore would process (the progress total). */
  entries: number;
  /** "Archive created at" from the header: when pg_dump took its snapshot. */
  createdAt?: Date;
  dbname?: string;
  /** pg_dump's version that wrote it. */
  dumpedBy?: string;
}

/**
 * Parses `pg_restore --list` output.
 * @example
 * parseListing("; Archive created at 2024-05-01 03:00:01 UTC\n;     dbname: bisman\n215; 1259 16386 TABLE public clients postgres\n");
 * // { entries: 1, createdAt: 2024-05-01T03:00:01.000Z, dbname: "bisman" }
 */
export function parseListing(text: string): DumpListing {
  let entries = 0;
  let createdAt: Date | undefined;
  let dbname: string | undefined;
  let dumpedBy: string | undefined;
  for (const line of text.split("\n")) {
    if (/^\d+;/.test(line)) entries++;
    const created = /^; Archive created at (\d{4}-\d\d-\d\d) (\d\d:\d\d:\d\d) (\S+)/.exec(line);
    if (created) createdAt = parseDumpTime(created[1], created[2], created[3]);
    const db = /^;\s+dbname: (.*)$/.exec(line);
    if (db) dbname = db[1].trim();
    const by = /^;\s+Dumped by pg_dump version: (.*)$/.exec(line);
    if (by) dumpedBy = by[1].trim();
  }
  return { entries, createdAt, dbname, dumpedBy };
}

/** pg_dump prints its host's local time with %Z; only zones that name their offset can be trusted. */
function parseDumpTime(date: string, time: string, zone: string): Date | undefined {
  let offset: string | undefined;
  if (zone === "UTC" || zone === "GMT" || zone === "Z") offset = "Z";
  else {
    const m = /^([+-])(\d\d):?(\d\d)?$/.exec(zone);
    if (m) offset = `${m[1]}${m[2]}:${m[3] ?? "00"}`;
  }
  if (!offset) return undefined;
  const d = new Date(`${date}T${time}${offset}`);
  return Number.isNaN(d.getTime()) ? undefined : d;
}

/**
 * `pg_restore --list <file>`: reads the archive header and table of contents (no database needed).
 * A custom-format dump keeps its TOC at the start, so a file truncated later still lists: see
 * {@link readDumpToEnd}.
 */
export async function listDump(
  pgRestore: string,
  file: string,
  timeoutMs = 60_000,
): Promise<{ ok: true; listing: DumpListing; ms: number } | { ok: false; result: ToolResult }> {
  const result = await runTool([pgRestore, "--list", file], { env: libpqEnv(), timeoutMs });
  if (result.code !== 0) return { ok: false, result };
  return { ok: true, listing: parseListing(result.stdout), ms: result.ms };
}

/** `pg_restore -f /dev/null <file>`: reads every data block, so truncation and corruption show up. */
export function readDumpToEnd(pgRestore: string, file: string, timeoutMs = 30 * 60_000): Promise<ToolResult> {
  return runTool([pgRestore, "-f", "/dev/null", file], { env: libpqEnv(), timeoutMs });
}
