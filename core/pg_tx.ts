/**
 * Transactions that survive their connection dying.
 *
 * postgres.js 3.4.9 (src/index.js, `begin`/`scope`) rejects a transaction at once when its connection
 * closes, but the transaction's body keeps going: when the body settles, `scope` writes ROLLBACK (or
 * COMMIT) to the closed connection, and that write throws a TypeError from a timer (`nextWrite` on a null
 * socket) that no caller can catch. Uncaught, it ends the process: a state database restart in the middle
 * of an audit append would take the bot down with it.
 *
 * {@link transaction} is `sql.begin` without that path: once the connection is lost the body's scope is
 * left pending (PostgreSQL rolls the transaction back by itself), so nothing is ever written to the dead
 * connection; the caller still gets the rejection at once.
 *
 * Upstream: porsager/postgres#1208 (and the open fixes #1209, #1215); drop this once a release has them.
 *
 * @module
 */

import type { Sql, TransactionSql } from "postgres";

/** SQLSTATEs and postgres.js codes that mean the connection itself is gone. */
export function isConnectionLoss(err: unknown): boolean {
  const code = (err as { code?: unknown })?.code;
  if (typeof code !== "string") return false;
  return /^(08|57P0)/.test(code) || /^CONNECTION_|^CONNECT_TIMEOUT$/.test(code);
}

/**
 * `sql.begin(body)` that never sends COMMIT or ROLLBACK on a connection that is gone.
 *
 * @param options `begin` options such as `"read only"`
 * @returns `tx`, which settles like `sql.begin` (rejecting at once when the connection closes), and
 *   `steps`, which settles when `body` does: after a lost connection, await it to learn how far it got
 */
export function beginGuarded<T>(
  sql: Sql,
  body: (tx: TransactionSql) => Promise<T>,
  options = "",
): { tx: Promise<T>; steps: () => Promise<T> | undefined } {
  let steps: Promise<T> | undefined;
  let lost = false;
  const hang = () => new Promise<never>(() => {});
  // One macrotask lets a closing socket's rejections land before deciding.
  const settle = () => new Promise((r) => setTimeout(r, 0));
  const tx = sql.begin(options, (t) => {
    steps = body(t);
    return steps.then(
      async (v) => {
        await settle();
        return lost ? hang() : v;
      },
      async (e) => {
        await settle();
        if (lost || isConnectionLoss(e)) return hang();
        throw e;
      },
    );
  }) as Promise<T>;
  tx.catch(() => (lost = true));
  return { tx, steps: () => steps };
}

/**
 * A transaction: commits when `body` resolves, rolls back when it rejects, and rejects at once, without
 * touching the connection again, when the connection is lost.
 *
 * A connection whose backend was terminated mid-query keeps that error in postgres.js 3.4.9 and hands it
 * to the next query it runs after reconnecting (upstream porsager/postgres#1208): a BEGIN that fails with
 * a connection error therefore runs once more. Nothing of the transaction ran, so that is always safe.
 * @example
 * const n = await transaction(sql, async (tx) => (await tx`select 1 as n`)[0].n);
 */
export async function transaction<T>(
  sql: Sql,
  body: (tx: TransactionSql) => Promise<T>,
  options = "",
): Promise<T> {
  const first = beginGuarded(sql, body, options);
  try {
    return await first.tx;
  } catch (err) {
    if (first.steps() !== undefined || !isConnectionLoss(err)) throw err;
    return await beginGuarded(sql, body, options).tx;
  }
}
