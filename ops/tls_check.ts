/**
 * Transport and audit settings against the seed (runbook sections 2 and 4): `ssl = on`; every pg_hba.conf
 * rule for TCP hosts is `hostssl` with `scram-sha-256` (or `reject`); a final reject for every other
 * address exists; no client is connected without TLS (pg_stat_ssl); `password_encryption` is
 * scram-sha-256; pgaudit is preloaded and created, with the seed's settings per role and database.
 *
 * Read-only. The pg_hba.conf rules come from `pg_hba_file_rules` (the file on disk: what the next reload
 * will load), which sql/target/bot_role.sql lets the bot's role read.
 *
 * @module
 */

import { z } from "zod";
import type { OpDeps, Operation, PlanBase } from "./types.ts";
import { asTargetError, primaryPool, targetName, targetSecurity } from "./_security.ts";

/** Arguments: the target. */
export const tlsCheckArgs = z.strictObject({ target: targetName });
/** Validated arguments. */
export type TlsCheckArgs = z.infer<typeof tlsCheckArgs>;

/** One check's outcome. */
export interface TlsCheck {
  /** Stable name: ssl, hba_hostssl, hba_auth, hba_final_reject, non_tls_connections, password_encryption, ... */
  check: string;
  status: "ok" | "warning" | "critical";
  /** What was found, with the figures. */
  detail: string;
  /** Offending pg_hba.conf lines or sessions, one line each. */
  evidence: string[];
}

/** Every check; `ok` when all pass. */
export interface TlsCheckResult {
  target: string;
  checks: TlsCheck[];
  ok: boolean;
}

interface HbaRule {
  line_number: number;
  type: string;
  database: string[] | null;
  user_name: string[] | null;
  address: string | null;
  netmask: string | null;
  auth_method: string | null;
  error: string | null;
}

function describeRule(r: HbaRule): string {
  const addr = r.address ? `${r.address}${r.netmask ? `/${r.netmask}` : ""}` : "";
  return `line ${r.line_number}: ${r.type} ${(r.database ?? []).join(",")} ${
    (r.user_name ?? []).join(",")
  } ${addr} ${r.auth_method ?? ""}`.replace(/\s+/g, " ").trim();
}

/** True when the rule's address covers every IPv4 (or, with v6, IPv6) address. */
function coversAll(r: HbaRule, family: 4 | 6): boolean {
  if (r.address === "all") return true;
  if (family === 4) return r.address === "0.0.0.0" && r.netmask === "0.0.0.0";
  return r.address === "::" && r.netmask === "::";
}

/**
 * Runs the checks on the primary.
 * @throws {OpsError} `unreachable`, `step_failed` (e.g. pg_hba_file_rules not readable: apply bot_role.sql)
 */
