/**
 * The seed's checklists (runbook section 9) evaluated live for one target: each item with its evidence and
 * the command that shows more. Items read what the other features already read (role drift, the TLS and
 * pg_hba checks, Vault ages, backups and restore history, job runs); what the database cannot show (WAF
 * rules without a Kong Admin API, encryption at rest) is an operator's attestation, recorded with who and
 * when. An item whose check could not run says so ("could not check"), never "pass".
 *
 * @module
 */

import { Cron } from "croner";
import type { AppDeps } from "../core/deps.ts";
import { OpsError } from "../core/errors.ts";
import type { AlertButtonKey } from "../core/config.ts";
import type { JobServices } from "./types.ts";
import { readRoleDrift } from "../ops/role_drift.ts";
import { checkTls, type TlsCheck } from "../ops/tls_check.ts";
import { readCredentialAges } from "../ops/credential_ages.ts";
import { readBackupStatus } from "../ops/backup_status.ts";
import { lastProvenRestore } from "../ops/restore_history.ts";
import { readSlowQueries } from "../ops/slow_queries.ts";
import { readPatchLevel } from "../ops/patch_level.ts";
import { readNetworkPolicies } from "../ops/network_policies.ts";
import { readWafRules } from "../ops/waf_rules.ts";
import { readWalStreaming } from "../ops/wal_streaming.ts";
import { readCentralLogging } from "../ops/central_logging.ts";
import { fromEvidence } from "./checklist_evidence.ts";
import { resolveSchedules } from "./scheduler.ts";
import { readRuns } from "./run_store.ts";
import { allJobs } from "./registry.ts";
import {
  type Attestable,
  ATTESTATION_ITEMS,
  type AttestationItem,
  type Checklist,
  type ChecklistItem,
  type ItemGroup,
  type ItemStatus,
} from "../views/checklist_model.ts";
import { own } from "../core/lookup.ts";

export {
  type Attestable,
  ATTESTATION_ITEMS,
  type AttestationItem,
  type Checklist,
  type ChecklistItem,
  type ItemGroup,
  type ItemStatus,
};

/** What an item evaluation receives. */
interface ItemContext {
  deps: AppDeps;
  target: string;
  now: Date;
  services: JobServices;
}

type Evaluated = Pick<ChecklistItem, "status" | "evidence"> & Partial<Pick<ChecklistItem, "attest">>;

interface ItemDefinition {
  group: ItemGroup;
  key: string;
  title: string;
  command?: (target: string) => string;
  evaluate(ctx: ItemContext): Promise<Evaluated>;
}

const DAY = 86_400_000;

function day(d: Date): string {
  return d.toISOString().slice(0, 10);
}

function when(d: Date): string {
  return `${d.toISOString().slice(0, 16).replace("T", " ")} UTC`;
}

/** The start of the current day / week (Monday) / month in the scheduler's time zone. */
export function periodStart(
  deps: Pick<AppDeps, "config">,
  period: "day" | "week" | "month",
  now: Date,
): Date {
  const pattern = { day: "0 0 0 * * *", week: "0 0 0 * * 1", month: "0 0 0 1 * *" }[period];
  const cron = new Cron(pattern, { timezone: deps.config.scheduler.timezone, paused: true });
  return cron.previousRuns(1, new Date(now.getTime() + 1))[0] ?? now;
}

// --- pre-production -------------------------------------------------------------------------------------

function tlsItem(checks: string[]) {
  return async ({ deps, target }: ItemContext): Promise<Evaluated> => {
    const r = await checkTls({ target }, deps);
    const mine = r.checks.filter((c) => checks.includes(c.check));
    // None of this item's checks came back: nothing was looked at, so nothing passes.
    if (!mine.length) {
      return { status: "unknown", evidence: [`could not check: no result for ${checks.join(", ")}`] };
    }
    const bad = mine.filter((c) => c.status !== "ok");
    const lines = (list: TlsCheck[]) =>
      list.flatMap((c) => [c.detail, ...c.evidence.slice(0, 5).map((e) => `  ${e}`)]);
    if (!bad.length) return { status: "pass", evidence: lines(mine).filter((l) => !l.startsWith("  ")) };
    return { status: bad.some((c) => c.status === "critical") ? "fail" : "warning", evidence: lines(bad) };
  };
}

