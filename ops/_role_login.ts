/**
 * What PostgreSQL says about a login role, for credential rotation: its state (for fingerprints), its
 * open sessions (who a rotation affects), a login attempt with a given password (verification), and the
 * `ALTER ROLE ... PASSWORD '<SCRAM verifier>'` statement itself.
 *
 * @module
 */

import postgres, { type Sql, type TransactionSql } from "postgres";
import { connectionOptions, type TargetMember } from "../core/targets.ts";
import type { OpDeps } from "./types.ts";
import { scramVerifier, verifierLiteral } from "./_scram.ts";
import { cleartextRefusal, probeAuthMethod } from "./_auth_probe.ts";
import type { IntegrityKeys } from "../core/keys.ts";

/** A role's state as a fingerprint records it. Never the verifier: only a digest of it, made server-side. */
export interface RoleState {
  exists: boolean;
  canLogin: boolean;
  /** ISO time or null (no expiry). */
  validUntil: string | null;
  /** Null when the bot's login may not read pg_authid (not a superuser). */
  hasPassword: boolean | null;
  /**
   * First 16 hex digits of an HMAC, under the bot's key (purpose `fingerprint`), of sha256(rolpassword),
   * which the server computes so the verifier never leaves it. It changes whenever anyone sets a new
   * password, so revalidate() notices a concurrent change. Keyed because plans are stored where every CLI
   * login can read them: a plain digest of an md5 password (md5 of password and role name, no secret salt)
   * would let a reader test guesses offline. Null as above.
   */
  verifierDigest: string | null;
}

/** Reads a role's state on the primary. */
export async function readRoleState(sql: Sql, role: string, keys?: IntegrityKeys): Promise<RoleState> {
  const [r] = await sql<{ rolcanlogin: boolean; rolvaliduntil: Date | null }[]>`
    select rolcanlogin, rolvaliduntil from pg_catalog.pg_roles where rolname = ${role}`;
  if (!r) {
    return { exists: false, canLogin: false, validUntil: null, hasPassword: null, verifierDigest: null };
  }
  // pg_authid is readable by superusers only; a permission check happens for every table a query names,
  // even in a branch that never runs, so ask first instead of guarding inside one statement.
  const [{ can }] = await sql<{ can: boolean }[]>`
    select has_table_privilege('pg_catalog.pg_authid', 'select') as can`;
  let hasPassword: boolean | null = null;
  let verifierDigest: string | null = null;
  if (can) {
    const [a] = await sql<{ has_password: boolean; digest: string | null }[]>`
      select rolpassword is not null as has_password,
             encode(sha256(convert_to(rolpassword, 'UTF8')), 'hex') as digest
        from pg_catalog.pg_authid where rolname = ${role}`;
    hasPassword = a?.has_password ?? null;
    const digest = a?.digest ?? null;
    verifierDigest = digest === null ? null : (keys ? keys.mac("fingerprint", digest) : digest).slice(0, 16);
  }
  return {
    exists: true,
    canLogin: r.rolcanlogin,
    validUntil: r.rolvaliduntil ? new Date(r.rolvaliduntil).toISOString() : null,
    hasPassword,
    verifierDigest,
  };
}

/** Open sessions of one role on one server, grouped by application and client address. */
export interface SessionGroup {
  member: string;
  application: string;
  /** Client address, or `local` for a unix socket. */
  client: string;
  count: number;
}

/**
 * Counts a role's client sessions on one member, optionally only those that started before `before`
 * (they authenticated with the password that was valid then).
 * Note: without superuser or pg_read_all_stats the bot sees other roles' sessions but not client_addr.
 */
export async function readSessions(
  sql: Sql,
  member: string,
  role: string,
  before?: Date,
): Promise<SessionGroup[]> {
  const rows = await sql<{ application: string; client: string; n: number }[]>`
    select coalesce(nullif(application_name, ''), '(none)') as application,
           coalesce(host(client_addr), 'local') as client,
           count(*)::int as n
      from pg_catalog.pg_stat_activity
     where usename = ${role}
       and backend_type = 'client backend'
       and pid <> pg_backend_pid()
       ${before ? sql`and backend_start < ${before}` : sql``}
     group by 1, 2
     order by 3 desc, 1, 2`;
  return rows.map((r) => ({ member, application: r.application, client: r.client, count: r.n }));
}

