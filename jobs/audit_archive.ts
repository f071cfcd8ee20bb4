/**
 * Archives old `audit_logs_dml` rows of a target to files, then deletes them: never the other way round.
 *
 * Each batch, inside one transaction on the target: lock the oldest rows past the retention (by id, FOR
 * UPDATE, so they cannot change before the delete), write them as JSON lines to `<dir>/<name>.partial`,
 * fsync, rename to the final name and fsync the folder (so the name survives a crash); with
 * `store_command`, copy the file to the durable destination. Then read the archive back from that
 * destination (`fetch_command`, else the file in `dir`) and check the row count, every id and the SHA-256
 * against what was written; write the `.sha256` beside it; delete exactly those ids and check that the rows
 * the DELETE returned are, byte for byte, the rows archived (count and SHA-256), or the transaction rolls
 * back. A destination that lost, cut or altered the file stops the batch before anything is deleted.
 *
 * The target's role needs DELETE on audit_logs_dml (the seed grants it to bisman_admin); grant it to the bot's
 * role only where `retention.audit_archive` is configured.
 *
 * @module
 */

import type { OpDeps } from "../ops/types.ts";
import type { RetentionConfig } from "../core/config.ts";
import { StepFailed } from "../core/errors.ts";
import { exec } from "../core/exec.ts";
import { unreachable } from "../core/targets.ts";
import { transaction } from "../core/pg_tx.ts";

type ArchiveConfig = NonNullable<RetentionConfig["audit_archive"]>;

/** What archiving did (or would do) for one target. */
export interface ArchiveResult {
  target: string;
  rows: number;
  files: string[];
}

async function sha256Hex(bytes: Uint8Array): Promise<string> {
  const d = await crypto.subtle.digest("SHA-256", bytes as BufferSource);
  return Array.from(new Uint8Array(d), (b) => b.toString(16).padStart(2, "0")).join("");
}

/** The retention cutoff: rows that occurred before it are archived. */
export function archiveCutoff(deps: Pick<OpDeps, "now">, olderThanDays: number): Date {
  return new Date(deps.now().getTime() - olderThanDays * 86_400_000);
}

/** The targets `retention.audit_archive` covers (none when it is not configured). */
export function archiveTargets(deps: Pick<OpDeps, "config">): string[] {
  const a = deps.config.retention.audit_archive;
  if (!a) return [];
  return a.targets ?? Object.keys(deps.config.targets);
}

/** How many rows of `target` are past the retention (for the cleanup plan). */
export async function countArchivable(deps: OpDeps, target: string): Promise<number> {
  const a = deps.config.retention.audit_archive!;
  const m = deps.targets.member(target, "primary");
  try {
    const sql = await deps.targets.pool(target);
    const [r] = await sql<{ n: number }[]>`
      select count(*)::int as n from public.audit_logs_dml
       where occurred_at < ${archiveCutoff(deps, a.older_than_days)}`;
    return r.n;
  } catch (err) {
    throw unreachable(m, err);
  }
}

/** The archive's lines, as written: one JSON row per line, each line ended by a newline. */
function archiveBytes(lines: string[]): Uint8Array {
  return new TextEncoder().encode(lines.map((l) => `${l}\n`).join(""));
}

/** Checks that `bytes` (an archive read back) hold exactly `ids`, in order, with the digest written. */
async function verifyArchive(where: string, bytes: Uint8Array, ids: string[], digest: string): Promise<void> {
  const lines = new TextDecoder().decode(bytes).split("\n").filter((l) => l.length);
  if (lines.length !== ids.length) {
    throw new Error(`${where} holds ${lines.length} rows, expected ${ids.length}`);
  }
  if ((await sha256Hex(bytes)) !== digest) {
    throw new Error(`the checksum of ${where} differs from what was written`);
  }
  lines.forEach((l, i) => {
    const id = String((JSON.parse(l) as { id: unknown }).id);
    if (id !== ids[i]) throw new Error(`${where} line ${i + 1} is row ${id}, expected ${ids[i]}`);
  });
}

/** `argv` with `{file}` and `{name}` replaced in each argument (never split or shell-parsed). */
function commandFor(argv: string[], file: string, name: string): string[] {
  return argv.map((a) => a.replaceAll("{file}", file).replaceAll("{name}", name));
}

/** The environment of the store and fetch commands: the names `command_env` lists, and nothing else. */
function commandEnv(a: ArchiveConfig): Record<string, string> {
  const env: Record<string, string> = {};
  for (const n of a.command_env) {
    const v = Deno.env.get(n);
    if (v !== undefined) env[n] = v;
  }
  return env;
}

/**
 * Makes the archive durable at its destination and reads it back from there: the file in `dir` (synced, and
 * its folder synced) or, with `store_command`, the copy `fetch_command` prints.
 */
async function storeAndReadBack(
  a: ArchiveConfig,
  path: string,
  name: string,
  deps: OpDeps,
): Promise<Uint8Array> {
  const folder = await Deno.open(a.dir, { read: true });
  try {
    await folder.sync();
  } finally {
    folder.close();
  }
  if (!a.store_command || !a.fetch_command) return await Deno.readFile(path);
  const env = commandEnv(a);
  const stored = await exec(commandFor(a.store_command, path, name), { env, timeoutMs: 30 * 60_000 });
  if (stored.code !== 0) {
    throw new Error(
      `store_command failed (exit ${stored.code}): ${deps.secrets.scrub(stored.stderr.trim()).slice(0, 300)}`,
    );
  }
  const fetched = await exec(commandFor(a.fetch_command, path, name), { env, timeoutMs: 30 * 60_000 });
  if (fetched.code !== 0) {
    throw new Error(
      `fetch_command could not read ${name} back (exit ${fetched.code}): ${
        deps.secrets.scrub(fetched.stderr.trim()).slice(0, 300)
      }`,
    );
  }
  return new TextEncoder().encode(fetched.stdout);
}

