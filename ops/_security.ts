/**
 * Shared pieces of the audit and security operations: the role policy of a target, argument schemas for
 * role names and client addresses, where audit reads go (a replica when configured), and transactions on
 * the primary that carry the bot's context and record a security_events row.
 *
 * @module
 */

import type { Sql, TransactionSql } from "postgres";
import { z } from "zod";
import type { RolePolicy, SecurityConfig } from "../core/config.ts";
import { InvalidInput, NotConfigured, OpsError } from "../core/errors.ts";
import { type TargetMember, unreachable } from "../core/targets.ts";
import {
  recordSecurityEvent as insertSecurityEvent,
  type SecurityEvent,
  SERVICE_NAME,
  withAuditContext,
} from "../core/target_audit.ts";
import type { OpDeps } from "./types.ts";
import { own } from "../core/lookup.ts";

/** The app.service_name the bot sets on its own target transactions and writes in security_events.source. */
export const BOT_SERVICE_NAME = SERVICE_NAME;

/** A configured target's name. */
export const targetName = z.string().regex(/^[a-z_][a-z0-9_]{0,62}$/, "a target name");

/**
 * A role name as the bot accepts it from a person: a plain lower-case identifier (what CREATE ROLE makes of
 * an unquoted name). Quotes, spaces, `;` and anything else are refused before any SQL is built.
 */
export const roleName = z.string().max(63, "at most 63 characters").regex(
  /^[a-z_][a-z0-9_]{0,62}$/,
  "a role name (lower-case letters, digits, _)",
);

/** A client address or network: IPv4/IPv6, optionally with a prefix length. */
export const clientAddress = z.string().max(43, "an IP address or CIDR block").refine(
  (s) => parseAddress(s) !== undefined,
  "an IP address such as 10.0.1.7 or a CIDR block such as 10.0.1.0/24",
).transform((s) => parseAddress(s)!.text);

/** A parsed address: canonical text (`a.b.c.d/len` or `ipv6/len`), family, prefix length. */
export interface ParsedAddress {
  text: string;
  family: 4 | 6;
  prefix: number;
  /** The address part without the prefix. */
  host: string;
}

/**
 * Parses and canonicalises an IPv4 or IPv6 address with an optional prefix length.
 * @example
 * parseAddress("10.0.1.7"); // { text: "10.0.1.7/32", family: 4, prefix: 32, host: "10.0.1.7" }
 * parseAddress("10.0.1.7; drop"); // undefined
 */
export function parseAddress(input: string): ParsedAddress | undefined {
  const m = /^([0-9a-fA-F:.]{2,39})(?:\/(\d{1,3}))?$/.exec(input.trim());
  if (!m) return undefined;
  const host = m[1].toLowerCase();
  if (z.ipv4().safeParse(host).success) {
    if (host.split(".").some((o) => o.length > 1 && o.startsWith("0"))) return undefined;
    const prefix = m[2] === undefined ? 32 : Number(m[2]);
    if (prefix > 32) return undefined;
    return { text: `${host}/${prefix}`, family: 4, prefix, host };
  }
  if (z.ipv6().safeParse(host).success) {
    const prefix = m[2] === undefined ? 128 : Number(m[2]);
    if (prefix > 128) return undefined;
    return { text: `${host}/${prefix}`, family: 6, prefix, host };
  }
  return undefined;
}

