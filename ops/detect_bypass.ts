/**
 * Bypass detection (the seed's `bypass_detection_queries.sql`): writes and changes that did not come
 * through the application as the role policy expects.
 *
 * - `unexpected_dml_role`: DML by a role that is not an application or service role (audit_logs_dml)
 * - `dml_without_context`: DML by an application or service role without app.user_id and app.service_name
 * - `ddl_outside_bot`: DDL recorded by the event trigger in a transaction the bot did not record as its own
 * - `role_change_outside_bot`: CREATE/ALTER/DROP ROLE, GRANT/REVOKE of roles, ALTER SYSTEM by any role but
 *   the bot's, from pg_stat_statements (role changes never reach event triggers; these counters have no
 *   time, so they cover everything since the statistics were last reset)
 * - `unexpected_login`: sessions of roles outside the configured role list (the seed's "unexpected DB user")
 * - `service_outside_grants`: a service role writing tables outside its policy
 *
 * The bot's own approved actions that PostgreSQL records under another role (Vault's `ALTER ROLE ... PASSWORD`
 * for an approved `rotate root`) are listed apart as `ownActions`, each with its approval request, never as
 * findings; only as many as the audit log shows approved runs (ops/_own_actions.ts).
 *
 * Each finding names the rows or sessions and the `/bisman audit` search that shows them.
 *
 * @module
 */

import type { Sql } from "postgres";
import { z } from "zod";
import type { OpDeps, Operation, PlanBase } from "./types.ts";
import {
  expectedLogins,
  onAuditReader,
  parseSince,
  serviceRoles,
  sinceArg,
  targetName,
  type TargetSecurity,
  targetSecurity,
  writerRoles,
} from "./_security.ts";
import { asTargetError } from "./_security.ts";
import { maskStatementFor, type Redaction, redactionOf } from "../core/redact.ts";
import { approvedRuns, selfPasswordChange } from "./_own_actions.ts";

/** Arguments: target and the window (default 24h). */
export const detectBypassArgs = z.strictObject({
  target: targetName,
  since: sinceArg.default("24h"),
});
/** Validated arguments. */
export type DetectBypassArgs = z.infer<typeof detectBypassArgs>;

/** The kinds of finding, in the order they are reported. */
export const FINDING_KINDS = [
  "unexpected_dml_role",
  "service_outside_grants",
  "dml_without_context",
  "ddl_outside_bot",
  "role_change_outside_bot",
  "unexpected_login",
] as const;
/** One kind of finding. */
export type FindingKind = typeof FINDING_KINDS[number];

/** One finding. */
export interface BypassFinding {
  kind: FindingKind;
  severity: "warning" | "critical";
  /** One line, e.g. "mallory wrote 3 rows (UPDATE clients)". */
  title: string;
  /** The rows or sessions, one line each (at most 10). */
  evidence: string[];
  /** The `/bisman audit ...` search that lists the rows, when they are in audit_logs_dml. */
  auditSearch?: string;
  /** What to do next (a subcommand), when there is one. */
  next?: string;
  /** Machine-readable keys (role, table, pids, ...) for tests and alert buttons. */
  subject: Record<string, unknown>;
}

/** Every finding of one run, and the checks that could not run. */
export interface DetectBypassResult {
  target: string;
  member: string;
  note?: string;
  since: string;
  findings: BypassFinding[];
  /** Checks that could not run (e.g. pg_stat_statements absent), with why. */
  skipped: string[];
  /**
   * What the checks saw that the bot itself did after an approval (e.g. Vault's password change for an
   * approved `rotate root`), one line each naming the request: reported as such, not as findings.
   */
  ownActions: string[];
  /** Rows of audit_logs_dml in the window (for context: "0 findings in N writes"). */
  rowsInWindow: number;
}

/** Keeps a value short and free of newlines for one evidence line. */
function oneLine(s: string | null | undefined, max = 160): string {
  const t = (s ?? "").replace(/\s+/g, " ").trim();
  return t.length > max ? `${t.slice(0, max - 1)}\u2026` : t;
}

