/**
 * Runs external programs (pg_dump, pg_restore, pgbackrest, amtool) with captured output, a timeout, and
 * optionally as the postgres OS user (PostgreSQL's tools refuse some work as root).
 *
 * A child never inherits the bot's environment: the bot holds SLACK_BOT_TOKEN, SLACK_SIGNING_SECRET,
 * VAULT_TOKEN, DATABASE_URL, ALERTS_TOKEN and every `password_env` variable, and a tool (or anything it
 * runs, or a core dump of it) has no use for them. Each child gets {@link toolEnv} plus what its caller
 * names explicitly (a libpq connection, PGPASSWORD for the one server it talks to).
 *
 * @module
 */

export interface ExecResult {
  code: number;
  stdout: string;
  stderr: string;
  ms: number;
}

export interface ExecOptions {
  /** Added to {@link toolEnv}; nothing else of the bot's environment reaches the child. */
  env?: Record<string, string>;
  cwd?: string;
  timeoutMs?: number;
  /** Run through `runuser -u <user> --` when the bot runs as root. */
  asUser?: string;
  stdin?: string;
  signal?: AbortSignal;
}

/**
 * The whole environment a child program starts from: where programs are (PATH), the home folder (libpq
 * reads ~/.pgpass and ~/.postgresql/root.crt there, pgBackRest its default paths), the temp folder, and
 * English, unlocalised messages (the bot parses some of them). Nothing else of the bot's environment.
 * @example
 * toolEnv(); // { PATH: "/usr/local/bin:/usr/bin:/bin", HOME: "/root", LC_ALL: "C" }
 */
export function toolEnv(): Record<string, string> {
  const env: Record<string, string> = {
    PATH: Deno.env.get("PATH") ?? "/usr/local/bin:/usr/bin:/bin",
    LC_ALL: "C",
  };
  for (const name of ["HOME", "TMPDIR", "TZ"]) {
    const v = Deno.env.get(name);
    if (v !== undefined) env[name] = v;
  }
  return env;
}

/** Runs `cmd` and returns its exit code and output; never throws for a non-zero exit. */
export async function exec(cmd: string[], opts: ExecOptions = {}): Promise<ExecResult> {
  const started = performance.now();
  const argv = opts.asUser && Deno.uid() === 0 ? ["runuser", "-u", opts.asUser, "--", ...cmd] : cmd;
  const controller = new AbortController();
  const timer = opts.timeoutMs ? setTimeout(() => controller.abort(), opts.timeoutMs) : undefined;
  opts.signal?.addEventListener("abort", () => controller.abort());
  try {
    const child = new Deno.Command(argv[0], {
      args: argv.slice(1),
      env: { ...toolEnv(), ...opts.env },
      clearEnv: true,
      cwd: opts.cwd,
      stdin: opts.stdin !== undefined ? "piped" : "null",
      stdout: "piped",
      stderr: "piped",
      signal: controller.signal,
    }).spawn();
    if (opts.stdin !== undefined) {
      const w = child.stdin.getWriter();
      await w.write(new TextEncoder().encode(opts.stdin));
      await w.close();
    }
    const out = await child.output();
    return {
      code: out.code,
      stdout: new TextDecoder().decode(out.stdout),
      stderr: new TextDecoder().decode(out.stderr),
      ms: performance.now() - started,
    };
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) {
      return { code: 127, stdout: "", stderr: `${cmd[0]}: not installed`, ms: performance.now() - started };
    }
    throw err;
  } finally {
    clearTimeout(timer);
  }
}