/** A PostgreSQL identifier in double quotes, inner quotes doubled (for statements shown in a plan). */
export function quoteIdent(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

/** An identifier as psql would print it: bare when that reads back as the same name, else quoted. */
export function displayIdent(name: string): string {
  return /^[a-z_][a-z0-9_]*$/.test(name) && !RESERVED.has(name) ? name : quoteIdent(name);
}
/** PostgreSQL 15's reserved and type-function keywords (pg_get_keywords() categories R and T): quoted when shown. */
const RESERVED = new Set(
  [
    "all analyse analyze and any array as asc asymmetric authorization binary both case cast check",
    "collate collation column concurrently constraint create cross current_catalog current_date",
    "current_role current_schema current_time current_timestamp current_user default deferrable desc",
    "distinct do else end except false fetch for foreign freeze from full grant group having ilike",
    "in initially inner intersect into is isnull join lateral leading left like limit localtime",
    "localtimestamp natural not notnull null offset on only or order outer overlaps placing primary",
    "references returning right select session_user similar some symmetric table tablesample then to",
    "trailing true union unique user using variadic verbose when where window with",
  ].join(" ").split(" "),
);

/** The security settings of a target, plus the bot's own login on it. */
export interface TargetSecurity extends SecurityConfig {
  target: string;
  /** The role the bot logs in as (the primary's `user`). */
  botRole: string;
}

/** @throws {NotConfigured} for an unknown target */
export function targetSecurity(deps: Pick<OpDeps, "config">, target: string): TargetSecurity {
  const t = own(deps.config.targets, target);
  if (!t) {
    throw new NotConfigured(
      `Unknown target "${target}": configured targets are ${Object.keys(deps.config.targets).join(", ")}`,
    );
  }
  return { ...t.security, target, botRole: t.primary.user };
}

/** Roles expected to write application data: kinds app, admin and service. */
export function writerRoles(sec: TargetSecurity): string[] {
  return Object.entries(sec.roles).filter(([, p]) => ["app", "admin", "service"].includes(p.kind)).map((
    [n],
  ) => n);
}

/** Service roles and their service names. */
export function serviceRoles(sec: TargetSecurity): Map<string, RolePolicy & { service: string }> {
  const out = new Map<string, RolePolicy & { service: string }>();
  for (const [n, p] of Object.entries(sec.roles)) {
    if (p.kind === "service" && p.service) out.set(n, p as RolePolicy & { service: string });
  }
  return out;
}

/** Every role expected to log in: policy roles with login, `other_roles`, and the bot itself. */
export function expectedLogins(sec: TargetSecurity): string[] {
  return [
    ...Object.entries(sec.roles).filter(([, p]) => p.login).map(([n]) => n),
    ...sec.other_roles,
    sec.botRole,
  ];
}

/** The primary's pool. @throws {OpsError} unreachable */
export async function primaryPool(deps: OpDeps, target: string): Promise<Sql> {
  deps.targets.members(target);
  return await deps.targets.pool(target, "primary");
}

/** True for failures to reach or log in to a server (socket errors, timeouts, SQLSTATE 08, 28, 57P0x). */
export function isConnectionFailure(err: unknown): boolean {
  const code = (err as { code?: unknown })?.code;
  if (typeof code !== "string") return false;
  return /^(E[A-Z]+|CONNECT_TIMEOUT|CONNECTION_[A-Z_]+|08[0-9A-Z]{3}|28[0-9A-Z]{3}|57P0[1-4]|3D000)$/.test(
    code,
  );
}

/**
 * Runs a read on the member audit reads go to: the first replica when `security.audit_reads` is `replica`
 * and the target has one, else the primary. A replica that does not answer falls back to the primary, and
 * the returned note says so.
 */
export async function onAuditReader<T>(
  deps: OpDeps,
  target: string,
  read: (sql: Sql, member: TargetMember) => Promise<T>,
): Promise<{ value: T; member: string; note?: string }> {
  const sec = targetSecurity(deps, target);
  const members = deps.targets.members(target);
  const replica = sec.audit_reads === "replica" ? members.find((m) => m.role === "replica") : undefined;
  const primary = members[0];
  let note: string | undefined;
  if (replica) {
    try {
      const sql = await deps.targets.pool(target, replica.name);
      return { value: await read(sql, replica), member: replica.name };
    } catch (err) {
      if (!isConnectionFailure(err)) throw asTargetError(replica, err, "read the audit tables");
      deps.log.warn("audit reader replica does not answer; reading the primary", { target, error: err });
      note = `Replica ${replica.name} does not answer: read from the primary instead`;
    }
  }
  try {
    const sql = await deps.targets.pool(target, "primary");
    return { value: await read(sql, primary), member: "primary", note };
  } catch (err) {
    throw asTargetError(primary, err, "read the audit tables");
  }
}

/**
 * The OpsError for a failure on a target member: `unreachable` for connection failures, a missing
 * table named as such (the target SQL is not applied), otherwise `step_failed` with the SQLSTATE.
 */
export function asTargetError(m: TargetMember, err: unknown, what: string): OpsError {
  if (err instanceof OpsError) return err;
  if (isConnectionFailure(err)) return unreachable(m, err);
  const code = (err as { code?: string })?.code ?? "error";
  if (code === "42P01") {
    return new NotConfigured(
      `Cannot ${what} on ${m.target}/${m.name}: audit_logs_dml or security_events is missing. ` +
        "Apply the target SQL first: `/bisman apply-target-sql " + m.target + "`",
      { cause: err },
    );
  }
  if (code === "42501") {
    return new OpsError(
      "step_failed",
      `Cannot ${what} on ${m.target}/${m.name}: permission denied to the bot's role. ` +
        "Apply sql/target/bot_role.sql (the README explains each line)",
      { cause: err },
    );
  }
  const msg = err instanceof Error ? err.message.split("\n")[0].slice(0, 200) : String(err);
  return new OpsError("step_failed", `Cannot ${what} on ${m.target}/${m.name}: ${code} ${msg}`, {
    cause: err,
  });
}

/** A security_events row the bot writes (the actor comes from `deps.actor`). */
export type SecurityEventInput = Omit<SecurityEvent, "actor">;

/**
 * Runs `fn` in one transaction on the primary with `app.user_id` (the requester) and `app.service_name`
 * (`bisman-ops`) set locally (core/target_audit.ts), so the target's own audit attributes what the bot does;
 * then records `event` (when given, and when security_events exists) in the same transaction, which is also
 * how `/bisman detect` tells the bot's own DDL from DDL made by hand (same txid).
 */
export async function inTargetTransaction<T>(
  deps: OpDeps,
  target: string,
  fn: (tx: TransactionSql) => Promise<T>,
  event?: (value: T) => SecurityEventInput | undefined,
): Promise<T> {
  const sql = await primaryPool(deps, target);
  return await withAuditContext(sql, deps.actor, async (tx) => {
    const value = await fn(tx);
    const e = event?.(value);
    if (e) await recordSecurityEvent(tx, deps, e);
    return value;
  });
}

/**
 * Inserts one security_events row (source `bisman-ops`, actor = the requester). A target without the table
 * (target SQL not applied) is skipped with a log line: the bot's own audit log still has the action.
 * @returns whether a row was written
 */
export async function recordSecurityEvent(
  tx: Sql | TransactionSql,
  deps: Pick<OpDeps, "actor" | "requestId" | "log">,
  e: SecurityEventInput,
): Promise<boolean> {
  const written = await insertSecurityEvent(tx, { ...e, actor: deps.actor, requestId: deps.requestId });
  if (!written) {
    deps.log.warn("security_events is missing on the target; event not recorded there", {
      event: e.eventType,
    });
  }
  return written;
}

/**
 * Parses `since` as a duration back from `now` (`30m`, `24h`, `7d`, `2w`) or an ISO date/time.
 * @throws {InvalidInput}
 * @example
 * parseSince("24h", new Date("2025-01-02T00:00:00Z")); // 2025-01-01T00:00:00.000Z
 */
export function parseSince(text: string, now: Date): Date {
  const m = /^(\d{1,5})(m|h|d|w)$/.exec(text.trim());
  if (m) {
    const unit = { m: 60_000, h: 3_600_000, d: 86_400_000, w: 7 * 86_400_000 }[m[2] as "m" | "h" | "d" | "w"];
    const ms = Number(m[1]) * unit;
    if (ms > 3660 * 86_400_000) throw new InvalidInput(`since=${text} reaches back more than 10 years`);
    return new Date(now.getTime() - ms);
  }
  if (/^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d{1,3})?)?(Z|[+-]\d{2}:?\d{2})?)?$/.test(text.trim())) {
    const d = new Date(text.trim());
    if (!Number.isNaN(d.getTime())) return d;
  }
  throw new InvalidInput(
    `since=${
      text.slice(0, 40)
    } is not a duration (30m, 24h, 7d, 2w) or a date (2025-01-31 or 2025-01-31T09:00Z)`,
  );
}

