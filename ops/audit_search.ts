/**
 * Searches a target's DML audit trail (`audit_logs_dml`, sql/target/audit.sql): by table, DB user, app user,
 * service, action, client address and time, newest first. Reads go to a replica when one is configured.
 *
 * Every filter is a bound parameter; the query shapes match the indexes of audit.sql (filter column, then
 * time), so a search on tens of millions of rows is a backward index range scan that stops at the limit.
 *
 * @module
 */

import type { PendingQuery, Row, Sql } from "postgres";
import { z } from "zod";
import type { OpDeps, Operation, PlanBase } from "./types.ts";
import { maskStatementFor, type Redaction, redactionOf, redactRow } from "../core/redact.ts";
import type { MaskedStatement } from "../core/statement_mask.ts";
import { clientAddress, onAuditReader, parseSince, roleName, sinceArg, targetName } from "./_security.ts";

/** Counting stops here: "10,000+ more rows" is enough to say "narrow the search". */
export const MORE_ROWS_CAP = 10_000;

/** Arguments of a search. */
export const auditSearchArgs = z.strictObject({
  target: targetName,
  /** `clients` or `public.clients` */
  table: z.string().max(127).regex(
    /^([a-z_][a-z0-9_]{0,62}\.)?[a-z_][a-z0-9_]{0,62}$/,
    "a table name such as clients or public.clients",
  ).optional(),
  /** The DB role that wrote (current_user). */
  user: roleName.optional(),
  /** The application user (app.user_id): any printable text up to 200 characters, compared exactly. */
  app_user: z.string().min(1).max(200).regex(/^[^\p{Cc}\p{Cf}]+$/u, "printable text").optional(),
  /** The service (app.service_name). */
  service: z.string().max(100).regex(/^[A-Za-z0-9_.:-]+$/, "a service name such as payments").optional(),
  action: z.enum(["INSERT", "UPDATE", "DELETE"]).optional(),
  /** Client address or network: rows whose client_addr lies inside it. */
  address: clientAddress.optional(),
  /** `missing`: only rows written without app.user_id and app.service_name. */
  context: z.enum(["missing"]).optional(),
  since: sinceArg.default("24h"),
  until: sinceArg.optional(),
  limit: z.number().int().min(1).max(200).default(20),
});
/** Validated search arguments. */
export type AuditSearchArgs = z.infer<typeof auditSearchArgs>;

/**
 * One audit row as shown. Row data is redacted (core/redact.ts: sensitive columns named in config become the
 * mark) and the statement masked before it leaves this module: for an UPDATE only the changed columns' old
 * and new values, for an INSERT the new row, for a DELETE the old one.
 */
export interface AuditRowView {
  id: number;
  occurredAt: string;
  table: string;
  action: string;
  rowId: string | null;
  dbUser: string;
  sessionUser: string;
  appUserId: string | null;
  serviceName: string | null;
  clientAddr: string | null;
  applicationName: string | null;
  /**
   * First 300 characters of the statement, masked (core/statement_mask.ts): `current_query()` in the
   * trigger is the client's text, with every literal value it wrote.
   */
  query: MaskedStatement | null;
  changed: string[];
  /** Old values (UPDATE: the changed columns only; DELETE: the row), redacted. */
  oldData?: Record<string, unknown> | null;
  /** New values (UPDATE: the changed columns only; INSERT: the row), redacted. */
  newData?: Record<string, unknown> | null;
}

/** What a search found. */
export interface AuditSearchResult {
  target: string;
  /** `primary` or the replica's name. */
  member: string;
  note?: string;
  since: string;
  until?: string;
  filters: Record<string, string>;
  rows: AuditRowView[];
  /** Rows matching beyond those shown (counting stops at {@link MORE_ROWS_CAP}). */
  more: number;
  moreCapped: boolean;
  ms: number;
}

interface Resolved {
  args: AuditSearchArgs;
  since: Date;
  until?: Date;
  schema?: string;
  table?: string;
}