async function attestation(
  { deps, target, now }: ItemContext,
  item: AttestationItem,
  mechanisms: string[],
): Promise<Evaluated> {
  const [a] = await deps.state<
    { mechanism: string | null; attested_by: string; attested_by_name: string | null; attested_at: Date }[]
  >`
    select mechanism, attested_by, attested_by_name, attested_at from bisman_ops.attestations
     where target = ${target} and item = ${item} order by attested_at desc limit 1`;
  const valid = deps.config.checklist.attestation_valid_days;
  const attest = { item, mechanisms };
  if (!a) return { status: "attestation_needed", evidence: ["no operator has attested it yet"], attest };
  const by = a.attested_by_name ?? a.attested_by;
  const what = `attested by ${by} (${a.attested_by}) at ${when(a.attested_at)}${
    a.mechanism ? `: ${a.mechanism}` : ""
  }`;
  if (now.getTime() - a.attested_at.getTime() > valid * DAY) {
    return {
      status: "attestation_needed",
      evidence: [`${what}, more than ${valid} days ago: attest again`],
      attest,
    };
  }
  return { status: "pass", evidence: [what], attest };
}

const partRank: Record<Evaluated["status"], number> = {
  fail: 5,
  unknown: 4,
  warning: 3,
  attestation_needed: 2,
  pass: 1,
  not_configured: 0,
  runbook: 0,
};

/**
 * One item from several sources (pg_hba.conf and Kubernetes; AWS WAF and Kong): the worst status (fail, then
 * could not check, warning, attestation needed), every part's evidence in order.
 */
function combine(parts: Evaluated[], attest?: Attestable): Evaluated {
  // A source that is not configured neither passes nor fails the item; with no source configured at all,
  // the item is not configured.
  const looked = parts.filter((p) => p.status !== "not_configured");
  const status = looked.length
    ? looked.reduce<ItemStatus>((w, p) => partRank[p.status] > partRank[w] ? p.status : w, "pass")
    : "not_configured";
  return { status, evidence: parts.flatMap((p) => p.evidence), ...(attest ? { attest } : {}) };
}

/** One source of an item, its evidence headed by its name; a failure is that source's "could not check". */
async function part(name: string, ctx: ItemContext, evaluate: (ctx: ItemContext) => Promise<Evaluated>) {
  try {
    const r = await evaluate(ctx);
    return { ...r, evidence: [`${name}:`, ...r.evidence] };
  } catch (err) {
    if (!(err instanceof OpsError)) throw err;
    return {
      status: "unknown" as const,
      evidence: [`${name}: could not check: ${ctx.deps.secrets.scrub(err.userMessage)}`],
    };
  }
}

/** Reads Kong's plugins and compares them with the seed's rate-limiting and ip-restriction settings. */
async function kongPlugins(ctx: ItemContext, url: string): Promise<Evaluated> {
  const cfg = ctx.deps.config.checklist;
  const base = url.replace(/\/+$/, "");
  let body: { data?: { name?: string; enabled?: boolean; config?: Record<string, unknown> }[] };
  try {
    const res = await fetch(`${base}/plugins?size=1000`, { signal: AbortSignal.timeout(5000) });
    if (!res.ok) {
      await res.body?.cancel();
      throw new OpsError("unreachable", `Kong Admin API ${base} answered HTTP ${res.status}`);
    }
    body = await res.json();
  } catch (err) {
    if (err instanceof OpsError) throw err;
    throw new OpsError("unreachable", `Kong Admin API ${base} does not answer: ${(err as Error).message}`);
  }
  const plugins = (body.data ?? []).filter((p) => p.enabled !== false);
  const evidence: string[] = [];
  let ok = true;
  const rl = plugins.find((p) => p.name === "rate-limiting");
  const minute = Number(rl?.config?.minute);
  if (!rl) {
    ok = false;
    evidence.push("no enabled rate-limiting plugin");
  } else if (!(minute > 0 && minute <= cfg.kong_rate_limit_per_minute)) {
    ok = false;
    evidence.push(
      `rate-limiting allows ${
        rl.config?.minute ?? "no per-minute limit"
      } a minute, the seed ${cfg.kong_rate_limit_per_minute}`,
    );
  } else evidence.push(`rate-limiting: ${minute} a minute (the seed: ${cfg.kong_rate_limit_per_minute})`);
  const ip = plugins.find((p) => p.name === "ip-restriction");
  const allow = ((ip?.config?.allow ?? ip?.config?.whitelist ?? []) as string[]).map(String);
  const wanted = cfg.kong_ip_allow;
  const missing = wanted.filter((n) => !allow.includes(n));
  const extra = allow.filter((n) => !wanted.includes(n));
  if (!ip) {
    ok = false;
    evidence.push("no enabled ip-restriction plugin");
  } else if (missing.length || extra.length) {
    ok = false;
    evidence.push(
      `ip-restriction allows ${allow.join(", ") || "nothing"}; the seed: ${wanted.join(", ")}` +
        (extra.length ? ` (extra: ${extra.join(", ")})` : "") +
        (missing.length ? ` (missing: ${missing.join(", ")})` : ""),
    );
  } else evidence.push(`ip-restriction allows ${allow.join(", ")}`);
  return { status: ok ? "pass" : "fail", evidence: [`Kong Admin API ${base}:`, ...evidence] };
}

