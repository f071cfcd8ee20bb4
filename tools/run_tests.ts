/**
 * The suite runner behind `deno task test`: type-checks the suite once, then runs every test file in its own
 * `deno test` process, two at a time (this machine's cores), each with a time bound, and ends with one summary
 * line in `deno test`'s own format (`ok | 155 passed (510 steps) | 0 failed (4m2s)`), which `.ci/run` reads.
 *
 * Why not one `deno test --parallel tests/`: in two of about fifteen full runs on this machine, one test
 * file of that single process never finished and the run waited forever. The second time (the first was
 * not examined) the file had printed nothing from its first moments, and gdb showed its worker thread in a
 * blocking one-byte `recv` on a socket pair inside the Deno runtime, with no child process and no socket
 * to PostgreSQL. Files in separate processes share none of that state. The same runtime stalled again in a
 * later session, in CLI processes the tests start with a fresh HOME (so a cold Deno cache): four of them sat
 * in a futex wait before cli.ts ran, with no output (gdb: three threads, no tokio workers); with the test
 * process's own cache (tests/support/cli_process.ts passes DENO_DIR) none has since. A file that still runs
 * past its bound is killed and reported as
 * timed out, then run once more, so a stall in the runtime costs one file's time rather than the whole run;
 * a second timeout fails the suite. Failures are never retried.
 *
 *   deno run -A tools/run_tests.ts [files or folders …]   (default: tests/)
 *   TEST_FILE_TIMEOUT_SECONDS=600  TEST_JOBS=2
 *
 * @module
 */

const ROOT = new URL("../", import.meta.url).pathname;
const FILE_TIMEOUT_MS = Number(Deno.env.get("TEST_FILE_TIMEOUT_SECONDS") ?? "600") * 1000;
const JOBS = Math.max(1, Number(Deno.env.get("TEST_JOBS") ?? navigator.hardwareConcurrency ?? 2));
const TEST_FILE = /(^|[_.])test\.(ts|tsx|mts|js|mjs|jsx)$/;

/** The counts `deno test` prints in its last line. */
interface Counts {
  passed: number;
  passedSteps: number;
  failed: number;
  failedSteps: number;
}

/** What one file's run came to. */
interface FileRun {
  file: string;
  output: string;
  code: number;
  timedOut: boolean;
  ms: number;
  counts?: Counts;
}