/** Sessions of `role` on every member of a target; a member that does not answer is listed in `unchecked`. */
export async function readTargetSessions(
  target: string,
  role: string,
  deps: OpDeps,
  before?: Date,
): Promise<{ sessions: SessionGroup[]; unchecked: string[] }> {
  const sessions: SessionGroup[] = [];
  const unchecked: string[] = [];
  for (const m of deps.targets.members(target)) {
    try {
      const sql = await deps.targets.pool(target, m.name);
      sessions.push(...await readSessions(sql, m.name, role, before));
    } catch (err) {
      deps.log.warn("could not count sessions", { target, member: m.name, role, error: err });
      unchecked.push(m.name);
    }
  }
  return { sessions, unchecked };
}

/** The outcome of trying to log in as a role. */
export type LoginResult =
  /** The server accepted the password (the session may still have been refused later, e.g. no CONNECT). */
  | { ok: true }
  /** The server rejected the password (SQLSTATE 28P01) or the role may not log in. */
  | { ok: false; reason: "wrong_password" | "cannot_login"; detail: string }
  /** The attempt says nothing about the password (server down, pg_hba.conf rejects this host, ...). */
  | { ok: false; reason: "unknown"; detail: string };

/**
 * Opens one fresh connection as `role` with `password` and closes it. Over SCRAM the password never
 * crosses the wire; where the server would ask for it in clear (ops/_auth_probe.ts) it is not sent at all,
 * and the result says why. Never throws; the detail holds the SQLSTATE and the server's message, not the
 * password.
 */
export async function tryLogin(m: TargetMember, role: string, password: string): Promise<LoginResult> {
  const refusal = cleartextRefusal(role, await probeAuthMethod(m.conn, role));
  if (refusal) return { ok: false, reason: "unknown", detail: `not tried: ${refusal}` };
  const opts = connectionOptions(m.conn, password);
  const sql = postgres({
    ...opts,
    username: role,
    max: 1,
    idle_timeout: 1,
    prepare: false,
    connection: { application_name: "bisman-ops-verify" },
  });
  try {
    await sql`select 1`;
    return { ok: true };
  } catch (err) {
    const code = (err as { code?: string }).code ?? "";
    const msg = err instanceof Error ? err.message.split("\n")[0].slice(0, 200) : String(err);
    const detail = `${code ? `${code} ` : ""}${msg}`.replaceAll(password, "[redacted]");
    // Authentication precedes the database checks: "no such database" or "no CONNECT privilege" means
    // the password was accepted.
    if (code === "3D000" || code === "42501") return { ok: true };
    if (code === "28P01") return { ok: false, reason: "wrong_password", detail };
    // 28000 is both "role is not permitted to log in" and "no pg_hba.conf entry": only the first says
    // something about the role.
    if (code === "28000" && /not permitted to log in/.test(msg)) {
      return { ok: false, reason: "cannot_login", detail };
    }
    return { ok: false, reason: "unknown", detail };
  } finally {
    await sql.end({ timeout: 2 }).catch(() => undefined);
  }
}

/**
 * `ALTER ROLE <role> PASSWORD '<verifier>'` inside `tx`: the role is quoted by postgres.js as an
 * identifier; the verifier is a literal built only after it matched the strict SCRAM shape (ALTER ROLE
 * takes no bind parameters). Sent over the simple protocol so no prepared statement keeps its text.
 */
export async function alterRolePassword(tx: TransactionSql, role: string, password: string): Promise<void> {
  const literal = verifierLiteral(await scramVerifier(password));
  await tx`alter role ${tx(role)} password ${tx.unsafe(literal)}`.simple();
}
