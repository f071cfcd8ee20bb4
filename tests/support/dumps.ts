/**
 * Sample dumps for the tests that read a dump folder (backup_status, restore_test, digest, cancel) and for
 * the sandbox: pg_dump of a test database in custom format, and file ages the folder checks judge.
 */

import assert from "node:assert/strict";
import type { TestCluster } from "./cluster.ts";

/** The argv of a custom-format pg_dump of `db` on `cluster`'s primary into `file`. */
export function pgDumpArgv(cluster: TestCluster, db: string, file: string): string[] {
  return [
    "pg_dump",
    "-Fc",
    "-h",
    "127.0.0.1",
    "-p",
    String(cluster.primary.port),
    "-U",
    "postgres",
    "-f",
    file,
    db,
  ];
}

/** Runs pg_dump of `db` into `file`; fails the test with pg_dump's stderr if it does not succeed. */
export async function pgDump(cluster: TestCluster, db: string, file: string): Promise<void> {
  const r = await cluster.run(pgDumpArgv(cluster, db, file));
  assert.equal(r.code, 0, r.stderr);
}

/** Sets a file's modification time `ageMs` in the past (the dump folder check judges file times). */
export async function setAge(path: string, ageMs: number): Promise<void> {
  const t = new Date(Date.now() - ageMs);
  await Deno.utime(path, t, t);
}
