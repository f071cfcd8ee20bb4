/**
 * Attribution of the bot's writes on a BISMAN target, for the target's own audit (sql/target/audit.sql):
 * the DML trigger reads `app.user_id` and `app.service_name` from the transaction, and security-relevant
 * actions get a `security_events` row.
 *
 * @module
 */

import type { Sql, TransactionSql } from "postgres";
import { transaction } from "./pg_tx.ts";

/** The service name the bot's writes carry in `app.service_name`. */
export const SERVICE_NAME = "bisman-ops";

/**
 * Runs `fn` in one transaction on `sql` with `app.user_id = actor` and `app.service_name = 'bisman-ops'`
 * set for that transaction only (`set_config(..., true)`), so every row the trigger writes names who
 * asked for it. Use it wherever an operation writes to a target.
 * @param actor the requester's Slack user ID, or `cli:<name>`, `scheduler`, ...
 * @example
 * await withAuditContext(sql, deps.actor, (tx) => tx`update clients set active = false where id = ${id}`);
 */
export async function withAuditContext<T>(
  sql: Sql,
  actor: string | undefined,
  fn: (tx: TransactionSql) => Promise<T>,
): Promise<T> {
  return await transaction(sql, async (tx) => {
    await tx`select set_config('app.user_id', ${actor ?? ""}, true),
                    set_config('app.service_name', ${SERVICE_NAME}, true)`;
    return await fn(tx);
  }) as T;
}

/** One security event, in the columns sql/target/audit.sql defines. */
export interface SecurityEvent {
  /** Lower-case words and underscores, e.g. `stats_reset`, `role_locked`. */
  eventType: string;
  severity?: "info" | "warning" | "critical";
  /** Who asked (the requester). */
  actor?: string;
  /** The bisman-ops approval request that ran the action. */
  requestId?: number;
  targetRole?: string;
  targetAddress?: string;
  details?: Record<string, unknown>;
}

/**
 * Inserts a `security_events` row when the target has that table (sql/target/audit.sql); a target without
 * it is left alone (returns false). Run it inside {@link withAuditContext}'s transaction so the event and
 * the action commit together.
 */
export async function recordSecurityEvent(tx: Sql | TransactionSql, e: SecurityEvent): Promise<boolean> {
  const [t] = await tx<{ present: boolean }[]>`
    select to_regclass('public.security_events') is not null as present`;
  if (!t.present) return false;
  await tx`
    insert into public.security_events
      (event_type, severity, source, actor, request_id, target_role, target_address, details)
    values (${e.eventType}, ${e.severity ?? "info"}, ${SERVICE_NAME}, ${e.actor ?? null}, ${
    e.requestId ?? null
  },
            ${e.targetRole ?? null}, ${e.targetAddress ?? null}::inet,
            ${tx.json((e.details ?? {}) as Parameters<Sql["json"]>[0])})`;
  return true;
}
