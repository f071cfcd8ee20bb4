/**
 * The freeze switch (`bisman_ops.freeze`, sql/0002_requests.sql): while it is on, destructive actions are
 * refused. Ground level, because the gate checks it and the `unfreeze` operation lifts it.
 *
 * @module
 */

import type { Sql } from "postgres";

/** The freeze switch. */
export interface FreezeState {
  frozen: boolean;
  reason?: string;
  by?: string;
  byName?: string;
  at?: Date;
}

/** The freeze switch as it stands. */
export async function readFreeze(sql: Sql): Promise<FreezeState> {
  const [row] = await sql<
    {
      frozen: boolean;
      reason: string | null;
      frozen_by: string | null;
      frozen_by_name: string | null;
      frozen_at: Date | null;
    }[]
  >`select frozen, reason, frozen_by, frozen_by_name, frozen_at from bisman_ops.freeze`;
  if (!row?.frozen) return { frozen: false };
  return {
    frozen: true,
    reason: row.reason ?? undefined,
    by: row.frozen_by ?? undefined,
    byName: row.frozen_by_name ?? undefined,
    at: row.frozen_at ?? undefined,
  };
}

/**
 * Freezes destructive work. An existing freeze is kept as it is (its reason and author stay on record).
 * @returns whether this call froze, and the freeze in force
 */
export async function setFreeze(
  sql: Sql,
  f: { reason: string; by: string; byName?: string; now: Date },
): Promise<{ changed: boolean; state: FreezeState }> {
  const changed = await sql`
    update bisman_ops.freeze
       set frozen = true, reason = ${f.reason}, frozen_by = ${f.by}, frozen_by_name = ${f.byName ?? null},
           frozen_at = ${f.now}
     where not frozen
    returning 1`;
  return { changed: changed.length > 0, state: await readFreeze(sql) };
}

/**
 * Lifts the freeze, but only the one that was approved: if it was re-set since (another freeze), the
 * newer one stays.
 * @returns whether this call lifted it
 */
export async function clearFreeze(sql: Sql, frozenAt: Date | undefined): Promise<boolean> {
  const rows = await sql`
    update bisman_ops.freeze
       set frozen = false
     where frozen and (${frozenAt ?? null}::timestamptz is null or frozen_at = ${frozenAt ?? null})
    returning 1`;
  return rows.length > 0;
}

/** `2026-11-26 04:12 UTC`: minutes are what people compare with an expiry. */
export function formatTime(d: Date): string {
  return `${d.toISOString().slice(0, 16).replace("T", " ")} UTC`;
}

/** A person for messages outside Slack's mention syntax: `bob (U0BOB)`. */
export function who(id: string | undefined, name?: string | null): string {
  if (!id) return "someone";
  return name && name !== id ? `${name} (${id})` : id;
}

/** One line that says who froze what and why. */
export function describeFreeze(f: FreezeState): string {
  if (!f.frozen) return "Destructive actions are not frozen";
  const since = f.at ? ` since ${formatTime(f.at)}` : "";
  return `Destructive actions are frozen by ${who(f.by, f.byName)}${since}: ${
    f.reason ?? "(no reason given)"
  }`;
}