function resolve(args: AuditSearchArgs, now: Date): Resolved {
  const since = parseSince(args.since, now);
  const until = args.until ? parseSince(args.until, now) : undefined;
  const [schema, table] = args.table?.includes(".") ? args.table.split(".") : [undefined, args.table];
  return { args, since, until, schema, table };
}

/** The WHERE conditions of a search as postgres.js fragments (values bound, never spliced). */
function conditions(sql: Sql, r: Resolved): PendingQuery<Row[]>[] {
  const a = r.args;
  const out = [sql`occurred_at >= ${r.since}`];
  if (r.until) out.push(sql`occurred_at < ${r.until}`);
  if (r.table) out.push(sql`table_name = ${r.table}`);
  if (r.schema) out.push(sql`table_schema = ${r.schema}`);
  if (a.user) out.push(sql`db_user = ${a.user}`);
  if (a.app_user) out.push(sql`app_user_id = ${a.app_user}`);
  if (a.service) out.push(sql`service_name = ${a.service}`);
  if (a.action) out.push(sql`action = ${a.action}`);
  if (a.address) out.push(sql`client_addr <<= ${a.address}::inet`);
  if (a.context === "missing") out.push(sql`app_user_id is null and service_name is null`);
  return out;
}

function whereClause(sql: Sql, r: Resolved): PendingQuery<Row[]> {
  return conditions(sql, r).reduce((acc, c) => sql`${acc} and ${c}`);
}

/** The row query: newest first, `limit` rows. */
function rowsQuery(sql: Sql, r: Resolved): PendingQuery<Row[]> {
  return sql`
    select id, occurred_at, table_schema, table_name, action, row_id, db_user, session_user_name,
           app_user_id, service_name, host(client_addr) as client_addr, application_name,
           left(query_text, 300) as query_text, old_data, new_data,
           case when action = 'UPDATE' then
             array(select n.key from jsonb_each(new_data) n where old_data -> n.key is distinct from n.value
                    order by n.key)
           else '{}'::text[] end as changed
      from public.audit_logs_dml
     where ${whereClause(sql, r)}
     order by occurred_at desc
     limit ${r.args.limit}`;
}

/** How many rows match beyond the shown ones, counting at most cap + limit. */
function countQuery(sql: Sql, r: Resolved): PendingQuery<Row[]> {
  return sql`
    select count(*)::int as n from (
      select 1 from public.audit_logs_dml where ${whereClause(sql, r)} limit ${MORE_ROWS_CAP + r.args.limit}
    ) s`;
}

/**
 * Runs a search on the audit reader (replica or primary).
 * @throws {OpsError} `unreachable`, `not_configured` (no audit_logs_dml: apply the target SQL), `invalid_input`
 */
export async function searchAudit(
  input: z.input<typeof auditSearchArgs>,
  deps: OpDeps,
): Promise<AuditSearchResult> {
  const args = auditSearchArgs.parse(input);
  const r = resolve(args, deps.now());
  const started = performance.now();
  const { value, member, note } = await onAuditReader(deps, args.target, async (sql) => {
    const rows = await rowsQuery(sql, r);
    const more = rows.length < args.limit ? 0 : Math.max(0, (await countQuery(sql, r))[0].n - rows.length);
    return { rows, more };
  });
  const redaction = redactionOf(deps.config);
  const filters: Record<string, string> = {};
  for (const k of ["table", "user", "app_user", "service", "action", "address", "context"] as const) {
    if (args[k] !== undefined) filters[k] = String(args[k]);
  }
  return {
    target: args.target,
    member,
    note,
    since: r.since.toISOString(),
    until: r.until?.toISOString(),
    filters,
    rows: value.rows.map((x) => ({
      id: Number(x.id),
      occurredAt: new Date(x.occurred_at).toISOString(),
      table: x.table_schema === "public" ? x.table_name : `${x.table_schema}.${x.table_name}`,
      action: x.action,
      rowId: x.row_id,
      dbUser: x.db_user,
      sessionUser: x.session_user_name,
      appUserId: x.app_user_id,
      serviceName: x.service_name,
      clientAddr: x.client_addr,
      applicationName: x.application_name,
      query: x.query_text === null ? null : maskStatementFor(x.query_text, redaction),
      changed: x.changed ?? [],
      ...rowData(x.action, x.old_data, x.new_data, x.changed ?? [], redaction),
    })),
    more: Math.min(value.more, MORE_ROWS_CAP),
    moreCapped: value.more >= MORE_ROWS_CAP,
    ms: Math.round(performance.now() - started),
  };
}

