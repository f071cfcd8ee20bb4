/**
 * Which tables a service touched and how (from audit_logs_dml), against what the policy grants it and what
 * the database actually grants: the seed's service-table usage report (`serviceTableUsage.js`).
 *
 * A service is matched by its app.service_name and by its roles (policy roles of kind `service` naming it),
 * so writes made with the service's role but without context still count.
 *
 * @module
 */

import { z } from "zod";
import type { TablePrivilege } from "../core/config.ts";
import { NotConfigured } from "../core/errors.ts";
import type { OpDeps, Operation, PlanBase } from "./types.ts";
import { onAuditReader, parseSince, sinceArg, targetName, targetSecurity } from "./_security.ts";
import { own } from "../core/lookup.ts";

/** Arguments: target, service (name or role), window (default 30d). */
export const serviceUsageArgs = z.strictObject({
  target: targetName,
  /** A service name (payments) or a service role (svc_payments). */
  service: z.string().max(63).regex(/^[a-z][a-z0-9_-]{0,62}$/, "a service name such as payments"),
  since: sinceArg.default("30d"),
});
/** Validated arguments. */
export type ServiceUsageArgs = z.infer<typeof serviceUsageArgs>;

const WRITE_PRIVS = ["INSERT", "UPDATE", "DELETE"] as const;
const AUDIT_TABLES = ["audit_logs_dml", "security_events"];

/** One table in the report. */
export interface TableUsage {
  table: string;
  /** Rows written per action in the window (INSERT/UPDATE/DELETE). */
  used: Record<string, number>;
  lastUsed: string | null;
  /** Privileges the policy gives the service's roles on this table. */
  policy: TablePrivilege[];
  /** Privileges the service's roles really hold (directly or through membership). */
  actual: TablePrivilege[];
  /**
   * `outside_policy`: written but the policy grants no such write (critical);
   * `beyond_policy`: the database grants more than the policy;
   * `unused_grant`: a write privilege granted and not used in the window (a candidate to revoke);
   * `ok`.
   */
  verdicts: ("outside_policy" | "beyond_policy" | "unused_grant" | "ok")[];
}

/** The report for one service. */
export interface ServiceUsageResult {
  target: string;
  member: string;
  note?: string;
  service: string;
  roles: string[];
  since: string;
  tables: TableUsage[];
  /** Writes by the service's roles with no app.service_name (counted in `used` as well). */
  withoutServiceName: number;
}

/**
 * Builds the report.
 * @throws {NotConfigured} when no policy role serves `service`
 */