function iso(d: Date | string): string {
  return new Date(d).toISOString().replace(/\.\d{3}Z$/, "Z");
}

interface Ctx {
  sql: Sql;
  sec: TargetSecurity;
  /** How statement text in evidence is masked (core/statement_mask.ts). */
  redaction: Redaction;
  since: Date;
  sinceText: string;
  findings: BypassFinding[];
  skipped: string[];
  ownActions: string[];
  deps: OpDeps;
}

function auditLink(c: Ctx, filters: Record<string, string>): string {
  const f = Object.entries(filters).map(([k, v]) => `${k}=${v}`).join(" ");
  return `/bisman audit ${c.sec.target} ${f} since=${c.sinceText}`.replace(/\s+/g, " ");
}

/** Distinct db_user values of audit_logs_dml: a loose index scan over (db_user, occurred_at). */
async function distinctWriters(sql: Sql): Promise<string[]> {
  const rows = await sql<{ db_user: string }[]>`
    with recursive u as (
      (select db_user from public.audit_logs_dml order by db_user limit 1)
      union all
      select (select a.db_user from public.audit_logs_dml a where a.db_user > u.db_user order by a.db_user limit 1)
        from u where u.db_user is not null
    )
    select db_user from u where db_user is not null`;
  return rows.map((r) => r.db_user);
}

interface DmlGroup {
  db_user: string;
  table_name: string;
  action: string;
  n: number;
  first: Date;
  last: Date;
  addrs: string[] | null;
  ids: string[];
}

async function unexpectedDml(c: Ctx): Promise<void> {
  const writers = new Set(writerRoles(c.sec));
  const others = (await distinctWriters(c.sql)).filter((u) => !writers.has(u));
  if (!others.length) return;
  const groups = await c.sql<DmlGroup[]>`
    select db_user, table_name, action, count(*)::int as n, min(occurred_at) as first, max(occurred_at) as last,
           array_agg(distinct host(client_addr)) filter (where client_addr is not null) as addrs,
           (array_agg(id order by occurred_at desc))[1:5]::text[] as ids
      from public.audit_logs_dml
     where db_user = any(${others}) and occurred_at >= ${c.since}
     group by db_user, table_name, action
     order by db_user, n desc`;
  for (const user of others) {
    const mine = groups.filter((g) => g.db_user === user);
    if (!mine.length) continue;
    const total = mine.reduce((a, g) => a + g.n, 0);
    c.findings.push({
      kind: "unexpected_dml_role",
      severity: "critical",
      title: `${user} is not an application or service role and wrote ${total} row(s) directly`,
      evidence: mine.slice(0, 10).map((g) =>
        `${g.action} ${g.table_name}: ${g.n} row(s), ${iso(g.first)} to ${iso(g.last)}` +
        `${g.addrs?.length ? ` from ${g.addrs.join(", ")}` : ""}; audit ids ${g.ids.join(", ")}`
      ),
      auditSearch: auditLink(c, { user }),
      next: `/bisman lock-role ${user} ${c.sec.target}`,
      subject: { role: user, tables: [...new Set(mine.map((g) => g.table_name))], rows: total },
    });
  }
}

async function serviceOutsideGrants(c: Ctx): Promise<void> {
  for (const [role, policy] of serviceRoles(c.sec)) {
    if (policy.tables["*"]) continue; // a service allowed every table cannot stray
    const allowed = Object.keys(policy.tables);
    const groups = await c.sql<DmlGroup[]>`
      select db_user, table_name, action, count(*)::int as n, min(occurred_at) as first, max(occurred_at) as last,
             array_agg(distinct host(client_addr)) filter (where client_addr is not null) as addrs,
             (array_agg(id order by occurred_at desc))[1:5]::text[] as ids
        from public.audit_logs_dml
       where db_user = ${role} and occurred_at >= ${c.since} and table_name <> all(${allowed})
       group by db_user, table_name, action
       order by n desc`;
    for (const table of [...new Set(groups.map((g) => g.table_name))]) {
      const mine = groups.filter((g) => g.table_name === table);
      c.findings.push({
        kind: "service_outside_grants",
        severity: "critical",
        title: `${role} (service ${policy.service}) wrote ${table}, which is outside its grant list (${
          allowed.join(", ")
        })`,
        evidence: mine.map((g) =>
          `${g.action} ${table}: ${g.n} row(s), ${iso(g.first)} to ${iso(g.last)}; audit ids ${
            g.ids.join(", ")
          }`
        ),
        auditSearch: auditLink(c, { user: role, table }),
        next: `/bisman roles ${c.sec.target}`,
        subject: { role, table, rows: mine.reduce((a, g) => a + g.n, 0) },
      });
    }
  }
}