/** A `since=` value as a zod schema: the text is kept; ops resolve it against `deps.now()`. */
export const sinceArg = z.string().max(40).regex(
  /^(\d{1,5}[mhdw]|\d{4}-\d{2}-\d{2}(T[0-9:.]+(Z|[+-][0-9:]+)?)?)$/,
  "a duration such as 24h or 7d, or a date such as 2025-01-31",
);

/** One client session on a server. */
export interface SessionInfo {
  member: string;
  pid: number;
  user: string | null;
  address: string | null;
  database: string | null;
  application: string;
  backendStart: string;
  state: string | null;
}

/**
 * Client sessions of one server matching a role and/or a client network, never the bot's own connections
 * (its role with application_name bisman-ops).
 */
export async function listSessions(
  sql: Sql,
  member: string,
  filter: { role?: string; address?: string; botRole: string },
): Promise<SessionInfo[]> {
  const rows = await sql<
    {
      pid: number;
      usename: string | null;
      addr: string | null;
      datname: string | null;
      application_name: string;
      backend_start: Date;
      state: string | null;
    }[]
  >`
    select pid, usename, host(client_addr) as addr, datname, application_name, backend_start, state
      from pg_catalog.pg_stat_activity
     where backend_type = 'client backend' and pid <> pg_backend_pid()
       and (${filter.role ?? null}::text is null or usename = ${filter.role ?? null})
       and (${filter.address ?? null}::inet is null or client_addr <<= ${filter.address ?? null}::inet)
       and not (usename = ${filter.botRole} and application_name = 'bisman-ops')
     order by backend_start`;
  return rows.map((r) => ({
    member,
    pid: r.pid,
    user: r.usename,
    address: r.addr,
    database: r.datname,
    application: r.application_name,
    backendStart: new Date(r.backend_start).toISOString(),
    state: r.state,
  }));
}

