/**
 * Runs the break-glass CLI (`deno run -A cli.ts …`) as a subprocess, as a person would, for the CLI tests.
 *
 * Two guards against the Deno runtime rather than the CLI: the child uses the test process's own Deno cache
 * (`DENO_DIR`), since a CLI started with a fresh HOME, and so a cold cache, stalled in Deno's start-up (a futex
 * wait before any of cli.ts ran, seen four times in one afternoon under load, never with a warm cache); and a
 * child that prints nothing for {@link STALL_MS} is killed and started once more, so a stall costs a minute
 * instead of the file's 10-minute bound. A child that printed anything is never restarted.
 */

const ROOT = new URL("../../", import.meta.url).pathname;

/** Deno's cache of the test process, handed to every CLI child. */
export const DENO_DIR = Deno.env.get("DENO_DIR") ?? `${Deno.env.get("HOME") ?? "/root"}/.cache/deno`;

/** How long a CLI child may stay silent before it counts as stalled in start-up. */
const STALL_MS = 60_000;

/** What one CLI run printed and returned. */
export interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
  ms: number;
}

/** Runs `cli.ts args` with exactly `env` (plus PATH, NO_COLOR and DENO_DIR). */
export async function runCli(
  env: Record<string, string>,
  args: string[],
  opts: { stdin?: "null" } = {},
): Promise<CliRun> {
  for (let attempt = 1;; attempt++) {
    const started = performance.now();
    const child = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "cli.ts", ...args],
      cwd: ROOT,
      env: { PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin", NO_COLOR: "1", DENO_DIR, ...env },
      clearEnv: true,
      stdin: opts.stdin ?? "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    let heard = false;
    const read = (s: ReadableStream<Uint8Array>) =>
      new Response(
        s.pipeThrough(
          new TransformStream({
            transform(chunk, c) {
              heard = true;
              c.enqueue(chunk);
            },
          }),
        ),
      ).text();
    const [stdout, stderr] = [read(child.stdout), read(child.stderr)];
    let stalled = false;
    const timer = setTimeout(() => {
      if (heard) return;
      stalled = true;
      child.kill("SIGKILL");
    }, STALL_MS);
    const status = await child.status;
    clearTimeout(timer);
    const run = {
      code: status.code,
      stdout: await stdout,
      stderr: await stderr,
      ms: performance.now() - started,
    };
    if (!stalled) return run;
    if (attempt >= 2) {
      throw new Error(`deno run cli.ts ${args.join(" ")} printed nothing for ${STALL_MS} ms, twice`);
    }
    console.error(
      `cli.ts ${args.join(" ")} stalled in Deno's start-up (nothing printed in ${STALL_MS} ms): once more`,
    );
  }
}