async function dmlWithoutContext(c: Ctx): Promise<void> {
  const writers = writerRoles(c.sec);
  const groups = await c.sql<DmlGroup[]>`
    select db_user, table_name, action, count(*)::int as n, min(occurred_at) as first, max(occurred_at) as last,
           array_agg(distinct host(client_addr)) filter (where client_addr is not null) as addrs,
           (array_agg(id order by occurred_at desc))[1:5]::text[] as ids
      from public.audit_logs_dml
     where occurred_at >= ${c.since} and app_user_id is null and service_name is null
       and db_user = any(${writers})
     group by db_user, table_name, action
     order by db_user, n desc`;
  for (const user of [...new Set(groups.map((g) => g.db_user))]) {
    const mine = groups.filter((g) => g.db_user === user);
    const total = mine.reduce((a, g) => a + g.n, 0);
    c.findings.push({
      kind: "dml_without_context",
      severity: "warning",
      title:
        `${user} wrote ${total} row(s) without app.user_id or app.service_name (not through the application?)`,
      evidence: mine.slice(0, 10).map((g) =>
        `${g.action} ${g.table_name}: ${g.n} row(s), ${iso(g.first)} to ${iso(g.last)}` +
        `${g.addrs?.length ? ` from ${g.addrs.join(", ")}` : ""}; audit ids ${g.ids.join(", ")}`
      ),
      auditSearch: auditLink(c, { user, context: "missing" }),
      subject: { role: user, rows: total },
    });
  }
}

async function ddlOutsideBot(c: Ctx): Promise<void> {
  const rows = await c.sql<
    { id: string; occurred_at: Date; db_user: string; tag: string; object: string | null; query: string }[]
  >`
    select e.id, e.occurred_at, e.db_user, e.details ->> 'command_tag' as tag,
           e.details ->> 'object_identity' as object, coalesce(e.details ->> 'query', '') as query
      from public.security_events e
     where e.event_type = 'ddl' and e.occurred_at >= ${c.since}
       and not exists (
         select 1 from public.security_events b
          where b.txid = e.txid and b.source = 'bisman-ops' and b.event_type <> 'ddl')
     order by e.occurred_at desc
     limit 200`;
  for (const user of [...new Set(rows.map((r) => r.db_user))]) {
    const mine = rows.filter((r) => r.db_user === user);
    c.findings.push({
      kind: "ddl_outside_bot",
      severity: "warning",
      title: `${user} changed the schema or grants ${mine.length} time(s) outside the bot's own actions`,
      evidence: mine.slice(0, 10).map((r) =>
        `${iso(r.occurred_at)} ${r.tag}${r.object ? ` ${r.object}` : ""}: ${
          oneLine(maskStatementFor(r.query, c.redaction), 120)
        } (security_events id ${r.id})`
      ),
      next: `/bisman security-events ${c.sec.target} type=ddl since=${c.sinceText}`,
      subject: {
        role: user,
        tags: [...new Set(mine.map((r) => r.tag))],
        events: mine.map((r) => Number(r.id)),
      },
    });
  }
}

