/**
 * Who is connected to a target's primary, from `pg_stat_activity`: the count against `max_connections`,
 * broken down by user, application, client address and state, and the seed's connection-leak check: sessions
 * idle in a transaction, with their age. Read-only.
 *
 * Only client backends are counted (not autovacuum, walsenders or other background processes), because
 * those are what uses up `max_connections` in a leak.
 *
 * @module
 */

import { z } from "zod";
import type { Sql } from "postgres";
import type { OpDeps, Operation, PlanBase } from "./types.ts";
import { targetFailure } from "./_pg_errors.ts";
import { type Severity, worst } from "./replication_lag.ts";
import { maskStatementFor, type Redaction, redactionOf } from "../core/redact.ts";
import type { MaskedStatement } from "../core/statement_mask.ts";

/** A session idle inside an open transaction: it holds locks and a snapshot, and a connection slot. */
export interface IdleSession {
  pid: number;
  /**
   * When the backend started, ISO with microseconds (PostgreSQL's precision, which a JS Date would cut): with
   * the pid, what identifies this session (pids are reused).
   */
  backendStart: string;
  user: string | null;
  database: string | null;
  application: string;
  clientAddr: string | null;
  state: string;
  xactStart: string | null;
  /** Seconds since the session went idle in its transaction (`now() - state_change`). */
  idleSeconds: number;
  /**
   * The last statement, cut to 200 characters and masked (core/statement_mask.ts): a session idle in its
   * transaction shows the literal values it last sent.
   */
  query: MaskedStatement;
}

/** A count per value of one column. */
export interface Breakdown {
  value: string;
  count: number;
}

/** Connections of one target's primary. */
export interface ConnectionsReport {
  target: string;
  checkedAt: string;
  total: number;
  maxConnections: number;
  reservedForSuperuser: number;
  /** `total` as a share of `max_connections`, 0-100. */
  percent: number;
  byUser: Breakdown[];
  byApplication: Breakdown[];
  byClient: Breakdown[];
  byState: Breakdown[];
  /** Every idle-in-transaction session, oldest first (at most 100). */
  idleInTransaction: IdleSession[];
  /** The leak threshold in minutes (`thresholds.idle_in_transaction_minutes` unless asked otherwise). */
  leakMinutes: number;
  /** Idle-in-transaction sessions older than `leakMinutes`. */
  leaks: IdleSession[];
  severity: Severity;
  reasons: string[];
}

/**
 * Idle-in-transaction client sessions older than `minutes` (0: all), oldest first, not the bot's own; their
 * last statements masked as `redaction` says.
 */
export async function readIdleInTransaction(
  sql: Sql,
  minutes: number,
  redaction: Pick<Redaction, "keepNumbers">,
  limit = 100,
): Promise<IdleSession[]> {
  const rows = await sql<
    {
      pid: number;
      backend_start: string;
      usename: string | null;
      datname: string | null;
      application_name: string;
      client_addr: string | null;
      state: string;
      xact_start: Date | null;
      idle_seconds: number;
      query: string;
    }[]
  >`
    select pid, to_char(backend_start at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') as backend_start, usename, datname, application_name, host(client_addr) as client_addr, state,
           xact_start, extract(epoch from now() - state_change)::float8 as idle_seconds, left(query, 200) as query
      from pg_stat_activity
     where backend_type = 'client backend'
       and state in ('idle in transaction', 'idle in transaction (aborted)')
       and pid <> pg_backend_pid()
       and now() - state_change >= make_interval(secs => ${minutes * 60})
     order by state_change
     limit ${limit}`;
  return rows.map((r) => ({
    pid: r.pid,
    backendStart: r.backend_start,
    user: r.usename,
    database: r.datname,
    application: r.application_name,
    clientAddr: r.client_addr,
    state: r.state,
    xactStart: r.xact_start ? new Date(r.xact_start).toISOString() : null,
    idleSeconds: r.idle_seconds,
    query: maskStatementFor(r.query ?? "", redaction),
  }));
}

