/**
 * Least-privilege drift between the role policy in config (`targets.<t>.security.roles`, by default the
 * seed's hierarchy of sql/target/roles.sql) and the database: roles missing or unexpected, superusers,
 * BYPASSRLS and CREATEROLE beyond policy, memberships, direct table privileges (from the tables' ACLs, so
 * grants by anyone to anyone are seen), default privileges, EXECUTE on functions, and VALID UNTIL.
 *
 * Every drift item carries the exact statements that remove it; `roles_apply` runs them in one transaction.
 * Some findings are notes, never fixed automatically: a role the policy expects to log in that cannot (it
 * may have been locked on purpose: `/bisman unlock-role`), an expired VALID UNTIL, the bot itself running
 * as a superuser, and unexpected roles already stripped of everything (dropping a role is left to a person).
 *
 * @module
 */

import type { Sql } from "postgres";
import { z } from "zod";
import type { RolePolicy, TablePrivilege } from "../core/config.ts";
import type { OpDeps, Operation, PlanBase } from "./types.ts";
import {
  asTargetError,
  displayIdent,
  primaryPool,
  targetName,
  type TargetSecurity,
  targetSecurity,
} from "./_security.ts";
import { own } from "../core/lookup.ts";

/** Arguments: the target. */
export const roleDriftArgs = z.strictObject({ target: targetName });
/** Validated arguments. */
export type RoleDriftArgs = z.infer<typeof roleDriftArgs>;

/** What kind of difference an item is. */
export type DriftKind =
  | "missing_role"
  | "unexpected_role"
  | "superuser"
  | "bypassrls"
  | "createrole"
  | "login"
  | "membership"
  | "table_privilege"
  | "default_privilege"
  | "function_execute"
  | "valid_until";

/** One difference between policy and database. */
export interface DriftItem {
  kind: DriftKind;
  severity: "critical" | "warning" | "info";
  role: string;
  /** What differs, in words. */
  detail: string;
  /** Statements that remove it; empty for notes. */
  fix: string[];
}

/** The comparison. */
export interface RoleDriftResult {
  target: string;
  schema: string;
  /** Items with a fix: what `roles apply` changes. */
  drift: DriftItem[];
  /** Findings for a person (no automatic fix). */
  notes: DriftItem[];
  /** Every fix statement, in the order `roles apply` runs them. */
  statements: string[];
  checkedAt: string;
}

const ALL_PRIVS: TablePrivilege[] = [
  "SELECT",
  "INSERT",
  "UPDATE",
  "DELETE",
  "TRUNCATE",
  "REFERENCES",
  "TRIGGER",
];
/** The privileges sql/target/bot_role.sql gives the bot on the audit tables. */
const BOT_TABLES: Record<string, TablePrivilege[]> = {
  audit_logs_dml: ["SELECT"],
  security_events: ["SELECT", "INSERT"],
};

interface RoleRow {
  oid: number;
  rolname: string;
  rolsuper: boolean;
  rolcreaterole: boolean;
  rolcanlogin: boolean;
  rolbypassrls: boolean;
  rolreplication: boolean;
  rolvaliduntil: Date | null;
}
interface AclRow {
  object: string;
  kind: string;
  owner: string;
  grantee: string;
  privilege: string;
  grantable: boolean;
}
interface DefaultAclRow {
  owner: string;
  objtype: string;
  grantee: string;
  privilege: string;
}

/** The state the comparison reads, all from catalogs the bot's role may read. */
export interface RoleSnapshot {
  roles: RoleRow[];
  memberships: { role: string; member: string }[];
  tables: { name: string; owner: string }[];
  tableAcl: AclRow[];
  functions: { signature: string; kind: "f" | "p"; owner: string }[];
  functionAcl: AclRow[];
  defaultAcl: DefaultAclRow[];
  now: Date;
}

