/**
 * Runs external programs (pg_dump, pg_restore, pgbackrest, amtool) with captured output, a timeout, and
 * optionally as the postgres OS user (PostgreSQL's tools refuse some work as root).
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
  env?: Record<string, string>;
  cwd?: string;
  timeoutMs?: number;
  /** Run through `runuser -u <user> --` when the bot runs as root. */
  asUser?: string;
  stdin?: string;
  signal?: AbortSignal;
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
      env: opts.env,
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