// deno-lint-ignore no-control-regex
const stripAnsi = (s: string) => s.replace(/\u001b\[[0-9;]*m/g, "");

/** Reads `ok | 2 passed (9 steps) | 0 failed (13s)` or `FAILED | 0 passed | 1 failed (2 steps) (2s)`. */
export function parseSummary(output: string): Counts | undefined {
  const line = stripAnsi(output).split("\n").reverse().find((l) => /^(ok|FAILED) \| \d+ passed/.test(l));
  if (!line) return undefined;
  const num = (re: RegExp) => Number(re.exec(line)?.[1] ?? 0);
  return {
    passed: num(/(\d+) passed/),
    passedSteps: num(/\d+ passed \((\d+) steps?\)/),
    failed: num(/\| (\d+) failed/),
    failedSteps: num(/\d+ failed \((\d+) steps?\)/),
  };
}

/** Test files under the given paths, in a stable order. */
async function testFiles(paths: string[]): Promise<string[]> {
  const out: string[] = [];
  const walk = async (p: string) => {
    const st = await Deno.stat(`${ROOT}${p}`);
    if (st.isFile) {
      out.push(p);
      return;
    }
    for await (const e of Deno.readDir(`${ROOT}${p}`)) {
      const child = `${p.replace(/\/$/, "")}/${e.name}`;
      if (e.isDirectory) await walk(child);
      else if (e.isFile && TEST_FILE.test(e.name)) out.push(child);
    }
  };
  for (const p of paths) await walk(p);
  return out.sort();
}

/** Runs one file in its own process, killing it past the bound. */
async function runFile(file: string): Promise<FileRun> {
  const started = performance.now();
  const child = new Deno.Command(Deno.execPath(), {
    args: ["test", "-A", "--no-check", file],
    cwd: ROOT,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    child.kill("SIGTERM");
    // A process that ignores SIGTERM is not allowed to hold the run.
    setTimeout(() => {
      try {
        child.kill("SIGKILL");
      } catch { /* already gone */ }
    }, 5000);
  }, FILE_TIMEOUT_MS);
  const chunks: string[] = [];
  const collect = async (stream: ReadableStream<Uint8Array>) => {
    for await (const text of stream.pipeThrough(new TextDecoderStream())) chunks.push(text);
  };
  const [status] = await Promise.all([child.status, collect(child.stdout), collect(child.stderr)]);
  clearTimeout(timer);
  const output = chunks.join("");
  return {
    file,
    output,
    code: status.code,
    timedOut,
    ms: performance.now() - started,
    counts: timedOut ? undefined : parseSummary(output),
  };
}

function duration(ms: number): string {
  const s = Math.round(ms / 1000);
  return s >= 60 ? `${Math.floor(s / 60)}m${s % 60}s` : `${s}s`;
}

async function main(): Promise<number> {
  const started = performance.now();
  const files = await testFiles(Deno.args.length ? Deno.args : ["tests/"]);
  if (!files.length) {
    console.error("no test files found");
    return 1;
  }
  // One type check of the whole suite, as `deno test` would do before running anything.
  const check = await new Deno.Command(Deno.execPath(), { args: ["check", ...files], cwd: ROOT }).output();
  if (check.code !== 0) {
    await Deno.stdout.write(check.stdout);
    await Deno.stderr.write(check.stderr);
    console.log(`FAILED | 0 passed | 1 failed (type check) (${duration(performance.now() - started)})`);
    return 1;
  }
  console.log(`running ${files.length} test files, ${JOBS} at a time, each in its own process`);

  const total: Counts = { passed: 0, passedSteps: 0, failed: 0, failedSteps: 0 };
  const problems: string[] = [];
  const queue = [...files];
  const report = (r: FileRun, note = "") => {
    console.log(`\n── ${r.file} (${duration(r.ms)})${note}`);
    console.log(r.output.trimEnd());
  };
  const worker = async () => {
    for (let file = queue.shift(); file; file = queue.shift()) {
      let r = await runFile(file);
      if (r.timedOut) {
        report(r, ` TIMED OUT after ${duration(FILE_TIMEOUT_MS)}: killed, running it once more`);
        r = await runFile(file);
      }
      report(r, r.timedOut ? ` TIMED OUT again after ${duration(FILE_TIMEOUT_MS)}` : "");
      if (r.counts) {
        total.passed += r.counts.passed;
        total.passedSteps += r.counts.passedSteps;
        total.failed += r.counts.failed;
        total.failedSteps += r.counts.failedSteps;
        if (r.code !== 0 && r.counts.failed === 0) {
          total.failed += 1;
          problems.push(`${file}: exit code ${r.code}`);
        }
        if (r.counts.failed) problems.push(`${file}: ${r.counts.failed} failed`);
      } else {
        total.failed += 1;
        problems.push(`${file}: ${r.timedOut ? "timed out twice" : `no summary (exit code ${r.code})`}`);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(JOBS, files.length) }, worker));

  if (problems.length) console.log(`\nfailures:\n${problems.map((p) => `  ${p}`).join("\n")}`);
  const steps = (n: number) => (n ? ` (${n} step${n === 1 ? "" : "s"})` : "");
  console.log(
    `\n${total.failed ? "FAILED" : "ok"} | ${total.passed} passed${
      steps(total.passedSteps)
    } | ${total.failed} failed${steps(total.failedSteps)} (${duration(performance.now() - started)})`,
  );
  return total.failed ? 1 : 0;
}

if (import.meta.main) Deno.exit(await main());