const preProduction: ItemDefinition[] = [
  {
    group: "pre_production",
    key: "roles_least_privilege",
    title: "All DB roles created with least privilege",
    command: (t) => `/bisman roles ${t}`,
    evaluate: async ({ deps, target }) => {
      const r = await readRoleDrift({ target }, deps);
      const serious = r.drift.filter((d) => d.severity !== "info");
      if (!serious.length) {
        return {
          status: "pass",
          evidence: ["no drift from the role policy", ...r.notes.map((n) => `note: ${n.role}: ${n.detail}`)],
        };
      }
      return {
        status: serious.some((d) => d.severity === "critical") ? "fail" : "warning",
        evidence: serious.slice(0, 8).map((d) => `${d.severity}: ${d.role}: ${d.detail}`).concat(
          serious.length > 8 ? [`${serious.length - 8} more`] : [],
        ),
      };
    },
  },
  {
    group: "pre_production",
    key: "credentials_in_vault",
    title: "Credentials in Vault, not in code",
    command: (t) => `/bisman creds ${t}`,
    evaluate: async ({ deps, target }) => {
      const ages = await readCredentialAges(target, deps);
      if (!ages.length) {
        return {
          status: "not_configured",
          evidence: [
            `no role of ${target} is mapped to a Vault key (targets.${target}.roles): nothing to check`,
          ],
        };
      }
      const bad = ages.filter((a) => a.error || a.currentVersion === 0 || a.overdue);
      const line = (a: typeof ages[number]) =>
        a.error || a.currentVersion === 0
          ? `${a.role}: ${a.ref}: ${a.error ?? "no such key"}`
          : `${a.role}: ${a.ref}, ${Math.floor(a.ageDays ?? 0)} days old${
            a.overdue ? ` (over ${a.maxAgeDays})` : ""
          }`;
      return bad.length
        ? { status: "fail", evidence: bad.map(line) }
        : { status: "pass", evidence: ages.map(line) };
    },
  },
  {
    group: "pre_production",
    key: "tls_enforced",
    title: "SSL/TLS enforced for all connections",
    command: (t) => `/bisman tls ${t}`,
    evaluate: tlsItem(["ssl", "ssl_min_protocol_version", "hba_hostssl", "non_tls_connections"]),
  },
  {
    group: "pre_production",
    key: "network_restricted",
    title: "Network policies restrict DB access",
    command: (t) => `/bisman tls ${t}`,
    evaluate: async (ctx) => {
      // Both halves of the seed's section 2: pg_hba.conf on the server, NetworkPolicies in Kubernetes.
      const [hba, k8s] = await Promise.all([
        part("pg_hba.conf", ctx, tlsItem(["hba_parse", "hba_auth", "hba_final_reject"])),
        readNetworkPolicies(ctx.target, ctx.deps),
      ]);
      // Kubernetes first: pg_hba.conf findings can run to many lines, and the item shows the first few.
      if (!k8s.notChecked) return combine([fromEvidence(k8s), hba]);
      // Outside Kubernetes the network rules live in firewalls or security groups: an operator attests them.
      const attested = await attestation(ctx, "network_policies", [
        "NetworkPolicy",
        "security groups",
        "firewall rules",
      ]);
      return combine([
        { status: attested.status, evidence: [`not checked: ${k8s.notChecked}`, ...attested.evidence] },
        hba,
      ], attested.attest);
    },
  },
  {
    group: "pre_production",
    key: "backups_tested",
    title: "Backup schedule configured and tested",
    command: (t) => `/bisman backups ${t}`,
    evaluate: async ({ deps, target, now }) => {
      const evidence: string[] = [];
      let status: ItemStatus = "pass";
      const r = await readBackupStatus(target, deps);
      const sources = r.findings.filter((f) => f.source !== "restore_test");
      const badSources = sources.filter((f) => f.severity === "critical" || f.source === "config");
      if (badSources.length) {
        status = "fail";
        evidence.push(...badSources.map((f) => `${f.check}: ${f.reason}`));
      } else evidence.push(`backup sources: ${[...new Set(sources.map((f) => f.source))].join(", ")}`);
      const t = own(deps.config.targets, target)!;
      const schedule = resolveSchedules(deps, allJobs()).find((s) => s.name === "restore_test");
      if (!t.restore_test) {
        status = "fail";
        evidence.push(`restore tests are not configured (targets.${target}.restore_test)`);
      } else if (!t.restore_test.scheduled || !schedule?.enabled) {
        status = "fail";
        evidence.push(
          "restore tests are configured but not scheduled (restore_test.scheduled, schedules.restore_test)",
        );
      } else evidence.push(`restore tests scheduled: \`${schedule.cron}\` ${schedule.timezone}`);
      const within = deps.config.checklist.restore_test_within_days;
      const proven = await lastProvenRestore(deps.state, target);
      if (!proven) {
        status = "fail";
        evidence.push("no restore test has passed");
      } else {
        const age = (now.getTime() - proven.at.getTime()) / DAY;
        if (age > within) status = "fail";
        evidence.push(
          `last passing restore test ${day(proven.at)} (${Math.floor(age)} days ago, limit ${within})`,
        );
      }
      return { status, evidence };
    },
  },
  {
    group: "pre_production",
    key: "monitoring_enabled",
    title: "Monitoring and alerting enabled",
    command: (t) => `/bisman slow-queries ${t}`,
    evaluate: async ({ deps, target, now }) => {
      const evidence: string[] = [];
      let status: ItemStatus = "pass";
      try {
        await readSlowQueries(target, deps, 1);
        evidence.push("pg_stat_statements is installed and loaded");
      } catch (err) {
        if (!(err instanceof OpsError) || err.code !== "not_configured") throw err;
        status = "fail";
        evidence.push(err.userMessage);
      }
      // Every Alertmanager webhook the bot accepts is in its audit log (alerts/alertmanager.ts).
      const [last] = await deps.state<{ at: Date }[]>`
        select at from bisman_ops.audit_log
         where actor = 'alertmanager' and action = 'alerts.received'
         order by at desc limit 1`;
      const within = deps.config.checklist.alert_webhook_within_days;
      if (!last) {
        status = "fail";
        evidence.push("no Alertmanager webhook has been received (POST /alerts)");
      } else {
        const age = (now.getTime() - last.at.getTime()) / DAY;
        if (age > within) status = "fail";
        evidence.push(`last Alertmanager webhook ${when(last.at)} (limit ${within} days)`);
      }
      return { status, evidence };
    },
  },
  {
    group: "pre_production",
    key: "waf_rules",
    title: "WAF rules deployed",
    evaluate: async (ctx) => {
      const url = ctx.deps.config.checklist.kong_admin_url;
      const aws = ctx.deps.config.targets[ctx.target].aws_waf;
      if (!url && !aws) return attestation(ctx, "waf_rules", ["deployed"]);
      return combine(
        await Promise.all([
          ...(aws ? [readWafRules(ctx.target, ctx.deps).then(fromEvidence)] : []),
          ...(url ? [part("Kong", ctx, (c) => kongPlugins(c, url))] : []),
        ]),
      );
    },
  },
  {
    group: "pre_production",
    key: "wal_streaming",
    title: "WAL streaming, continuous, kept 7 days (pg_receivewal)",
    command: (t) => `/bisman backups ${t}`,
    evaluate: async ({ deps, target }) => fromEvidence(await readWalStreaming(target, deps)),
  },
  {
    group: "pre_production",
    key: "central_logging",
    title: "Centralized logging (server logs reach Elasticsearch)",
    evaluate: async ({ deps, target }) => fromEvidence(await readCentralLogging(target, deps)),
  },
  {
    group: "pre_production",
    key: "encryption_at_rest",
    title: "Encryption at rest (cloud KMS or LUKS)",
    evaluate: (ctx) => attestation(ctx, "encryption_at_rest", ["cloud KMS", "LUKS"]),
  },
];

