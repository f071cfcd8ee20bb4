/**
 * Asks one target member, over a fresh connection, whether it answers and whether it is a writable primary.
 *
 * Used where a wrong "it is down" costs data: just before `pg_promote()` (a writable old primary means split
 * brain) and before a "take a backup first" step (every backup source reads the primary, so a dead primary
 * would only block the promotion it was meant to protect). A fresh connection, not the member's pool: a pooled
 * connection opened before the server stopped says nothing about the server now.
 *
 * Connection-level failures (refused, timed out, reset, no route) mean "does not answer". A server that
 * answers but whose role cannot be read (authentication refused, starting up, shutting down) is `unknown`:
 * callers that guard against split brain treat it as possibly writable (fail closed).
 *
 * @module
 */

import postgres from "postgres";
import { connectionOptions, type TargetMember } from "../core/targets.ts";
import type { OpDeps } from "./types.ts";

/** What a probe found. `detail` never holds a secret (scrubbed, first line only). */
export type MemberProbe =
  | { state: "down"; address: string; detail: string }
  | { state: "writable"; address: string }
  | { state: "standby"; address: string }
  | { state: "unknown"; address: string; detail: string };

/** SQLSTATE classes and driver codes that say nothing answered at the PostgreSQL protocol level. */
function isNoAnswer(err: unknown): boolean {
  const code = (err as { code?: unknown })?.code;
  if (typeof code !== "string") return false;
  // E*: socket errors (ECONNREFUSED, ECONNRESET, EHOSTUNREACH, ENOTFOUND...); postgres.js's CONNECT_TIMEOUT and
  // CONNECTION_CLOSED/ENDED/DESTROYED; SQLSTATE class 08 (connection exception).
  return /^(E[A-Z]+|CONNECT_TIMEOUT|CONNECTION_[A-Z_]+|08[0-9A-Z]{3})$/.test(code);
}

function describe(err: unknown, deps: Pick<OpDeps, "secrets">): string {
  const code = (err as { code?: string })?.code;
  const msg = err instanceof Error ? err.message.split("\n")[0].slice(0, 200) : String(err);
  return deps.secrets.scrub(`${code ? `${code} ` : ""}${msg}`);
}

/**
 * Probes `m` with one fresh connection (`select pg_is_in_recovery()`), bounded by the member's
 * `connect_timeout_seconds`. Never throws.
 */
export async function probeMember(
  m: TargetMember,
  deps: Pick<OpDeps, "targets" | "config" | "secrets" | "log">,
): Promise<MemberProbe> {
  const address = `${m.conn.host}:${m.conn.port}`;
  let password: string | undefined;
  try {
    password = await deps.targets.password(m.conn, deps.config.targets[m.target]?.vault.kv_mount);
  } catch (err) {
    return { state: "unknown", address, detail: `its password could not be read: ${describe(err, deps)}` };
  }
  const sql = postgres({ ...connectionOptions(m.conn, password), max: 1, idle_timeout: 1 });
  try {
    const [r] = await sql<{ in_recovery: boolean }[]>`select pg_is_in_recovery() as in_recovery`;
    return r.in_recovery ? { state: "standby", address } : { state: "writable", address };
  } catch (err) {
    deps.log.info("member probe failed", { target: m.target, member: m.name, error: err });
    return isNoAnswer(err)
      ? { state: "down", address, detail: describe(err, deps) }
      : { state: "unknown", address, detail: describe(err, deps) };
  } finally {
    await sql.end({ timeout: 1 }).catch(() => undefined);
  }
}

/** The probe in words, for plans, results and audit details. */
export function describeProbe(p: MemberProbe): string {
  switch (p.state) {
    case "down":
      return `${p.address} does not answer (${p.detail})`;
    case "writable":
      return `${p.address} answers as a writable primary (pg_is_in_recovery() is false)`;
    case "standby":
      return `${p.address} answers as a standby (pg_is_in_recovery() is true)`;
    case "unknown":
      return `${p.address} answers, but whether it takes writes could not be read (${p.detail})`;
  }
}