async function roleChangesOutsideBot(c: Ctx): Promise<void> {
  const [ext] = await c.sql<{ schema: string }[]>`
    select extnamespace::regnamespace::text as schema from pg_catalog.pg_extension where extname = 'pg_stat_statements'`;
  if (!ext) {
    c.skipped.push(
      "role changes: pg_stat_statements is not installed in this database (apply the target SQL)",
    );
    return;
  }
  const rows = await c.sql<{ who: string | null; datname: string | null; query: string; calls: string }[]>`
    select pg_catalog.pg_get_userbyid(s.userid) as who, d.datname, s.query, s.calls
      from ${c.sql(ext.schema)}.pg_stat_statements s
      left join pg_catalog.pg_database d on d.oid = s.dbid
     where s.userid is distinct from to_regrole(${c.sec.botRole})::oid
       and (s.query ~* '^\\s*(create|alter|drop)\\s+(role|user|group)\\M'
            or s.query ~* '^\\s*alter\\s+system\\M'
            or s.query ~* '^\\s*(reassign|drop)\\s+owned\\M'
            or (s.query ~* '^\\s*(grant|revoke)\\M' and s.query !~* '\\mon\\M'))
     order by s.calls desc
     limit 100`;
  const [info] = await c.sql<{ reset: Date | null }[]>`
    select stats_reset as reset from ${c.sql(ext.schema)}.pg_stat_statements_info`.catch(
    () => [{ reset: null }],
  );
  const own = await ownRotateRoots(c, rows, info?.reset ?? null);
  for (const who of [...new Set(rows.map((r) => r.who ?? "(dropped role)"))]) {
    const mine = rows.filter((r) => (r.who ?? "(dropped role)") === who && !own.has(r)).map((r) => ({
      ...r,
      query: maskStatementFor(r.query, c.redaction),
    }));
    if (!mine.length) continue;
    c.findings.push({
      kind: "role_change_outside_bot",
      severity: "critical",
      title: `${who} changed roles or server settings outside the bot (${mine.length} statement(s) since ${
        info?.reset ? iso(info.reset) : "statistics were last reset"
      })`,
      evidence: mine.slice(0, 10).map((r) =>
        `${oneLine(r.query, 140)} \u2014 ${r.calls} call(s)${r.datname ? ` in ${r.datname}` : ""}`
      ),
      next: `/bisman roles ${c.sec.target}`,
      subject: { role: who, statements: mine.map((r) => r.query) },
    });
  }
}

/**
 * Vault's self password changes that the bot's approved `rotate root` runs explain: each counted call needs
 * one approved run since the statistics were reset. The explained statements go to `ownActions` with their
 * requests; a surplus (more changes than approved runs) stays a finding.
 */
async function ownRotateRoots(
  c: Ctx,
  rows: { who: string | null; query: string; calls: string }[],
  reset: Date | null,
): Promise<Set<(typeof rows)[number]>> {
  const explained = new Set<(typeof rows)[number]>();
  const self = rows.filter((r) => r.who && selfPasswordChange(r.query, r.who));
  if (!self.length) return explained;
  const runs = await approvedRuns(c.deps, "rotate_root", c.sec.target, reset);
  let left = runs.length;
  for (const who of [...new Set(self.map((r) => r.who!))]) {
    const mine = self.filter((r) => r.who === who);
    const calls = mine.reduce((a, r) => a + Number(r.calls), 0);
    if (calls > left) continue;
    left -= calls;
    for (const r of mine) explained.add(r);
    const ids = runs.map((r) => `#${r.requestId}`).join(", ");
    c.ownActions.push(
      `${who} changed its own password ${calls} time(s): Vault's rotate-root for the bot's approved ` +
        `\`rotate root\` on ${c.sec.target} (request ${ids}; \`/bisman requests\`)`,
    );
  }
  return explained;
}

