/**
 * The sandbox's PostgreSQL: a primary and a streaming replica kept in the data folder (`.data/pg`), so
 * they survive restarts. Built on the test harness's {@link openCluster} (standins/cluster.ts), which
 * creates the cluster in a folder or starts an existing one again; the tests keep using `startCluster()`
 * for throwaway clusters in /tmp.
 *
 * @module
 */

import { findPgBinDir, openCluster, type PersistentCluster } from "../standins/cluster.ts";

export type { PersistentCluster };

/** What to install when the PostgreSQL server is missing (Debian package names). */
export const SERVER_PACKAGES = "postgresql-15 postgresql-15-pgaudit";

/** Raised when the machine lacks the PostgreSQL server; the message says exactly what to install. */
export class MissingServerError extends Error {
  constructor(detail: string) {
    super(
      `The sandbox needs the PostgreSQL 15 server, which is not installed (${detail}).\n` +
        `Install it, then run \`deno task dev\` again:\n` +
        `  ${Deno.uid() === 0 ? "" : "sudo "}apt-get update && ${
          Deno.uid() === 0 ? "" : "sudo "
        }apt-get install -y ${SERVER_PACKAGES}`,
    );
    this.name = "MissingServerError";
  }
}

/** The server binaries' folder. @throws {MissingServerError} with the install command */
export async function requireServer(): Promise<string> {
  try {
    return await findPgBinDir();
  } catch (err) {
    throw new MissingServerError(err instanceof Error ? err.message.split(".")[0] : String(err));
  }
}

async function fileExists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
}

/** The preload libraries that are installed: pgaudit comes from its own package. */
async function installedPreloads(binDir: string): Promise<string[]> {
  const libDir = binDir.replace(/\/bin$/, "/lib");
  const out: string[] = [];
  for (const lib of ["pgaudit", "pg_stat_statements"]) {
    if (await fileExists(`${libDir}/${lib}.so`)) out.push(lib);
  }
  return out;
}

/**
 * True when the postgres OS user can reach `dir` (a checkout under a home folder with mode 0750 is not
 * reachable, and PostgreSQL refuses to run as root).
 */
async function postgresCanReach(dir: string): Promise<boolean> {
  if (Deno.uid() !== 0) return true;
  const out = await new Deno.Command("runuser", {
    args: ["-u", "postgres", "--", "test", "-x", dir],
    env: { PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin" },
    clearEnv: true,
    stdout: "null",
    stderr: "null",
  }).output().catch(() => undefined);
  return out?.code === 0;
}

/**
 * Where the cluster lives: `<dataDir>/pg`, or, when the postgres user cannot reach the data folder, a
 * folder in its home that `<dataDir>/pg` links to (so the data still survives restarts).
 */
export async function clusterDir(dataDir: string): Promise<{ dir: string; note?: string }> {
  const link = `${dataDir}/pg`;
  const st = await Deno.lstat(link).catch(() => undefined);
  if (st?.isSymlink) return { dir: await Deno.realPath(link) };
  if (st || await postgresCanReach(dataDir)) return { dir: link };
  const abs = await Deno.realPath(dataDir);
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(abs)));
  const tag = Array.from(digest.slice(0, 6), (b) => b.toString(16).padStart(2, "0")).join("");
  const dir = `/var/lib/postgresql/bisman-sandbox-${tag}`;
  await Deno.mkdir(dir, { recursive: true });
  await Deno.symlink(dir, link);
  return {
    dir,
    note: `The postgres user cannot reach ${abs}, so the cluster lives in ${dir} (linked from ${link}).`,
  };
}

/** Options of {@link openSandboxCluster}. */
export interface SandboxClusterOptions {
  /** The sandbox's data folder (default `.data`). */
  dataDir: string;
  /** Ports to reuse when free (the previous run's). */
  ports?: { primary?: number; replica?: number };
  /** WAL archiving on (pgBackRest sets archive_command once its stanza exists). */
  archive?: boolean;
}

/**
 * Opens the sandbox's primary and replica: creates them on first use, starts them again afterwards.
 * @throws {MissingServerError} when the PostgreSQL server is not installed
 */
export async function openSandboxCluster(
  opts: SandboxClusterOptions,
): Promise<{ cluster: PersistentCluster; note?: string }> {
  const binDir = await requireServer();
  await Deno.mkdir(opts.dataDir, { recursive: true });
  const { dir, note } = await clusterDir(opts.dataDir);
  const preload = await installedPreloads(binDir);
  const cluster = await openCluster({
    dir,
    name: "sandbox",
    replica: true,
    preload,
    archive: opts.archive ?? false,
    ports: opts.ports,
    conf: {
      // The digest and `/bisman slow-queries` read pg_stat_statements; the lag check reads replay times.
      ...(preload.includes("pg_stat_statements") ? { "pg_stat_statements.track": "all" } : {}),
      track_commit_timestamp: "on",
      // Off, so the `idle in transaction` sessions that "make trouble" opens stay until someone acts.
      idle_in_transaction_session_timeout: "0",
      log_min_duration_statement: "500",
      // Log files in each server's own data folder, which the sandbox's "Fluent Bit" ships to its
      // Elasticsearch stand-in (sandbox/evidence.ts): the checklist's centralized-logging item reads both.
      logging_collector: "on",
      log_directory: "log",
      log_filename: "postgresql-%Y-%m-%d.log",
    },
  });
  return { cluster, note };
}

/**
 * The bot's own state database gets a small server of its own (`<pg>/state`, no replica, no preloads): the
 * console's "Stop the primary" must stop the target's primary without stopping the bot that is to promote
 * its replica, as in production, where the state database never lives on the target it operates.
 */
export async function openStateCluster(
  opts: { dataDir: string; port?: number },
): Promise<PersistentCluster> {
  await requireServer();
  const { dir } = await clusterDir(opts.dataDir);
  return await openCluster({
    dir: `${dir}/state`,
    name: "sandbox-state",
    replica: false,
    ports: { primary: opts.port },
  });
}