// --- ongoing --------------------------------------------------------------------------------------------

const ongoing: ItemDefinition[] = [
  {
    group: "ongoing",
    key: "rotated_90_days",
    title: "Rotate credentials every 90 days",
    command: (t) => `/bisman creds ${t}`,
    evaluate: async ({ deps, target }) => {
      const ages = await readCredentialAges(target, deps);
      if (!ages.length) {
        return {
          status: "not_configured",
          evidence: [`no rotatable roles are mapped (targets.${target}.roles)`],
        };
      }
      const unknown = ages.filter((a) => a.ageDays === undefined);
      const overdue = ages.filter((a) => a.overdue);
      const evidence = ages.map((a) =>
        a.ageDays === undefined
          ? `${a.role}: age unknown: ${a.error ?? "no such key"}`
          : `${a.role}: rotated ${Math.floor(a.ageDays)}${
            a.atLeast ? "+" : ""
          } days ago (limit ${a.maxAgeDays})`
      );
      return { status: overdue.length ? "fail" : unknown.length ? "unknown" : "pass", evidence };
    },
  },
  {
    group: "ongoing",
    key: "restore_tested_month",
    title: "Test backup restore monthly",
    command: (t) => `/bisman backups ${t}`,
    evaluate: async ({ deps, target, now }) => {
      const since = periodStart(deps, "month", now);
      const proven = await lastProvenRestore(deps.state, target);
      if (proven && proven.at >= since) {
        return { status: "pass", evidence: [`passed ${when(proven.at)} (${proven.backupFile})`] };
      }
      return {
        status: "fail",
        evidence: [
          `no passing restore test since ${day(since)}${
            proven ? `; the last passed ${when(proven.at)}` : ""
          }`,
        ],
      };
    },
  },
  {
    group: "ongoing",
    key: "slow_queries_reviewed_week",
    title: "Review slow query logs weekly",
    command: () => "/bisman jobs",
    evaluate: async ({ deps, now }) => {
      const since = periodStart(deps, "week", now);
      const runs = await readRuns(deps.state, "slow_query_review", { outcomes: ["ok"], since, limit: 10 });
      const acked = runs.find((r) => r.ackedAt);
      if (acked) {
        return {
          status: "pass",
          evidence: [
            `run ${acked.id} of ${when(acked.slot)} acknowledged by ${acked.ackedBy} at ${
              when(acked.ackedAt!)
            }`,
          ],
        };
      }
      if (runs.length) {
        return {
          status: "fail",
          evidence: [
            `the review ran (run ${runs[0].id}, ${
              when(runs[0].slot)
            }) but nobody acknowledged it: \`/bisman jobs ack ${runs[0].id}\``,
          ],
        };
      }
      return {
        status: "fail",
        evidence: [`the weekly review has not run since ${day(since)}: \`/bisman run slow_query_review\``],
      };
    },
  },
  {
    group: "ongoing",
    key: "lag_checked_today",
    title: "Check replication lag daily",
    command: (t) => `/bisman lag ${t}`,
    evaluate: async ({ deps, target, now }) => {
      if (!own(deps.config.targets, target)!.replicas.length) {
        return {
          status: "not_configured",
          evidence: [`no replicas configured (targets.${target}.replicas)`],
        };
      }
      const since = periodStart(deps, "day", now);
      const runs = await readRuns(deps.state, "lag_check", { outcomes: ["ok"], since, limit: 1000 });
      if (!runs.length) {
        return { status: "fail", evidence: [`the lag check has not run successfully since ${when(since)}`] };
      }
      const worst = runs.find((r) => r.level === "critical") ?? runs.find((r) => r.level === "warning");
      return {
        status: "pass",
        evidence: [
          `${runs.length} successful lag check(s) today, the last at ${when(runs[0].slot)}: ${
            runs[0].summary ?? ""
          }`,
          ...(worst ? [`lag was ${worst.level} at ${when(worst.slot)}: alert threads followed it`] : []),
        ],
      };
    },
  },
  {
    group: "ongoing",
    key: "audit_logs_reviewed",
    title: "Review audit logs for anomalies",
    command: () => "/bisman jobs",
    evaluate: async ({ deps, now }) => {
      const runs = await readRuns(deps.state, "audit_anomaly", {
        outcomes: ["ok"],
        since: new Date(now.getTime() - 7 * DAY),
        limit: 500,
      });
      if (!runs.length) {
        return { status: "fail", evidence: ["the audit-anomaly detection has not run in the last 7 days"] };
      }
      const open = runs.filter((r) => Number(r.details.findings ?? 0) > 0 && !r.ackedAt);
      if (open.length) {
        return {
          status: "fail",
          evidence: open.slice(0, 5).map((r) =>
            `run ${r.id} (${
              when(r.slot)
            }): ${r.details.findings} finding(s) not acknowledged: \`/bisman jobs ack ${r.id}\``
          ),
        };
      }
      const reviewed = runs.filter((r) => r.ackedAt).length;
      return {
        status: "pass",
        evidence: [
          `detection ran ${runs.length} time(s) in 7 days, the last at ${
            when(runs[0].slot)
          }; ${reviewed} run(s) with findings acknowledged`,
        ],
      };
    },
  },
  {
    group: "ongoing",
    key: "security_patches",
    title: "Update security patches promptly",
    command: (t) => `/bisman status ${t}`,
    evaluate: async ({ deps, target }) => fromEvidence(await readPatchLevel(target, deps)),
  },
];