async function breakdown(sql: Sql, column: "usename" | "application_name" | "client_addr" | "state") {
  const rows = await sql<{ value: string | null; count: number }[]>`
    select ${
    column === "client_addr"
      ? sql`coalesce(host(client_addr), 'local socket')`
      : sql`coalesce(${sql(column)}::text, '')`
  } as value, count(*)::int as count
      from pg_stat_activity
     where backend_type = 'client backend'
     group by 1
     order by 2 desc, 1
     limit 20`;
  return rows.map((r) => ({ value: r.value ?? "", count: r.count }));
}

/**
 * Reads the connections of `target`'s primary and judges them against `thresholds`.
 * @throws {OpsError} `unreachable` when the primary does not answer
 */
export async function readConnections(
  target: string,
  deps: OpDeps,
  leakMinutes = deps.config.thresholds.idle_in_transaction_minutes,
): Promise<ConnectionsReport> {
  const m = deps.targets.member(target, "primary");
  try {
    const sql = await deps.targets.pool(target, "primary");
    const [totals] = await sql<{ total: number; max: number; reserved: number }[]>`
      select (select count(*)::int from pg_stat_activity where backend_type = 'client backend') as total,
             current_setting('max_connections')::int as max,
             current_setting('superuser_reserved_connections')::int as reserved`;
    const [byUser, byApplication, byClient, byState, idle] = await Promise.all([
      breakdown(sql, "usename"),
      breakdown(sql, "application_name"),
      breakdown(sql, "client_addr"),
      breakdown(sql, "state"),
      readIdleInTransaction(sql, 0, redactionOf(deps.config)),
    ]);
    const t = deps.config.thresholds;
    const percent = Math.round((totals.total / totals.max) * 1000) / 10;
    const leaks = idle.filter((s) => s.idleSeconds >= leakMinutes * 60);
    const sev: Severity[] = [];
    const reasons: string[] = [];
    if (percent >= t.connections_percent_critical) {
      sev.push("critical");
      reasons.push(`${percent}% of max_connections in use (critical at ${t.connections_percent_critical}%)`);
    } else if (percent >= t.connections_percent_warning) {
      sev.push("warning");
      reasons.push(`${percent}% of max_connections in use (warning at ${t.connections_percent_warning}%)`);
    }
    if (leaks.length) {
      sev.push("warning");
      reasons.push(
        `${leaks.length} session(s) idle in transaction for more than ${leakMinutes} min: suspected connection leak`,
      );
    }
    return {
      target,
      checkedAt: deps.now().toISOString(),
      total: totals.total,
      maxConnections: totals.max,
      reservedForSuperuser: totals.reserved,
      percent,
      byUser,
      byApplication,
      byClient,
      byState,
      idleInTransaction: idle,
      leakMinutes,
      leaks,
      severity: worst(sev),
      reasons,
    };
  } catch (err) {
    throw targetFailure(m, err, "read pg_stat_activity");
  }
}

const identifier = z.string().regex(/^[a-z_][a-z0-9_]{0,62}$/, "a target name");

export const connectionsArgs = z.strictObject({
  target: identifier,
  idle_minutes: z.number().min(0).max(24 * 60).optional(),
});
export type ConnectionsArgs = z.infer<typeof connectionsArgs>;

/** The plan of a read-only connections check. */
export interface ConnectionsPlan extends PlanBase {
  target: string;
  leakMinutes?: number;
}

/** `connections`: read-only. run() reads pg_stat_activity on the primary. */
export const connections: Operation<ConnectionsArgs, ConnectionsPlan, ConnectionsReport> = {
  name: "connections",
  destructive: false,
  args: connectionsArgs,
  plan: (args) =>
    Promise.resolve({
      summary: `Read the connections of ${args.target}'s primary`,
      target: args.target,
      leakMinutes: args.idle_minutes,
      steps: [
        "pg_stat_activity: client backends by user, application, client address and state",
        "Idle-in-transaction sessions and their age (the connection-leak check)",
      ],
      fingerprint: {},
    }),
  run: (plan, deps) => readConnections(plan.target!, deps, plan.leakMinutes),
  describeResult: (r) =>
    `${r.target}: ${r.total}/${r.maxConnections} connections (${r.percent}%), ${r.leaks.length} idle in transaction > ${r.leakMinutes} min`,
};