/** Reads roles, memberships and the ACLs of `schema` on the connected database. */
export async function readRoleSnapshot(sql: Sql, schema: string): Promise<RoleSnapshot> {
  const roles = await sql<RoleRow[]>`
    select oid::int as oid, rolname, rolsuper, rolcreaterole, rolcanlogin, rolbypassrls, rolreplication, rolvaliduntil
      from pg_catalog.pg_roles where rolname !~ '^pg_' order by rolname`;
  const memberships = await sql<{ role: string; member: string }[]>`
    select r.rolname as role, m.rolname as member
      from pg_catalog.pg_auth_members am
      join pg_catalog.pg_roles r on r.oid = am.roleid
      join pg_catalog.pg_roles m on m.oid = am.member`;
  const tables = await sql<{ name: string; owner: string }[]>`
    select c.relname as name, pg_catalog.pg_get_userbyid(c.relowner) as owner
      from pg_catalog.pg_class c join pg_catalog.pg_namespace n on n.oid = c.relnamespace
     where n.nspname = ${schema} and c.relkind in ('r', 'p', 'v', 'm', 'f') and not c.relispartition
       and not exists (select 1 from pg_catalog.pg_depend d where d.objid = c.oid and d.deptype = 'e')
     order by c.relname`;
  const tableAcl = await sql<AclRow[]>`
    select c.relname as object, c.relkind::text as kind, pg_catalog.pg_get_userbyid(c.relowner) as owner,
           case when a.grantee = 0 then 'PUBLIC' else pg_catalog.pg_get_userbyid(a.grantee) end as grantee,
           a.privilege_type as privilege, a.is_grantable as grantable
      from pg_catalog.pg_class c join pg_catalog.pg_namespace n on n.oid = c.relnamespace
     cross join lateral aclexplode(coalesce(c.relacl, acldefault('r', c.relowner))) a
     where n.nspname = ${schema} and c.relkind in ('r', 'p', 'v', 'm', 'f') and not c.relispartition
       and a.grantee <> c.relowner
       -- Objects of extensions (pg_stat_statements' views) carry the extension's own grants.
       and not exists (select 1 from pg_catalog.pg_depend d where d.objid = c.oid and d.deptype = 'e')`;
  const functions = await sql<{ signature: string; kind: "f" | "p"; owner: string }[]>`
    select p.oid::regprocedure::text as signature, p.prokind::text as kind,
           pg_catalog.pg_get_userbyid(p.proowner) as owner
      from pg_catalog.pg_proc p join pg_catalog.pg_namespace n on n.oid = p.pronamespace
     where n.nspname = ${schema} and p.prokind in ('f', 'p')
       and not exists (select 1 from pg_catalog.pg_depend d where d.objid = p.oid and d.deptype = 'e')
     order by 1`;
  const functionAcl = await sql<AclRow[]>`
    select p.oid::regprocedure::text as object, p.prokind::text as kind, pg_catalog.pg_get_userbyid(p.proowner) as owner,
           case when a.grantee = 0 then 'PUBLIC' else pg_catalog.pg_get_userbyid(a.grantee) end as grantee,
           a.privilege_type as privilege, a.is_grantable as grantable
      from pg_catalog.pg_proc p join pg_catalog.pg_namespace n on n.oid = p.pronamespace
     cross join lateral aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) a
     where n.nspname = ${schema} and p.prokind in ('f', 'p') and a.grantee <> p.proowner
       and not exists (select 1 from pg_catalog.pg_depend d where d.objid = p.oid and d.deptype = 'e')`;
  const defaultAcl = await sql<DefaultAclRow[]>`
    select pg_catalog.pg_get_userbyid(d.defaclrole) as owner, d.defaclobjtype::text as objtype,
           case when a.grantee = 0 then 'PUBLIC' else pg_catalog.pg_get_userbyid(a.grantee) end as grantee,
           a.privilege_type as privilege
      from pg_catalog.pg_default_acl d join pg_catalog.pg_namespace n on n.oid = d.defaclnamespace
     cross join lateral aclexplode(d.defaclacl) a
     where n.nspname = ${schema} and a.grantee <> d.defaclrole`;
  const [{ now }] = await sql<{ now: Date }[]>`select now() as now`;
  return { roles, memberships, tables, tableAcl, functions, functionAcl, defaultAcl, now: new Date(now) };
}

