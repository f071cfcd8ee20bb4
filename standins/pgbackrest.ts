/**
 * A real pgBackRest stanza for a throwaway test cluster.
 *
 * pgBackRest 2.45 runs with its own `--config=<file>`: repo, spool, lock and log paths live in a folder
 * inside the cluster's temp dir (owned by the postgres user, removed with the cluster), and every command
 * runs as the postgres user. The cluster must have been started with `archive: true` (archive_mode needs
 * a restart; archive_command only a reload, which {@link setupStanza} does).
 *
 * ```ts
 * await using c = await startCluster({ archive: true });
 * const stanza = await setupStanza(c);          // stanza-create, archive_command, check
 * await stanza.backup("full");                  // ~3 s for an empty cluster
 * const info = await stanza.info();             // parsed `info --output=json`
 * await stanza.breakArchiving();                // archive_command now fails; pg_stat_archiver shows it
 * ```
 */

import type { TestCluster } from "./cluster.ts";
import { waitFor } from "./wait.ts";

/** A configured stanza on a test cluster. */
export interface TestStanza {
  /** The stanza's name. */
  readonly name: string;
  /** The pgBackRest config file (pass as `--config=`). */
  readonly configFile: string;
  /** The repository folder (repo1-path). */
  readonly repoPath: string;
  /** Runs `pgbackrest --config=… --stanza=… <args>` as postgres; throws with stderr on failure. */
  run(...args: string[]): Promise<string>;
  /** Takes a backup of the given type. */
  backup(type?: "full" | "diff" | "incr"): Promise<void>;
  /** `info --output=json`, parsed (one element per stanza). */
  info(): Promise<unknown[]>;
  /** Forces a WAL switch and waits until pg_stat_archiver counts one more archived segment. */
  archiveOne(): Promise<void>;
  /** Points archive_command at a config file that does not exist, so every archive-push fails. */
  breakArchiving(): Promise<void>;
  /** Restores the working archive_command. */
  repairArchiving(): Promise<void>;
}

const PGBACKREST = "/usr/bin/pgbackrest";

/**
 * Writes a pgBackRest config for `cluster`'s primary, sets archive_command, creates the stanza and runs
 * `check` (which proves a WAL segment reaches the repository).
 * @throws Error with pgBackRest's output when any step fails
 */
export async function setupStanza(
  cluster: TestCluster,
  opts: { name?: string; retentionFull?: number } = {},
): Promise<TestStanza> {
  const name = opts.name ?? "bisman";
  const root = `${cluster.dir}/pgbackrest`;
  for (const sub of ["repo", "log", "lock", "spool"]) await Deno.mkdir(`${root}/${sub}`, { recursive: true });
  const configFile = `${root}/pgbackrest.conf`;
  await Deno.writeTextFile(
    configFile,
    [
      "[global]",
      `repo1-path=${root}/repo`,
      `repo1-retention-full=${opts.retentionFull ?? 2}`,
      `log-path=${root}/log`,
      `lock-path=${root}/lock`,
      `spool-path=${root}/spool`,
      "log-level-console=warn",
      "log-level-file=info",
      "start-fast=y",
      "compress-type=lz4",
      "",
      `[${name}]`,
      `pg1-path=${cluster.primary.dataDir}`,
      `pg1-port=${cluster.primary.port}`,
      `pg1-socket-path=${cluster.primary.socketDir}`,
      "pg1-user=postgres",
      "",
    ].join("\n"),
  );
  await cluster.run(["chown", "-R", "postgres:postgres", root]);

  const run = async (...args: string[]): Promise<string> => {
    const res = await cluster.run([PGBACKREST, `--config=${configFile}`, `--stanza=${name}`, ...args], {
      asPostgres: true,
    });
    if (res.code !== 0) {
      throw new Error(`pgbackrest ${args.join(" ")} failed (exit ${res.code}): ${res.stderr}${res.stdout}`);
    }
    return res.stdout;
  };
  const goodCommand = `${PGBACKREST} --config=${configFile} --stanza=${name} archive-push %p`;
  const setArchiveCommand = async (cmd: string) => {
    await cluster.primary.psql(`ALTER SYSTEM SET archive_command = '${cmd.replaceAll("'", "''")}'`);
    await cluster.primary.reload();
  };
  const archivedCount = async () =>
    Number((await cluster.primary.psql("select archived_count from pg_stat_archiver")).trim());

  await setArchiveCommand(goodCommand);
  await run("stanza-create");
  await run("check");

  return {
    name,
    configFile,
    repoPath: `${root}/repo`,
    run,
    backup: async (type = "full") => {
      await run(`--type=${type}`, "backup");
    },
    info: async () => JSON.parse(await run("info", "--output=json")) as unknown[],
    archiveOne: async () => {
      const before = await archivedCount();
      await cluster.primary.psql(
        "create table if not exists _archive_probe(x int); insert into _archive_probe values (1); select pg_switch_wal();",
      );
      await waitFor(async () => (await archivedCount()) > before, {
        timeoutMs: 20_000,
        what: "a WAL segment to be archived",
      });
    },
    breakArchiving: () =>
      setArchiveCommand(`${PGBACKREST} --config=${root}/missing.conf --stanza=${name} archive-push %p`),
    repairArchiving: () => setArchiveCommand(goodCommand),
  };
}