/**
 * Archives and deletes every row of `target` older than the retention, batch by batch.
 * @throws {StepFailed} when a batch cannot be written, verified or deleted (that batch stays in the table)
 */
export async function archiveAuditRows(
  deps: OpDeps,
  target: string,
  signal?: AbortSignal,
): Promise<ArchiveResult> {
  const a = deps.config.retention.audit_archive!;
  const cutoff = archiveCutoff(deps, a.older_than_days);
  const m = deps.targets.member(target, "primary");
  const sql = await deps.targets.pool(target).catch((err) => {
    throw unreachable(m, err);
  });
  const [priv] = await sql<{ ok: boolean }[]>`
    select has_table_privilege('public.audit_logs_dml', 'DELETE') as ok`.catch((err) => {
    throw unreachable(m, err);
  });
  if (!priv.ok) {
    // Checked first, so a missing grant never leaves a file behind each day for rows that stay.
    throw new StepFailed(
      "archive",
      `Cannot archive audit_logs_dml of ${target}: the bot's role ${m.conn.user} lacks DELETE on it; ` +
        "grant it (as the seed grants bisman_admin) or remove the target from retention.audit_archive.targets",
    );
  }
  try {
    await Deno.mkdir(a.dir, { recursive: true });
  } catch (err) {
    throw new StepFailed(
      "archive",
      `Cannot archive audit_logs_dml of ${target}: the folder ${a.dir} cannot be created: ${
        (err as Error).message
      }`,
      { cause: err },
    );
  }
  const result: ArchiveResult = { target, rows: 0, files: [] };
  const stamp = deps.now().toISOString().replace(/[:.]/g, "-");
  for (let batch = 1; !signal?.aborted; batch++) {
    const done = await transaction(sql, async (tx) => {
      const rows = await tx<{ id: string; line: string }[]>`
        select a.id::text as id, row_to_json(a)::text as line from public.audit_logs_dml a
         where a.occurred_at < ${cutoff}
         order by a.id limit ${a.batch_rows}
           for update`;
      if (!rows.length) return 0;
      const ids = rows.map((r) => r.id);
      const name = `audit_logs_dml_${target}_${stamp}_${String(batch).padStart(4, "0")}_${ids[0]}-${
        ids.at(-1)
      }.jsonl`;
      const path = `${a.dir.replace(/\/+$/, "")}/${name}`;
      const bytes = archiveBytes(rows.map((r) => r.line));
      const digest = await sha256Hex(bytes);
      try {
        const f = await Deno.open(`${path}.partial`, { write: true, createNew: true, mode: 0o600 });
        try {
          let off = 0;
          while (off < bytes.length) off += await f.write(bytes.subarray(off));
          await f.sync();
        } finally {
          f.close();
        }
        await Deno.rename(`${path}.partial`, path);
        const back = await storeAndReadBack(a, path, name, deps);
        await verifyArchive(a.store_command ? `the stored copy of ${name}` : path, back, ids, digest);
        await Deno.writeTextFile(`${path}.sha256`, `${digest}  ${name}\n`, { mode: 0o600 });
      } catch (err) {
        await Deno.remove(`${path}.partial`).catch(() => undefined);
        throw new StepFailed(
          "archive",
          `Archiving audit_logs_dml of ${target} stopped before deleting anything: ${
            err instanceof Error ? err.message : err
          }`,
          { cause: err },
        );
      }
      // The rows the DELETE removed must be the rows archived, byte for byte.
      const deleted = await tx<{ id: string; line: string }[]>`
        delete from public.audit_logs_dml a where a.id = any(${ids}::bigint[])
        returning a.id::text as id, row_to_json(a)::text as line`;
      const gone = [...deleted].sort((
        x,
        y,
      ) => (BigInt(x.id) < BigInt(y.id) ? -1 : BigInt(x.id) > BigInt(y.id) ? 1 : 0));
      if (gone.length !== ids.length || (await sha256Hex(archiveBytes(gone.map((r) => r.line)))) !== digest) {
        throw new StepFailed(
          "delete",
          `Archiving audit_logs_dml of ${target}: the ${gone.length} rows the delete removed are not the ${ids.length} archived; rolled back`,
        );
      }
      result.files.push(path);
      return ids.length;
    }).catch((err) => {
      if (err instanceof StepFailed) throw err;
      throw new StepFailed(
        "delete",
        `Archiving audit_logs_dml of ${target} failed; nothing of this batch was deleted: ${
          (err as { code?: string })?.code ?? ""
        } ${err instanceof Error ? err.message.split("\n")[0] : err}`,
        { cause: err },
      );
    });
    if (!done) break;
    result.rows += done;
    await deps.audit.append({
      actor: "scheduler",
      action: "audit_archive.batch",
      target,
      outcome: "succeeded",
      details: { rows: done, file: result.files.at(-1), cutoff: cutoff.toISOString() },
    });
    if (done < a.batch_rows) break;
  }
  return result;
}
