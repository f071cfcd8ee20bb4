/**
 * The bot's own approved actions, as its audit log records them, so detection can tell them from intrusions.
 *
 * `rotate root` is carried out by Vault: Vault logs in as its connection's user and runs
 * `ALTER ROLE <that user> WITH PASSWORD '...'`. PostgreSQL records that under Vault's user, not the bot's, so a
 * check for "role changes outside the bot" sees it as a stranger changing a role. Every approved run is in the
 * bot's audit chain (`op.started` with `operation: rotate_root`, after the approvals), so a self password change
 * can be matched to the approval requests that caused it.
 *
 * @module
 */

import type { OpDeps } from "./types.ts";

/** An approved run of an operation on a target, from the audit log. */
export interface OwnRun {
  requestId: number;
  at: Date;
}

/**
 * The approved runs of `operation` on `target` that started at or after `since` (all when null), newest
 * first. Never throws: without a readable audit log the list is empty (and nothing is explained away).
 */
export async function approvedRuns(
  deps: Pick<OpDeps, "state" | "log">,
  operation: string,
  target: string,
  since: Date | null,
): Promise<OwnRun[]> {
  try {
    const rows = await deps.state<{ request_id: number; at: Date }[]>`
      select request_id::int as request_id, at from bisman_ops.audit_log
       where action = 'op.started' and target = ${target} and details ->> 'operation' = ${operation}
         and request_id is not null
         and (${since}::timestamptz is null or at >= ${since})
       order by seq desc
       limit 100`;
    return rows.map((r) => ({ requestId: r.request_id, at: new Date(r.at) }));
  } catch (err) {
    deps.log.warn("could not read the bot's own runs from its audit log", { operation, target, error: err });
    return [];
  }
}

/**
 * The role a statement changes its own password for, when it is `ALTER ROLE|USER <who> [WITH] [ENCRYPTED]
 * PASSWORD ...` run by `who` itself; undefined otherwise.
 * @example
 * selfPasswordChange(`ALTER ROLE "vault_root" WITH PASSWORD '...'`, "vault_root"); // "vault_root"
 */
export function selfPasswordChange(query: string, who: string): string | undefined {
  const m =
    /^\s*alter\s+(?:role|user)\s+("(?:[^"]|"")+"|[a-z_][a-z0-9_$]*)\s+(?:with\s+)?(?:encrypted\s+)?password\b/i
      .exec(query);
  if (!m) return undefined;
  const role = m[1].startsWith('"') ? m[1].slice(1, -1).replaceAll('""', '"') : m[1].toLowerCase();
  return role === who ? role : undefined;
}