const id = displayIdent;
const grantee = (g: string) => (g === "PUBLIC" ? "PUBLIC" : id(g));
const qualified = (schema: string, name: string) => `${id(schema)}.${id(name)}`;

/** The expected direct privileges of `role` on `table` under `policy`. */
function expectedOn(policy: RolePolicy | undefined, table: string): TablePrivilege[] {
  if (!policy) return [];
  return own(policy.tables, table) ?? own(policy.tables, "*") ?? [];
}

/**
 * Compares a snapshot with the policy. Pure: tests and the approval plan use the same function.
 * Roles outside the policy that the config lists in `other_roles`, the bootstrap superuser and the bot's own
 * role are expected; their privileges are left alone (the bot's own audit-table grants are checked).
 */
export function compareRoles(sec: TargetSecurity, snap: RoleSnapshot): RoleDriftResult {
  const drift: DriftItem[] = [];
  const notes: DriftItem[] = [];
  const byName = new Map(snap.roles.map((r) => [r.rolname, r]));
  const bootstrap = snap.roles.find((r) => r.oid === 10)?.rolname;
  const policy = sec.roles;
  const managed = (r: string) => r in policy;
  const tolerated = (r: string) => sec.other_roles.includes(r) || r === bootstrap || r === sec.botRole;
  const unexpected = snap.roles.filter((r) => !managed(r.rolname) && !tolerated(r.rolname));
  const unexpectedNames = new Set(unexpected.map((r) => r.rolname));
  const bot = byName.get(sec.botRole);

  // Roles and their attributes.
  for (const [name, p] of Object.entries(policy)) {
    const r = byName.get(name);
    if (!r) {
      const attrs = [p.login ? "LOGIN" : "NOLOGIN", ...(p.superuser ? ["SUPERUSER"] : [])].join(" ");
      drift.push({
        kind: "missing_role",
        severity: "critical",
        role: name,
        detail:
          `${name} does not exist (policy: ${p.kind} role); it is created without a password: rotate it next`,
        fix: [`CREATE ROLE ${id(name)} ${attrs};`],
      });
      continue;
    }
    const attr = (
      kind: DriftKind,
      has: boolean,
      want: boolean,
      on: string,
      off: string,
      sev: DriftItem["severity"],
    ) => {
      if (has === want) return;
      drift.push({
        kind,
        severity: sev,
        role: name,
        detail: `${name} is ${has ? "" : "not "}${on.toLowerCase()}; the policy says ${want ? on : off}`,
        fix: [`ALTER ROLE ${id(name)} ${want ? on : off};`],
      });
    };
    attr("superuser", r.rolsuper, p.superuser, "SUPERUSER", "NOSUPERUSER", "critical");
    attr("bypassrls", r.rolbypassrls, p.bypassrls, "BYPASSRLS", "NOBYPASSRLS", "critical");
    attr("createrole", r.rolcreaterole, p.createrole, "CREATEROLE", "NOCREATEROLE", "warning");
    if (r.rolcanlogin && !p.login) {
      drift.push({
        kind: "login",
        severity: "warning",
        role: name,
        detail: `${name} can log in; the policy says NOLOGIN`,
        fix: [`ALTER ROLE ${id(name)} NOLOGIN;`],
      });
    } else if (!r.rolcanlogin && p.login) {
      notes.push({
        kind: "login",
        severity: "warning",
        role: name,
        detail:
          `${name} cannot log in (locked?); the policy expects a login. \`/bisman unlock-role ${name}\` restores it`,
        fix: [],
      });
    }
    if (p.login && r.rolvaliduntil) {
      const until = new Date(r.rolvaliduntil);
      const days = (until.getTime() - snap.now.getTime()) / 86_400_000;
      if (days < 0) {
        notes.push({
          kind: "valid_until",
          severity: "critical",
          role: name,
          detail: `${name}'s password expired at ${until.toISOString()} (VALID UNTIL): it cannot log in`,
          fix: [],
        });
      } else if (days < 14) {
        notes.push({
          kind: "valid_until",
          severity: "warning",
          role: name,
          detail: `${name}'s password expires at ${until.toISOString()} (VALID UNTIL, in ${
            Math.ceil(days)
          } days)`,
          fix: [],
        });
      }
    }
  }
  if (bot?.rolsuper) {
    notes.push({
      kind: "superuser",
      severity: "warning",
      role: sec.botRole,
      detail: `The bot logs in as ${sec.botRole}, a superuser: give it the role of sql/target/bot_role.sql`,
      fix: [],
    });
  }

  // Unexpected roles: stripped of attributes here, of grants and memberships below; never dropped.
  for (const r of unexpected) {
    const strip: string[] = [];
    if (r.rolcanlogin) strip.push("NOLOGIN");
    if (r.rolsuper) strip.push("NOSUPERUSER");
    if (r.rolcreaterole) strip.push("NOCREATEROLE");
    if (r.rolbypassrls) strip.push("NOBYPASSRLS");
    if (r.rolreplication) strip.push("NOREPLICATION");
    const hasGrants = snap.tableAcl.some((a) => a.grantee === r.rolname) ||
      snap.memberships.some((m) => m.member === r.rolname);
    if (strip.length) {
      drift.push({
        kind: r.rolsuper ? "superuser" : "unexpected_role",
        severity: "critical",
        role: r.rolname,
        detail: `${r.rolname} is not in the policy or security.other_roles${
          r.rolsuper ? " and is a superuser" : ""
        }${r.rolcanlogin ? " and can log in" : ""}`,
        fix: [`ALTER ROLE ${id(r.rolname)} ${strip.join(" ")};`],
      });
    } else if (!hasGrants) {
      notes.push({
        kind: "unexpected_role",
        severity: "info",
        role: r.rolname,
        detail:
          `${r.rolname} is not in the policy; it cannot log in and holds no grants here: drop it by hand ` +
          `(REASSIGN OWNED / DROP OWNED first) or add it to security.other_roles`,
        fix: [],
      });
    }
  }

  // Memberships of managed roles, and of unexpected roles in anything.
  for (const m of snap.memberships) {
    const memberPolicy = own(policy, m.member);
    const wanted = memberPolicy ? memberPolicy.member_of.includes(m.role) : false;
    if (memberPolicy && !wanted) {
      drift.push({
        kind: "membership",
        severity: own(policy, m.role)?.superuser || byName.get(m.role)?.rolsuper ? "critical" : "warning",
        role: m.member,
        detail: `${m.member} is a member of ${m.role}; the policy does not give it that membership`,
        fix: [`REVOKE ${id(m.role)} FROM ${id(m.member)};`],
      });
    } else if (unexpectedNames.has(m.member) && (managed(m.role) || byName.get(m.role)?.rolsuper)) {
      drift.push({
        kind: "membership",
        severity: "critical",
        role: m.member,
        detail: `${m.member} (not in the policy) is a member of ${m.role}`,
        fix: [`REVOKE ${id(m.role)} FROM ${id(m.member)};`],
      });
    }
  }
  for (const [name, p] of Object.entries(policy)) {
    for (const parent of p.member_of) {
      if (!byName.has(name) && !own(policy, name)) continue;
      if (!snap.memberships.some((m) => m.member === name && m.role === parent)) {
        drift.push({
          kind: "membership",
          severity: "warning",
          role: name,
          detail: `${name} is not a member of ${parent}; the policy says it is`,
          fix: [`GRANT ${id(parent)} TO ${id(name)};`],
        });
      }
    }
  }

  // Table privileges: compare every grantee's direct privileges with the policy, table by table.
  const owners = new Map(snap.tables.map((t) => [t.name, t.owner]));
  const tableItems = (objectKind: "table", acl: AclRow[], names: { name: string }[]) => {
    const grants = new Map<string, Map<string, { privs: Set<string>; grantable: Set<string> }>>();
    for (const a of acl) {
      let t = grants.get(a.object);
      if (!t) grants.set(a.object, t = new Map());
      let g = t.get(a.grantee);
      if (!g) t.set(a.grantee, g = { privs: new Set(), grantable: new Set() });
      g.privs.add(a.privilege);
      if (a.grantable) g.grantable.add(a.privilege);
    }
    for (const { name: table } of names) {
      const t = grants.get(table) ?? new Map();
      const grantees = new Set<string>([...t.keys(), ...Object.keys(policy)]);
      for (const g of grantees) {
        if (g !== "PUBLIC" && tolerated(g) && g !== sec.botRole) continue;
        const have = t.get(g) ?? { privs: new Set<string>(), grantable: new Set<string>() };
        let want: TablePrivilege[];
        if (g === sec.botRole) {
          // A superuser or owning bot needs no grants; otherwise it holds what bot_role.sql gives it.
          if (bot?.rolsuper || owners.get(table) === g) continue;
          if (!own(BOT_TABLES, table) && !have.privs.size) continue;
          want = own(BOT_TABLES, table) ?? [];
        } else want = managed(g) ? expectedOn(own(policy, g), table) : [];
        const extra = ALL_PRIVS.filter((p) => have.privs.has(p) && !want.includes(p));
        const missing = want.filter((p) => !have.privs.has(p));
        const grantOption = [...have.grantable].filter((p) => !extra.includes(p as TablePrivilege));
        const obj = `TABLE ${qualified(sec.schema, table)}`;
        if (extra.length) {
          drift.push({
            kind: "table_privilege",
            severity: g === "PUBLIC" || extra.some((p) => p !== "SELECT") ? "critical" : "warning",
            role: g,
            detail: `${g} has ${extra.join(", ")} on ${table} beyond the policy (${
              want.join(", ") || "nothing"
            })`,
            fix: [`REVOKE ${extra.join(", ")} ON ${obj} FROM ${grantee(g)};`],
          });
        }
        if (grantOption.length) {
          drift.push({
            kind: "table_privilege",
            severity: "warning",
            role: g,
            detail: `${g} may grant ${grantOption.join(", ")} on ${table} to others (WITH GRANT OPTION)`,
            fix: [`REVOKE GRANT OPTION FOR ${grantOption.join(", ")} ON ${obj} FROM ${grantee(g)};`],
          });
        }
        if (missing.length) {
          drift.push({
            kind: "table_privilege",
            severity: "warning",
            role: g,
            detail: `${g} lacks ${missing.join(", ")} on ${table}, which the policy grants`,
            fix: [`GRANT ${missing.join(", ")} ON ${obj} TO ${grantee(g)};`],
          });
        }
      }
    }
    void objectKind;
  };
  tableItems("table", snap.tableAcl, snap.tables);

  // EXECUTE on functions, for roles the policy gives it (extra EXECUTE is not judged: PUBLIC has it by default).
  for (const [name, p] of Object.entries(policy)) {
    if (!p.execute_functions) continue;
    for (const f of snap.functions) {
      if (
        snap.functionAcl.some((a) =>
          a.object === f.signature && a.grantee === name && a.privilege === "EXECUTE"
        )
      ) {
        continue;
      }
      const fq = f.signature.includes(".") ? f.signature : `${id(sec.schema)}.${f.signature}`;
      drift.push({
        kind: "function_execute",
        severity: "info",
        role: name,
        detail: `${name} lacks EXECUTE on ${f.signature}`,
        fix: [`GRANT EXECUTE ON ${f.kind === "p" ? "PROCEDURE" : "FUNCTION"} ${fq} TO ${id(name)};`],
      });
    }
  }

  // Default privileges: for each role that owns tables here, new tables must get the `*` privileges.
  const creators = [...new Set(snap.tables.map((t) => t.owner))];
  const expectedDefaults = (objtype: "r" | "f") => {
    const out = new Map<string, Set<string>>();
    for (const [name, p] of Object.entries(policy)) {
      const privs: string[] = objtype === "r"
        ? (p.tables["*"] ?? [])
        : p.execute_functions
        ? ["EXECUTE"]
        : [];
      if (privs.length) out.set(name, new Set(privs));
    }
    return out;
  };
  for (const creator of creators) {
    for (const objtype of ["r", "f"] as const) {
      const want = expectedDefaults(objtype);
      const have = new Map<string, Set<string>>();
      for (const d of snap.defaultAcl.filter((d) => d.owner === creator && d.objtype === objtype)) {
        let s = have.get(d.grantee);
        if (!s) have.set(d.grantee, s = new Set());
        s.add(d.privilege);
      }
      const what = objtype === "r" ? "TABLES" : "FUNCTIONS";
      const prefix = `ALTER DEFAULT PRIVILEGES FOR ROLE ${id(creator)} IN SCHEMA ${id(sec.schema)}`;
      for (const g of new Set([...want.keys(), ...have.keys()])) {
        if (g !== "PUBLIC" && tolerated(g)) continue;
        const w = want.get(g) ?? new Set<string>();
        const h = have.get(g) ?? new Set<string>();
        const extra = [...h].filter((p) => !w.has(p));
        const missing = [...w].filter((p) => !h.has(p));
        if (extra.length) {
          drift.push({
            kind: "default_privilege",
            severity: "warning",
            role: g,
            detail: `new ${what.toLowerCase()} created by ${creator} will give ${g} ${
              extra.join(", ")
            } beyond the policy`,
            fix: [`${prefix} REVOKE ${extra.join(", ")} ON ${what} FROM ${grantee(g)};`],
          });
        }
        if (missing.length) {
          drift.push({
            kind: "default_privilege",
            severity: "warning",
            role: g,
            detail: `new ${what.toLowerCase()} created by ${creator} will not give ${g} ${
              missing.join(", ")
            }`,
            fix: [`${prefix} GRANT ${missing.join(", ")} ON ${what} TO ${grantee(g)};`],
          });
        }
      }
    }
  }

  const order: DriftKind[] = [
    "missing_role",
    "superuser",
    "bypassrls",
    "createrole",
    "login",
    "unexpected_role",
    "membership",
    "table_privilege",
    "function_execute",
    "default_privilege",
  ];
  // Revokes before grants within a kind, so a plan never briefly widens access.
  const rank = (i: DriftItem) => order.indexOf(i.kind) * 2 + (i.fix[0]?.startsWith("GRANT") ? 1 : 0);
  drift.sort((a, b) => rank(a) - rank(b));
  return {
    target: sec.target,
    schema: sec.schema,
    drift,
    notes,
    statements: drift.flatMap((d) => d.fix),
    checkedAt: snap.now.toISOString(),
  };
}