export async function checkTls(input: z.input<typeof tlsCheckArgs>, deps: OpDeps): Promise<TlsCheckResult> {
  const args = tlsCheckArgs.parse(input);
  const sec = targetSecurity(deps, args.target);
  const m = deps.targets.member(args.target, "primary");
  const checks: TlsCheck[] = [];
  try {
    const sql = await primaryPool(deps, args.target);
    const [s] = await sql<
      {
        ssl: string;
        pe: string;
        libs: string;
        minproto: string;
        pgaudit_ext: boolean;
        log_catalog: string | null;
        log_parameter: string | null;
      }[]
    >`
      select current_setting('ssl') as ssl, current_setting('password_encryption') as pe,
             current_setting('shared_preload_libraries') as libs,
             current_setting('ssl_min_protocol_version') as minproto,
             exists (select 1 from pg_catalog.pg_extension where extname = 'pgaudit') as pgaudit_ext,
             current_setting('pgaudit.log_catalog', true) as log_catalog,
             current_setting('pgaudit.log_parameter', true) as log_parameter`;

    checks.push({
      check: "ssl",
      status: s.ssl === "on" ? "ok" : "critical",
      detail: s.ssl === "on"
        ? `ssl = on (minimum protocol ${s.minproto})`
        : "ssl = off: connections cannot use TLS",
      evidence: [],
    });
    if (s.ssl === "on" && !/^TLSv1\.[23]$/.test(s.minproto)) {
      checks.push({
        check: "ssl_min_protocol_version",
        status: "warning",
        detail: `ssl_min_protocol_version = ${s.minproto}: TLSv1.2 or newer is expected`,
        evidence: [],
      });
    }

    const rules = await sql<HbaRule[]>`
      select line_number, type, database, user_name, address, netmask, auth_method, error
        from pg_catalog.pg_hba_file_rules order by line_number`;
    const broken = rules.filter((r) => r.error);
    if (broken.length) {
      checks.push({
        check: "hba_parse",
        status: "critical",
        detail: `${broken.length} pg_hba.conf line(s) do not parse: the next reload keeps the old rules`,
        evidence: broken.map((r) => `line ${r.line_number}: ${r.error}`),
      });
    }
    const tcp = rules.filter((r) => !r.error && r.type !== "local");
    const nonSsl = tcp.filter((r) => r.type !== "hostssl" && r.auth_method !== "reject");
    checks.push({
      check: "hba_hostssl",
      status: nonSsl.length ? "critical" : "ok",
      detail: nonSsl.length
        ? `${nonSsl.length} rule(s) accept TCP connections without TLS (host or hostnossl, not hostssl)`
        : "every TCP rule that accepts connections is hostssl",
      evidence: nonSsl.map(describeRule),
    });
    const weakAuth = tcp.filter((r) => r.auth_method !== "scram-sha-256" && r.auth_method !== "reject");
    checks.push({
      check: "hba_auth",
      status: weakAuth.length ? "critical" : "ok",
      detail: weakAuth.length
        ? `${weakAuth.length} TCP rule(s) use an authentication method other than scram-sha-256`
        : "every TCP rule that accepts connections uses scram-sha-256",
      evidence: weakAuth.map(describeRule),
    });
    // The rules after the last one that accepts anything must reject every other address.
    const lastAccepting = tcp.findLastIndex((r) => r.auth_method !== "reject");
    const trailing = tcp.slice(lastAccepting + 1);
    const allDbUsers = (r: HbaRule) =>
      (r.database ?? []).includes("all") && (r.user_name ?? []).includes("all");
    const v4Reject = trailing.some((r) => allDbUsers(r) && coversAll(r, 4));
    const v6Reject = trailing.some((r) => allDbUsers(r) && coversAll(r, 6));
    checks.push({
      check: "hba_final_reject",
      status: v4Reject ? (v6Reject ? "ok" : "warning") : "critical",
      detail: v4Reject
        ? v6Reject
          ? `the last TCP rules reject every other address (${trailing.map(describeRule).join("; ")})`
          : "the last TCP rules reject every other IPv4 address, but not ::/0 (IPv6)"
        : "no final `hostssl all all 0.0.0.0/0 reject` (or host \u2026 reject) after the accepting rules: " +
          "addresses no rule names fall through",
      evidence: trailing.length
        ? trailing.map((r) => `final rule: ${describeRule(r)}`)
        : tcp.length
        ? [`last TCP rule: ${describeRule(tcp.at(-1)!)}`]
        : [],
    });

    const plain = await sql<
      {
        pid: number;
        usename: string | null;
        addr: string | null;
        application_name: string;
        datname: string | null;
      }[]
    >`
      select a.pid, a.usename, host(a.client_addr) as addr, a.application_name, a.datname
        from pg_catalog.pg_stat_activity a join pg_catalog.pg_stat_ssl s on s.pid = a.pid
       where a.client_addr is not null and not s.ssl and a.backend_type in ('client backend', 'walsender')
       order by a.usename, a.pid`;
    checks.push({
      check: "non_tls_connections",
      status: plain.length ? "critical" : "ok",
      detail: plain.length
        ? `${plain.length} TCP session(s) are connected without TLS`
        : "every TCP session uses TLS",
      evidence: plain.slice(0, 20).map((p) =>
        `pid ${p.pid} ${p.usename ?? "?"} from ${p.addr} to ${p.datname ?? "?"} (${
          p.application_name || "no application_name"
        })`
      ),
    });

    checks.push({
      check: "password_encryption",
      status: s.pe === "scram-sha-256" ? "ok" : "critical",
      detail: `password_encryption = ${s.pe}${
        s.pe === "scram-sha-256" ? "" : ": new passwords are stored as md5"
      }`,
      evidence: [],
    });

    const loaded = s.libs.split(",").map((x) => x.trim()).includes("pgaudit");
    checks.push({
      check: "pgaudit_loaded",
      status: loaded && s.pgaudit_ext ? "ok" : loaded ? "warning" : "critical",
      detail: !loaded
        ? "pgaudit is not in shared_preload_libraries (needs a restart to add)"
        : s.pgaudit_ext
        ? "pgaudit is preloaded and created in this database"
        : "pgaudit is preloaded but CREATE EXTENSION pgaudit has not run here (apply sql/target/audit.sql)",
      evidence: [],
    });
    if (loaded) {
      const settings = await sql<{ role: string | null; db: string | null; config: string[] }[]>`
        select case when s.setrole = 0 then null else pg_catalog.pg_get_userbyid(s.setrole) end as role,
               d.datname as db, s.setconfig as config
          from pg_catalog.pg_db_role_setting s left join pg_catalog.pg_database d on d.oid = s.setdatabase`;
      const roleValue = (role: string): string | undefined => {
        for (const r of settings.filter((x) => x.role === role && x.db === null)) {
          const hit = r.config.find((c) => c.startsWith("pgaudit.log="));
          if (hit) return hit.slice("pgaudit.log=".length);
        }
        return undefined;
      };
      const wrong: string[] = [];
      for (const [role, p] of Object.entries(sec.roles)) {
        if (!p.pgaudit_log) continue;
        const have = roleValue(role);
        const norm = (v?: string) => (v ?? "").replace(/\s+/g, "").toLowerCase();
        if (norm(have) !== norm(p.pgaudit_log)) {
          wrong.push(`${role}: pgaudit.log = ${have ?? "(not set)"}, expected ${p.pgaudit_log}`);
        }
      }
      checks.push({
        check: "pgaudit_roles",
        status: wrong.length ? "warning" : "ok",
        detail: wrong.length
          ? `${wrong.length} role(s) lack the seed's pgaudit.log (ALTER ROLE \u2026 SET pgaudit.log)`
          : "every policy role has its pgaudit.log setting",
        evidence: wrong,
      });
      const dbWrong: string[] = [];
      if (s.log_catalog !== "off") {
        dbWrong.push(`pgaudit.log_catalog = ${s.log_catalog ?? "(unset)"}, expected off`);
      }
      if (s.log_parameter !== "on") {
        dbWrong.push(`pgaudit.log_parameter = ${s.log_parameter ?? "(unset)"}, expected on`);
      }
      checks.push({
        check: "pgaudit_settings",
        status: dbWrong.length ? "warning" : "ok",
        detail: dbWrong.length
          ? "pgaudit settings differ from the seed"
          : "pgaudit.log_catalog off, log_parameter on",
        evidence: dbWrong,
      });
    }
  } catch (err) {
    throw asTargetError(m, err, "read the TLS and pg_hba.conf settings");
  }
  return { target: args.target, checks, ok: checks.every((c) => c.status === "ok") };
}

/** The read-only operation behind `/bisman tls`. */
export const tlsCheck: Operation<TlsCheckArgs, PlanBase & { args: TlsCheckArgs }, TlsCheckResult> = {
  name: "tls_check",
  destructive: false,
  args: tlsCheckArgs,
  plan: (args) =>
    Promise.resolve({
      summary: `Check TLS, pg_hba.conf and pgaudit on ${args.target}`,
      target: args.target,
      steps: ["Read settings, pg_hba_file_rules, pg_stat_ssl and pg_db_role_setting"],
      fingerprint: {},
      args,
    }),
  run: (plan, deps) => checkTls(plan.args, deps),
  describeResult: (
    r,
  ) => (r.ok ? "all checks pass" : `${r.checks.filter((c) => c.status !== "ok").length} problem(s)`),
};