export async function readServiceUsage(
  input: z.input<typeof serviceUsageArgs>,
  deps: OpDeps,
): Promise<ServiceUsageResult> {
  const args = serviceUsageArgs.parse(input);
  const sec = targetSecurity(deps, args.target);
  const named = own(sec.roles, args.service);
  const byRole = named?.kind === "service" ? named : undefined;
  const service = byRole?.service ?? args.service;
  const roles = Object.entries(sec.roles).filter(([, p]) => p.kind === "service" && p.service === service)
    .map((
      [n],
    ) => n);
  if (!roles.length) {
    const known = Object.values(sec.roles).map((p) => p.service).filter(Boolean);
    throw new NotConfigured(
      `No service "${args.service}" in targets.${args.target}.security.roles: known services are ${
        known.join(", ") || "none"
      }`,
    );
  }
  const since = parseSince(args.since, deps.now());
  const { value, member, note } = await onAuditReader(deps, args.target, async (sql) => {
    // Two queries, not one with OR, so each walks its own index (service_name, then db_user).
    const byName = await sql<{ table_name: string; action: string; n: number; last: Date }[]>`
      select table_name, action, count(*)::int as n, max(occurred_at) as last from public.audit_logs_dml
       where service_name = ${service} and occurred_at >= ${since}
       group by table_name, action`;
    const byRoleNoName = await sql<{ table_name: string; action: string; n: number; last: Date }[]>`
      select table_name, action, count(*)::int as n, max(occurred_at) as last from public.audit_logs_dml
       where db_user = any(${roles}) and occurred_at >= ${since}
         and service_name is distinct from ${service}
       group by table_name, action`;
    const grants = await sql<{ table_name: string; privs: string[] }[]>`
      select c.relname as table_name,
             array(select p from unnest(array['SELECT','INSERT','UPDATE','DELETE','TRUNCATE','REFERENCES','TRIGGER']) p
                    where exists (select 1 from unnest(${roles}::text[]) r
                                  where case when to_regrole(r) is null then false
                                             else has_table_privilege(r, c.oid, p) end)) as privs
        from pg_catalog.pg_class c join pg_catalog.pg_namespace n on n.oid = c.relnamespace
       where n.nspname = ${sec.schema} and c.relkind in ('r', 'p', 'v', 'm', 'f')`;
    return { byName, byRoleNoName, grants };
  });
  const policyFor = (table: string): TablePrivilege[] => {
    const set = new Set<TablePrivilege>();
    for (const r of roles) {
      const p = own(sec.roles, r)?.tables;
      for (const x of own(p, table) ?? own(p, "*") ?? []) set.add(x);
    }
    return [...set];
  };
  const tables = new Map<string, TableUsage>();
  const entry = (table: string) => {
    let t = tables.get(table);
    if (!t) {
      tables.set(
        table,
        t = { table, used: {}, lastUsed: null, policy: policyFor(table), actual: [], verdicts: [] },
      );
    }
    return t;
  };
  let withoutServiceName = 0;
  for (const [rows, noName] of [[value.byName, false], [value.byRoleNoName, true]] as const) {
    for (const r of rows) {
      const t = entry(r.table_name);
      t.used[r.action] = (t.used[r.action] ?? 0) + r.n;
      const last = new Date(r.last).toISOString();
      if (!t.lastUsed || last > t.lastUsed) t.lastUsed = last;
      if (noName) withoutServiceName += r.n;
    }
  }
  for (const g of value.grants) {
    if (g.privs.length || policyFor(g.table_name).length) {
      entry(g.table_name).actual = g.privs as TablePrivilege[];
    }
  }
  for (const t of tables.values()) {
    const outside = Object.keys(t.used).some((a) => !t.policy.includes(a as TablePrivilege));
    const beyond = t.actual.some((p) => !t.policy.includes(p));
    // The audit tables' INSERT is there for the trigger, whose own rows are not audited: never "unused".
    const unused = !AUDIT_TABLES.includes(t.table) &&
      t.actual.some((p) => (WRITE_PRIVS as readonly string[]).includes(p) && !t.used[p]);
    if (outside) t.verdicts.push("outside_policy");
    if (beyond) t.verdicts.push("beyond_policy");
    if (unused) t.verdicts.push("unused_grant");
    if (!t.verdicts.length) t.verdicts.push("ok");
  }
  return {
    target: args.target,
    member,
    note,
    service,
    roles,
    since: since.toISOString(),
    tables: [...tables.values()].sort((a, b) => a.table.localeCompare(b.table)),
    withoutServiceName,
  };
}

/** The read-only operation. */
export const serviceUsage: Operation<
  ServiceUsageArgs,
  PlanBase & { args: ServiceUsageArgs },
  ServiceUsageResult
> = {
  name: "service_usage",
  destructive: false,
  args: serviceUsageArgs,
  plan: (args) =>
    Promise.resolve({
      summary: `Report which tables service ${args.service} touched on ${args.target} since ${args.since}`,
      target: args.target,
      steps: ["Read audit_logs_dml by service name and by the service's roles", "Read table privileges"],
      fingerprint: {},
      args,
    }),
  run: (plan, deps) => readServiceUsage(plan.args, deps),
  describeResult: (r) => `${r.tables.length} table(s)`,
};