async function unexpectedLogins(c: Ctx, primary: Sql): Promise<void> {
  const allowed = expectedLogins(c.sec);
  const rows = await primary<
    {
      pid: number;
      usename: string;
      datname: string | null;
      addr: string | null;
      application_name: string;
      backend_start: Date;
      state: string | null;
    }[]
  >`
    select pid, usename, datname, host(client_addr) as addr, application_name, backend_start, state
      from pg_catalog.pg_stat_activity
     where backend_type = 'client backend' and usename is not null and usename <> all(${allowed})
     order by usename, backend_start`;
  for (const user of [...new Set(rows.map((r) => r.usename))]) {
    const mine = rows.filter((r) => r.usename === user);
    const addrs = [...new Set(mine.map((r) => r.addr).filter((a): a is string => !!a))];
    c.findings.push({
      kind: "unexpected_login",
      severity: "critical",
      title: `${user} is logged in (${mine.length} session(s)) but is not in the configured role list`,
      evidence: mine.slice(0, 10).map((r) =>
        `pid ${r.pid} from ${r.addr ?? "local socket"} to ${r.datname ?? "?"}, ${
          oneLine(r.application_name, 40) || "no application_name"
        }, since ${iso(r.backend_start)}, ${r.state ?? "?"}`
      ),
      auditSearch: auditLink(c, { user }),
      next: addrs.length
        ? `/bisman lock-role ${user} ${c.sec.target}, or /bisman terminate ${addrs[0]} ${c.sec.target}`
        : `/bisman lock-role ${user} ${c.sec.target}`,
      subject: { role: user, pids: mine.map((r) => r.pid), addresses: addrs },
    });
  }
}

/**
 * Runs every check. Audit-table reads go to the audit reader (a replica when configured); sessions and
 * pg_stat_statements are read on the primary, where they happen.
 * @throws {OpsError} `unreachable`, `not_configured` (no audit tables)
 */
export async function detectBypass(
  input: z.input<typeof detectBypassArgs>,
  deps: OpDeps,
): Promise<DetectBypassResult> {
  const args = detectBypassArgs.parse(input);
  const sec = targetSecurity(deps, args.target);
  const since = parseSince(args.since, deps.now());
  const redaction = redactionOf(deps.config);
  const findings: BypassFinding[] = [];
  const skipped: string[] = [];
  const ownActions: string[] = [];
  const { value: rowsInWindow, member, note } = await onAuditReader(deps, args.target, async (sql) => {
    const c: Ctx = { sql, sec, redaction, since, sinceText: args.since, findings, skipped, ownActions, deps };
    await unexpectedDml(c);
    await serviceOutsideGrants(c);
    await dmlWithoutContext(c);
    await ddlOutsideBot(c);
    const [{ n }] = await sql<{ n: number }[]>`
      select count(*)::int as n from public.audit_logs_dml where occurred_at >= ${since}`;
    return n;
  });
  const m = deps.targets.member(args.target, "primary");
  try {
    const primary = await deps.targets.pool(args.target, "primary");
    const c: Ctx = {
      sql: primary,
      sec,
      redaction,
      since,
      sinceText: args.since,
      findings,
      skipped,
      ownActions,
      deps,
    };
    await roleChangesOutsideBot(c);
    await unexpectedLogins(c, primary);
  } catch (err) {
    throw asTargetError(m, err, "read sessions and statement statistics");
  }
  findings.sort((a, b) => FINDING_KINDS.indexOf(a.kind) - FINDING_KINDS.indexOf(b.kind));
  return {
    target: args.target,
    member,
    note,
    since: since.toISOString(),
    findings,
    skipped,
    ownActions,
    rowsInWindow,
  };
}

/** The read-only operation (the digest and alert threads call it too). */
export const detectBypassOp: Operation<
  DetectBypassArgs,
  PlanBase & { args: DetectBypassArgs },
  DetectBypassResult
> = {
  name: "detect_bypass",
  destructive: false,
  args: detectBypassArgs,
  plan: (args) =>
    Promise.resolve({
      summary: `Run the bypass-detection queries on ${args.target} since ${args.since}`,
      target: args.target,
      steps: ["Read audit_logs_dml and security_events", "Read pg_stat_statements and pg_stat_activity"],
      fingerprint: {},
      args,
    }),
  run: (plan, deps) => detectBypass(plan.args, deps),
  describeResult: (r) => `${r.findings.length} finding(s)`,
};
