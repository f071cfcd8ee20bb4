/**
 * The verification step of a restore test: the configured queries (fixed SELECTs an admin wrote) run
 * read-only with a statement timeout on the restored database and, where configured, on the source at the
 * same time, and each value is compared within the tolerance.
 *
 * @module
 */

import postgres, { type Sql } from "postgres";
import type { ConnectionConfig, RestoreTestConfig } from "../core/config.ts";
import { OpsError } from "../core/errors.ts";
import { connectionOptions } from "../core/targets.ts";
import type { OpDeps } from "./types.ts";
import type { Verification } from "./restore_history.ts";
import { transaction } from "../core/pg_tx.ts";

/**
 * postgres.js options for `unsafe()` that force the extended protocol: its `unsafe()` reads `simple`
 * (src/index.js, 3.4.9) although its type declarations leave it out.
 */
const EXTENDED = { prepare: false, simple: false } as { prepare: boolean };

/**
 * Runs one fixed, admin-configured SELECT read-only with a statement timeout; returns its first value.
 *
 * The query text comes from the config file (an admin's fixed SELECT), never from a Slack user, and it
 * also runs on the source (a production server). It goes over the extended protocol, where the server
 * parses exactly one statement (`cannot insert multiple commands into a prepared statement` otherwise):
 * postgres.js sends `unsafe(text)` without parameters over the simple protocol, where
 * `select 1; commit; drop table clients` would end the READ ONLY transaction and run the DROP outside it.
 * A lone `commit` ends the transaction with nothing after it; `set transaction read write` is refused after
 * the statement_timeout query. What remains is what a read-only statement of the bot's role may do.
 */
export async function verifyQuery(sql: Sql, text: string, timeoutMs: number): Promise<string> {
  return await transaction(sql, async (tx) => {
    await tx`select set_config('statement_timeout', ${String(timeoutMs)}, true)`;
    const rows = await tx.unsafe(text, [], EXTENDED);
    if (!rows.length) throw new Error("the query returned no row");
    const v = Object.values(rows[0] as Record<string, unknown>)[0];
    return v === null || v === undefined ? "null" : v instanceof Date ? v.toISOString() : String(v);
  }, "read only");
}

/** The number a query answered ("20000"), or undefined for anything else. */
export const numeric = (s?: string) => (s !== undefined && /^-?\d+(\.\d+)?$/.test(s) ? Number(s) : undefined);

/**
 * Compares a restored value with the source's within a tolerance (in percent of the source); values that
 * are not numbers must be equal.
 * @example
 * compareValues("13500", "15000", 1); // { ok: false, diffPercent: 10 }
 */
export function compareValues(
  restored: string,
  source: string,
  tolerancePercent: number,
): { ok: boolean; diffPercent?: number } {
  const r = numeric(restored);
  const s = numeric(source);
  if (r === undefined || s === undefined) return { ok: restored === source };
  const diffPercent = (Math.abs(r - s) / Math.max(Math.abs(s), 1)) * 100;
  return { ok: diffPercent <= tolerancePercent + 1e-9, diffPercent: Math.round(diffPercent * 100) / 100 };
}

/** One Slack-safe line for a failure: an OpsError's message, else the first line, secrets scrubbed. */
export function errText(err: unknown, deps: Pick<OpDeps, "secrets">): string {
  const e = err as { message?: string; code?: string };
  const msg = err instanceof OpsError ? err.userMessage : (e?.message ?? String(err)).split("\n")[0];
  return deps.secrets.scrub(msg).slice(0, 400);
}

/**
 * Runs every verification query on the scratch database (and the source), one connection per query (up
 * to 4). Never throws for a query: a failure is that verification's reason.
 */
export async function verifyRestored(
  where: { target: string; compareWith?: string },
  rt: RestoreTestConfig,
  scratch: string,
  conn: ConnectionConfig,
  password: string | undefined,
  deps: OpDeps,
  onDone: (n: number) => void,
): Promise<Verification[]> {
  const timeoutMs = rt.statement_timeout_seconds * 1000;
  // One connection per query (up to 4): the counts of a big restore are the test's longest step after
  // pg_restore itself, and they are independent of each other.
  const db = postgres({
    ...connectionOptions({ ...conn, database: scratch }, password),
    max: Math.min(4, Math.max(1, rt.verify.length)),
  });
  let done = 0;
  try {
    const member = where.compareWith;
    const source = member
      ? await deps.targets.pool(where.target, member).catch((err: unknown) =>
        err instanceof Error ? err : new Error(String(err))
      )
      : undefined;
    return await Promise.all(rt.verify.map(async (q) => {
      const v: Verification = { name: q.name, ok: false, ...(member ? { sourceMember: member } : {}) };
      // The restored database and the source answer at once: they are different servers in production.
      const [restored, onSource] = await Promise.allSettled([
        verifyQuery(db, q.sql, timeoutMs),
        source === undefined
          ? Promise.resolve(undefined)
          : source instanceof Error
          ? Promise.reject(source)
          : verifyQuery(source, q.sql, timeoutMs),
      ]);
      if (restored.status === "rejected") {
        v.reason = `failed on the restored database: ${errText(restored.reason, deps)}`;
      } else {
        v.restored = restored.value;
        const r = numeric(v.restored);
        if (q.min !== undefined && (r === undefined || r < q.min)) {
          v.reason = `restored value ${v.restored} is below the minimum ${q.min}`;
        } else if (!member) {
          v.ok = true;
        } else if (onSource.status === "rejected") {
          v.reason = `could not run on ${member} to compare: ${errText(onSource.reason, deps)}`;
        } else {
          v.source = onSource.value;
          const c = compareValues(v.restored, v.source!, rt.tolerance_percent);
          v.ok = c.ok;
          v.diffPercent = c.diffPercent;
          if (!c.ok) {
            v.reason = `restored ${v.restored}, ${member} ${v.source}${
              c.diffPercent !== undefined
                ? ` (${c.diffPercent}% apart; tolerance ${rt.tolerance_percent}%)`
                : ""
            }`;
          }
        }
      }
      onDone(++done);
      return v;
    }));
  } finally {
    await db.end({ timeout: 5 }).catch(() => undefined);
  }
}
