/**
 * Tells a server that does not answer (a finding) from a query that failed on a server that does (a
 * permission or a bug), so reports never call a permission problem "does not answer".
 *
 * @module
 */

import { OpsError } from "../core/errors.ts";
import { type TargetMember, unreachable } from "../core/targets.ts";

/** True for failures to reach or log in to a server (socket errors, timeouts, SQLSTATE classes 08, 28, 57P0x). */
export function isConnectionError(err: unknown): boolean {
  const code = (err as { code?: unknown })?.code;
  if (typeof code !== "string") return false;
  return /^(E[A-Z]+|CONNECT_TIMEOUT|CONNECTION_[A-Z_]+|08[0-9A-Z]{3}|28[0-9A-Z]{3}|57P0[1-4]|3D000)$/.test(
    code,
  );
}

/**
 * The OpsError for a failure on target member `m` while doing `what`: `unreachable` for connection failures,
 * otherwise `step_failed` naming the SQLSTATE (never the statement or its parameters).
 */
export function targetFailure(m: TargetMember, err: unknown, what: string): OpsError {
  if (err instanceof OpsError) return err;
  if (isConnectionError(err)) return unreachable(m, err);
  const code = (err as { code?: string })?.code ?? "error";
  const msg = err instanceof Error ? err.message.split("\n")[0].slice(0, 200) : String(err);
  return new OpsError(
    "step_failed",
    `Could not ${what} on ${m.target}/${m.name}: ${code} ${msg} (the bot's role may need pg_monitor)`,
    { cause: err },
  );
}