/** The row data a search shows: only what changed for an UPDATE, the whole row otherwise; redacted. */
function rowData(
  action: string,
  oldData: Record<string, unknown> | null,
  newData: Record<string, unknown> | null,
  changed: string[],
  redaction: Redaction,
): { oldData: Record<string, unknown> | null; newData: Record<string, unknown> | null } {
  const pick = (d: Record<string, unknown> | null) =>
    d ? Object.fromEntries(changed.filter((c) => c in d).map((c) => [c, d[c]])) : null;
  if (action === "UPDATE") {
    return { oldData: redactRow(pick(oldData), redaction), newData: redactRow(pick(newData), redaction) };
  }
  return { oldData: redactRow(oldData ?? null, redaction), newData: redactRow(newData ?? null, redaction) };
}

/** The plan PostgreSQL chooses for a search, and the indexes it names. */
export interface AuditSearchExplain {
  indexes: string[];
  /** Node types, top-down (e.g. Limit, Index Scan Backward). */
  nodes: string[];
  plan: unknown;
}

/**
 * EXPLAIN (FORMAT JSON) of the row query and of the count query, as the search would run them on `sql`.
 * Used by the tests and the benchmark to prove the searches use the indexes.
 */
export async function explainAuditSearch(
  sql: Sql,
  input: z.input<typeof auditSearchArgs>,
  now = new Date(),
): Promise<{ rows: AuditSearchExplain; count: AuditSearchExplain }> {
  const r = resolve(auditSearchArgs.parse(input), now);
  const explain = async (q: PendingQuery<Row[]>): Promise<AuditSearchExplain> => {
    const [row] = await sql`explain (format json) ${q}`;
    const plan = (row["QUERY PLAN"] as { Plan: unknown }[])[0].Plan;
    const indexes: string[] = [];
    const nodes: string[] = [];
    const walk = (n: Record<string, unknown>) => {
      nodes.push(String(n["Node Type"]) + (n["Scan Direction"] === "Backward" ? " Backward" : ""));
      if (typeof n["Index Name"] === "string") indexes.push(n["Index Name"]);
      for (const c of (n.Plans as Record<string, unknown>[] | undefined) ?? []) walk(c);
    };
    walk(plan as Record<string, unknown>);
    return { indexes, nodes, plan };
  };
  return { rows: await explain(rowsQuery(sql, r)), count: await explain(countQuery(sql, r)) };
}

/** The read-only operation, so the CLI, alert buttons and the scheduler reach the same code. */
export const auditSearch: Operation<
  AuditSearchArgs,
  PlanBase & { args: AuditSearchArgs },
  AuditSearchResult
> = {
  name: "audit_search",
  destructive: false,
  args: auditSearchArgs,
  plan: (args) =>
    Promise.resolve({
      summary: `Search audit_logs_dml on ${args.target}`,
      target: args.target,
      steps: ["Read audit_logs_dml (replica when configured), newest first"],
      fingerprint: {},
      args,
    }),
  run: (plan, deps) => searchAudit(plan.args, deps),
  describeResult: (r) => `${r.rows.length} rows${r.more ? `, ${r.more}${r.moreCapped ? "+" : ""} more` : ""}`,
};
