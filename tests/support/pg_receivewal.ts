/**
 * A real `pg_receivewal` streaming a test cluster's WAL, as the postgres OS user like the cluster itself:
 * creates its directory (owned by postgres) and, when asked, its physical replication slot, starts it with
 * `--no-loop`, and waits until the primary's pg_stat_replication shows it streaming.
 *
 * ```ts
 * await using rw = await startReceiveWal(cluster, { slot: "wal_archive" });
 * rw.dir; // its -D directory
 * ```
 */

import type { TestCluster } from "../../standins/cluster.ts";
import { waitFor } from "../../standins/wait.ts";

/** A running pg_receivewal. */
export interface ReceiveWal extends AsyncDisposable {
  /** Its `-D` directory. */
  readonly dir: string;
  /** The pg_receivewal process. */
  readonly pid: number;
  /** Freezes pg_receivewal (SIGSTOP): it stops receiving and reporting, as a hung client would. */
  pause(): void;
  /** Lets it run again (SIGCONT). */
  resume(): void;
  /** Stops it (SIGTERM) and waits for it to exit; idempotent. */
  stop(): Promise<void>;
}

/**
 * The postgres OS user's uid and gid when the test runs as root. The process is started with them directly
 * rather than through runuser: runuser stops itself when its child is stopped, so a paused and resumed
 * pg_receivewal could leave it stopped for good, and stopping it would then wait forever.
 */
function postgresIds(): { uid: number; gid: number } | undefined {
  if (Deno.uid() !== 0) return undefined;
  const line = Deno.readTextFileSync("/etc/passwd").split("\n").find((l) => l.startsWith("postgres:"));
  if (!line) throw new Error("no postgres OS user to run pg_receivewal as");
  const f = line.split(":");
  return { uid: Number(f[2]), gid: Number(f[3]) };
}

/** Starts pg_receivewal against the cluster's primary. */
export async function startReceiveWal(
  cluster: TestCluster,
  opts: {
    slot?: string;
    createSlot?: boolean;
    dir?: string;
    applicationName?: string;
    statusInterval?: number;
  } = {},
): Promise<ReceiveWal> {
  const bin = `${cluster.binDir}/pg_receivewal`;
  const dir = opts.dir ?? `${cluster.dir}/wal-archive`;
  await cluster.run(["mkdir", "-p", dir], { asPostgres: true });
  const conn = ["-h", "127.0.0.1", "-p", String(cluster.primary.port), "-U", "postgres"];
  if (opts.slot && opts.createSlot !== false) {
    const r = await cluster.run([bin, ...conn, "-S", opts.slot, "--create-slot", "--if-not-exists"], {
      asPostgres: true,
    });
    if (r.code !== 0) throw new Error(`pg_receivewal --create-slot failed: ${r.stderr}`);
  }
  const argv = [
    bin,
    ...conn,
    "-D",
    dir,
    "--no-loop",
    "--no-password",
    `--status-interval=${opts.statusInterval ?? 10}`,
    ...(opts.slot ? ["-S", opts.slot] : []),
    ...(opts.applicationName ? ["-d", `application_name=${opts.applicationName}`] : []),
  ];
  const env = Object.fromEntries(Object.entries(Deno.env.toObject()).filter(([k]) => !k.startsWith("PG")));
  const child = new Deno.Command(argv[0], {
    args: argv.slice(1),
    ...postgresIds(),
    cwd: cluster.dir,
    env,
    clearEnv: true,
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const stderr = new Response(child.stderr).text();
  const app = opts.applicationName ?? "pg_receivewal";
  try {
    await waitFor(async () => {
      const n = (await cluster.primary.psql(
        `select count(*) from pg_stat_replication where application_name = '${app}' and state = 'streaming'`,
      )).trim();
      return n !== "0";
    }, { timeoutMs: 15_000, what: `pg_receivewal (${app}) to stream` });
  } catch (err) {
    try {
      child.kill("SIGTERM");
    } catch { /* exited */ }
    await child.status;
    throw new Error(`${(err as Error).message}\npg_receivewal: ${await stderr}`);
  }
  const pid = child.pid;
  const resume = () => {
    try {
      Deno.kill(pid, "SIGCONT");
    } catch { /* already gone */ }
  };
  let stopping: Promise<void> | undefined;
  const stop = () =>
    stopping ??= (async () => {
      resume();
      try {
        child.kill("SIGTERM");
      } catch { /* already gone */ }
      await child.status;
      await stderr.catch(() => "");
    })();
  return { dir, pid, pause: () => Deno.kill(pid, "SIGSTOP"), resume, stop, [Symbol.asyncDispose]: stop };
}