/**
 * Reads the primary and compares it with the policy.
 * @throws {OpsError} `unreachable`, `step_failed`
 */
export async function readRoleDrift(
  input: z.input<typeof roleDriftArgs>,
  deps: OpDeps,
): Promise<RoleDriftResult> {
  const args = roleDriftArgs.parse(input);
  const sec = targetSecurity(deps, args.target);
  const m = deps.targets.member(args.target, "primary");
  try {
    const sql = await primaryPool(deps, args.target);
    return compareRoles(sec, await readRoleSnapshot(sql, sec.schema));
  } catch (err) {
    throw asTargetError(m, err, "read roles and privileges");
  }
}

/** The read-only operation behind `/bisman roles`. */
export const roleDrift: Operation<RoleDriftArgs, PlanBase & { args: RoleDriftArgs }, RoleDriftResult> = {
  name: "role_drift",
  destructive: false,
  args: roleDriftArgs,
  plan: (args) =>
    Promise.resolve({
      summary: `Compare roles and privileges on ${args.target} with the policy`,
      target: args.target,
      steps: ["Read pg_roles, pg_auth_members and the ACLs of the schema"],
      fingerprint: {},
      args,
    }),
  run: (plan, deps) => readRoleDrift(plan.args, deps),
  describeResult: (r) => `${r.drift.length} drift item(s), ${r.notes.length} note(s)`,
};
