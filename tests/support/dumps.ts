/**
 * Sample dumps for the tests that read a dump folder (backup_status, restore_test, digest, cancel) and for
 * the sandbox: pg_dump of a test database in custom format, and file ages the folder checks judge.
 */

import assert from "node:assert/strict";
import { pgDumpArgv, primaryConnArgs, type TestCluster } from "../../standins/cluster.ts";

export { pgDumpArgv, primaryConnArgs };

/** Runs pg_dump of `db` into `file`; fails the test with pg_dump's stderr if it does not succeed. */
export async function pgDump(cluster: TestCluster, db: string, file: string): Promise<void> {
  const r = await cluster.run(pgDumpArgv(cluster, db, file));
  assert.equal(r.code, 0, r.stderr);
}

/** Restores `file` into the existing database `db`; fails the test with pg_restore's stderr if it does not succeed. */
export async function pgRestore(cluster: TestCluster, db: string, file: string): Promise<void> {
  const r = await cluster.run(["pg_restore", ...primaryConnArgs(cluster), "-d", db, file]);
  assert.equal(r.code, 0, r.stderr);
}

/**
 * Points target `main` of a config document at database `src`, the dump folder `dumps` (read with
 * `cluster`'s own pg_restore: Debian's /usr/bin wrapper would add a Perl start-up to every measurement) and
 * a restore server on 127.0.0.1:`serverPort`, verifying the sample's three main tables; `restoreTest` adds
 * or overrides restore_test settings. For the benchmarks that run restore tests.
 */
export function withSampleRestoreTest(
  doc: Record<string, any>,
  p: {
    cluster: TestCluster;
    src: string;
    dumps: string;
    serverPort: number;
    restoreTest: Record<string, unknown>;
  },
): void {
  doc.targets.main.primary.database = p.src;
  doc.targets.main.backups = {
    dump_folder: { path: p.dumps, pattern: "bisman_*.dump" },
    tools: { pg_restore: `${p.cluster.binDir}/pg_restore` },
  };
  doc.targets.main.restore_test = {
    server: {
      host: "127.0.0.1",
      port: p.serverPort,
      database: "postgres",
      user: "postgres",
      sslmode: "disable",
    },
    requires_approval: false,
    verify: [
      { name: "clients", sql: "SELECT COUNT(*) FROM clients", min: 1 },
      { name: "payment_requests", sql: "SELECT COUNT(*) FROM payment_requests" },
      { name: "payments", sql: "SELECT COUNT(*) FROM payments" },
    ],
    ...p.restoreTest,
  };
}

/** Sets a file's modification time `ageMs` in the past (the dump folder check judges file times). */
export async function setAge(path: string, ageMs: number): Promise<void> {
  const t = new Date(Date.now() - ageMs);
  await Deno.utime(path, t, t);
}