// --- incident response: the runbook entries and the buttons that perform them ----------------------------

const incidentResponse: { key: string; title: string; buttons: AlertButtonKey[]; commands: string[] }[] = [
  {
    key: "unexpected_db_user",
    title: "Unexpected DB user \u2192 Rotate all credentials",
    buttons: ["show_audit", "rotate_all"],
    commands: ["/bisman detect {t}", "/bisman rotate all {t}", "/bisman lock-role <role> {t}"],
  },
  {
    key: "suspicious_queries",
    title: "Suspicious queries \u2192 Check audit logs, block IP",
    buttons: ["show_audit", "top_slow_queries"],
    commands: ["/bisman audit {t}", "/bisman block <address> {t}", "/bisman terminate <address> {t}"],
  },
  {
    key: "replication_failure",
    title: "Replication failure \u2192 Promote replica, investigate",
    buttons: ["show_lag", "promote_replica"],
    commands: ["/bisman lag {t}", "/bisman promote <replica> {t}"],
  },
  {
    key: "high_connections",
    title: "High connection count \u2192 Check for connection leaks",
    buttons: ["show_connections", "terminate_idle"],
    commands: ["/bisman connections {t}", "/bisman terminate-idle {t}"],
  },
];

/** Runs one item with a timeout; a failure is "could not check: why", never a pass. */
async function evaluateItem(def: ItemDefinition, ctx: ItemContext): Promise<ChecklistItem> {
  const base = { group: def.group, key: def.key, title: def.title, command: def.command?.(ctx.target) };
  const ms = ctx.deps.config.digest.check_timeout_seconds * 1000;
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    const r = await Promise.race([
      def.evaluate(ctx),
      new Promise<never>((_, reject) =>
        timer = setTimeout(() => reject(new OpsError("unreachable", `timed out after ${ms / 1000} s`)), ms)
      ),
    ]);
    return { ...base, ...r };
  } catch (err) {
    const why = err instanceof OpsError
      ? ctx.deps.secrets.scrub(err.userMessage)
      : "internal error: see the bot's log";
    if (!(err instanceof OpsError)) ctx.deps.log.warn("checklist item failed", { item: def.key, error: err });
    return { ...base, status: "unknown", evidence: [`could not check: ${why}`] };
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Evaluates every item for `target`, concurrently.
 * @throws {NotConfigured} for an unknown target
 */
export async function evaluateChecklist(
  deps: AppDeps,
  target: string,
  services: JobServices = {},
): Promise<Checklist> {
  deps.targets.members(target);
  const now = deps.now();
  const ctx: ItemContext = { deps, target, now, services };
  const evaluated = await Promise.all([...preProduction, ...ongoing].map((d) => evaluateItem(d, ctx)));
  const runbook: ChecklistItem[] = incidentResponse.map((r) => ({
    group: "incident_response",
    key: r.key,
    title: r.title,
    status: "runbook",
    evidence: r.commands.map((c) => c.replaceAll("{t}", target)),
    buttons: r.buttons,
  }));
  return { target, checkedAt: now, items: [...evaluated, ...runbook] };
}

/** Records an operator's attestation (the checklist's buttons). */
export async function recordAttestation(
  deps: Pick<AppDeps, "state">,
  a: { target: string; item: AttestationItem; mechanism?: string; by: string; byName?: string },
): Promise<void> {
  await deps.state`
    insert into bisman_ops.attestations (target, item, mechanism, attested_by, attested_by_name)
    values (${a.target}, ${a.item}, ${a.mechanism ?? null}, ${a.by}, ${a.byName ?? null})`;
}