/** What terminating sessions did. */
export interface TerminateOutcome {
  terminated: { member: string; pid: number }[];
  failed: { member: string; pid: number; reason: string }[];
}

/**
 * Terminates each session with `pg_terminate_backend(pid, timeout)` (waits until it is gone), one statement
 * per pid so one refusal (a superuser's session, with only pg_signal_backend) does not stop the others.
 */
export async function terminateSessions(
  sql: Sql,
  sessions: { member: string; pid: number }[],
): Promise<TerminateOutcome> {
  const out: TerminateOutcome = { terminated: [], failed: [] };
  for (const s of sessions) {
    try {
      const [{ ok }] = await sql<{ ok: boolean }[]>`select pg_terminate_backend(${s.pid}, 5000) as ok`;
      if (ok) out.terminated.push(s);
      else out.failed.push({ ...s, reason: "already gone or did not exit within 5 s" });
    } catch (err) {
      const code = (err as { code?: string })?.code ?? "error";
      const msg = err instanceof Error ? err.message.split("\n")[0].slice(0, 120) : String(err);
      out.failed.push({ ...s, reason: `${code} ${msg}` });
    }
  }
  return out;
}

/** Sessions of `role` (or from an address) on every reachable member of the target. */
export async function sessionsOnTarget(
  deps: OpDeps,
  target: string,
  filter: { role?: string; address?: string },
): Promise<SessionInfo[]> {
  const sec = targetSecurity(deps, target);
  const out: SessionInfo[] = [];
  for (const m of deps.targets.members(target)) {
    try {
      const sql = await deps.targets.pool(target, m.name);
      out.push(...await listSessions(sql, m.name, { ...filter, botRole: sec.botRole }));
    } catch (err) {
      if (m.role === "primary") throw asTargetError(m, err, "list sessions");
      deps.log.warn("cannot list sessions on a replica", { target, member: m.name, error: err });
    }
  }
  return out;
}

/** Terminates sessions member by member. */
export async function terminateOnTarget(
  deps: OpDeps,
  target: string,
  sessions: SessionInfo[],
): Promise<TerminateOutcome> {
  const out: TerminateOutcome = { terminated: [], failed: [] };
  for (const member of new Set(sessions.map((s) => s.member))) {
    const sql = await deps.targets.pool(target, member);
    const r = await terminateSessions(sql, sessions.filter((s) => s.member === member));
    out.terminated.push(...r.terminated);
    out.failed.push(...r.failed);
  }
  return out;
}

/** One line per session, for plans and results. */
export function describeSession(s: SessionInfo): string {
  return `${s.member} pid ${s.pid} ${s.user ?? "?"} from ${s.address ?? "local socket"} to ${
    s.database ?? "?"
  }` +
    ` (${s.application || "no application_name"}, since ${s.backendStart.replace(/\.\d{3}Z$/, "Z")})`;
}
