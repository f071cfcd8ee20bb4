/**
 * Every message the bot can send, rendered with realistic and with maximal data, for
 * tests/views/every_message_test.ts. Each case names the exports it covers (`views/alerts.ts#renderAlertParent`),
 * so the test can fail on a renderer no case renders.
 *
 * "Maximal" means the largest inputs the bot can meet: 50 alerts in a storm, 100 requests, 200 idle sessions,
 * 200-character names and hostile text (mentions, `<`, `&`, backticks) at the points where the renderers cut.
 */

import type { ModalView } from "@slack/types";
import type { Block, Reply } from "../../views/reply.ts";
import type { Config } from "../../core/config.ts";
import type { RequestView } from "../../gate/gate.ts";
import { ALL_STATES, type RequestRow } from "../../gate/store.ts";
import {
  type AlertView,
  renderAlertEvent,
  renderAlertParent,
  renderButtonAnswer,
  renderContinuedBelow,
  renderStormDetail,
  renderStormParent,
  type StormView,
} from "../../views/alerts.ts";
import {
  renderApproval,
  renderDenyModal,
  renderReminder,
  renderRequestCreated,
  renderTypedConfirmationModal,
} from "../../views/approval.ts";
import { renderAuditSearch } from "../../views/audit.ts";
import { renderAnchor, renderAuditLogSearch } from "../../views/audit_log.ts";
import { renderBackups } from "../../views/backups.ts";
import { renderChecklist } from "../../views/checklist.ts";
import { renderConnections, renderSlowQueries } from "../../views/connections.ts";
import { renderDigest } from "../../views/digest.ts";
import { renderError } from "../../views/error.ts";
import { renderHelp, renderHelpOne } from "../../views/help.ts";
import {
  renderAuditAnomalies,
  renderJobFailed,
  renderJobInterrupted,
  renderJobRecovered,
  renderJobs,
  renderRunResult,
  renderSlowQueryReview,
  renderTargetChanges,
} from "../../views/jobs.ts";
import { renderLag } from "../../views/lag.ts";
import { renderRequestList } from "../../views/requests.ts";
import { renderRestoreProgress, renderRestoreResult } from "../../views/restore_test.ts";
import { renderCredentialAges } from "../../views/rotate.ts";
import {
  renderDetect,
  renderRoleDrift,
  renderSecurityEvents,
  renderTls,
  renderUsage,
} from "../../views/security.ts";
import { renderStatus } from "../../views/status.ts";
import { slackMessage } from "../../views/blocks.ts";
import { alertViewOf, type StateRow, threadExtras } from "../../alerts/poster.ts";
import { buttonLabel, BUTTONS, buttonsFor } from "../../alerts/buttons.ts";
import { alertButtonKeys } from "../../core/config.ts";
import { OpsError } from "../../core/errors.ts";
import { allSubcommands } from "../../commands/registry.ts";
import { sharedAnswer, withShareButtonBlocks } from "../../slack/share.ts";
import { workMessageContent } from "../../slack/answers.ts";
import type { BackupStatusReport } from "../../ops/backup_status.ts";
import type { ConnectionsReport, IdleSession } from "../../ops/connections.ts";
import type { SlowQueriesReport } from "../../ops/slow_queries.ts";
import type { LagReport, ReplicaLag } from "../../ops/replication_lag.ts";
import type { RestoreTestResult } from "../../ops/restore_test.ts";
import type { CredentialAge } from "../../ops/credential_ages.ts";
import type { AuditSearchResult } from "../../ops/audit_search.ts";
import type { AuditRow } from "../../core/audit.ts";
import type { Digest, DigestSection } from "../../views/digest_model.ts";
import type { Checklist } from "../../views/checklist_model.ts";
import type { EffectiveSchedule, RunRecord } from "../../core/job_service.ts";
import type { MemberStatus } from "../../ops/server_status.ts";
import type { SecurityEventsResult } from "../../ops/security_events.ts";
import type { DetectBypassResult } from "../../ops/detect_bypass.ts";
import type { ServiceUsageResult } from "../../ops/service_usage.ts";
import type { RoleDriftResult } from "../../ops/role_drift.ts";
import type { TlsCheckResult } from "../../ops/tls_check.ts";
import type { MaskedStatement } from "../../core/statement_mask.ts";

/** Statement text as the renderers receive it. Hostile on purpose: a renderer must survive any masked text. */
const masked = (s: string) => s as MaskedStatement;

/** A message body as chat.postMessage / chat.update / a response_url take it. */
export interface MessageBody {
  text: string;
  blocks?: Block[];
}

/** What one case renders: messages and modal views. */
export interface Rendered {
  messages: { name: string; body: MessageBody }[];
  views: { name: string; view: ModalView | Record<string, unknown> }[];
}

export interface MessageCase {
  name: string;
  /** The exports it renders, as `views/<file>.ts#<name>` (or another module's path). */
  covers: string[];
  render(config: Config): Rendered;
}

// --- hostile and long text -------------------------------------------------------------------------

/** A string of exactly `n` characters whose every position is risky for a cut: mentions, entities, links. */
export function hostile(n: number, seed = "x"): string {
  const unit = `${seed} <@U0ALICE> & <!channel> *b* \`c\` <https://e.example/p?a=1&b=2|link> ~s~ > `;
  let s = "";
  while (s.length < n) s += unit;
  return s.slice(0, n);
}

const NAME_200 = `role_${"n".repeat(195)}`;
const AT = new Date("2026-03-04T05:06:07Z");
const ISO = AT.toISOString();
const LONG_ERROR = `connect ECONNREFUSED 10.0.0.12:5432 <after 5 attempts> & then: ${hostile(4000, "err")}`;

/**
 * Replies (what subcommands and jobs answer) reach Slack through slackMessage() on every path: the response_url
 * (slack/bolt_app.ts toSlackResponse), the ops-channel poster (jobs/scheduler.ts), the long-work poster, shares.
 */
function msgs(...list: [string, Reply][]): Rendered {
  return { messages: list.map(([name, r]) => ({ name, body: slackMessage(r) })), views: [] };
}

/** Messages posted as rendered (alert threads, approval messages): no slackMessage() on their way. */
function direct(...list: [string, { text: string; blocks?: Block[] }][]): Rendered {
  return {
    messages: list.map(([name, r]) => ({
      name,
      body: { text: r.text, ...(r.blocks ? { blocks: r.blocks } : {}) },
    })),
    views: [],
  };
}

// --- alerts ------------------------------------------------------------------------------------------

function alert(i: number, patch: Partial<AlertView> = {}): AlertView {
  return {
    fingerprint: (0xa000 + i).toString(16).padStart(16, "0"),
    alertname: "HighReplicationLag",
    status: "firing",
    labels: { alertname: "HighReplicationLag", instance: `db${i}:5432`, severity: "warning", target: "main" },
    annotations: { summary: `Replica db${i} is 120 s behind`, runbook_url: "https://runbook.example/lag" },
    startsAt: "2026-03-04T05:00:00.123456789Z",
    endsAt: null,
    generatorURL: "http://prometheus.example:9090/graph?g0.expr=lag",
    source: "alertmanager",
    ...patch,
  };
}

function maximalAlert(i: number): AlertView {
  return alert(i, {
    alertname: `Alert${"N".repeat(195)}`,
    labels: Object.fromEntries([
      ["alertname", "HighReplicationLag"],
      ["instance", `<!channel> db${i}:5432`],
      ...Array.from({ length: 40 }, (_, j) => [`label_${j}_${"k".repeat(60)}`, hostile(400, `v${j}`)]),
    ]),
    annotations: {
      summary: hostile(10_000, "sum"),
      description: hostile(10_000, "desc"),
      runbook_url: `https://runbook.example/${"p".repeat(200)}`,
      ...Object.fromEntries(Array.from({ length: 20 }, (_, j) => [`note_${j}`, hostile(900, `a${j}`)])),
    },
  });
}

const stateRow = (patch: Partial<StateRow> = {}): StateRow => ({
  fingerprint: "000000000000a001",
  channel: "C0OPS",
  alertname: "HighReplicationLag",
  group_key: '{}:{alertname="HighReplicationLag"}',
  status: "firing",
  thread_ts: null,
  message_ts: null,
  storm_id: null,
  owner: null,
  owned_at: null,
  silence_id: null,
  silence_until: null,
  silenced_by: null,
  ...patch,
});

/** The parent of one alert exactly as alerts/poster.ts builds it (buttons from the config, thread extras). */
function posterParent(config: Config, a: AlertView, s: StateRow) {
  const buttons = buttonsFor(config, a.alertname).map((key) => ({
    key,
    label: buttonLabel(config, key),
    gated: BUTTONS[key].kind === "gated",
  }));
  return renderAlertParent(a, buttons, {
    alertmanagerUrl: config.alerts.alertmanager_url,
    ...threadExtras(config, a, s),
  });
}

function stormView(n: number, firing: number, each: (i: number) => AlertView): StormView {
  return {
    id: 7,
    alertname: "HighReplicationLag",
    groupKey: `{}/{severity="warning"}:{alertname="HighReplicationLag"}${"g".repeat(300)}`,
    firing,
    resolved: n - firing,
    // The poster's sample: the first 15 of the storm.
    sample: Array.from({ length: Math.min(15, n) }, (_, i) => each(i)),
  };
}

const everyButton = alertButtonKeys.map((key) => ({
  key,
  label: key === "terminate_idle" ? "Terminate idle-in-transaction sessions > 5 min" : BUTTONS[key].label,
  gated: BUTTONS[key].kind === "gated",
}));

// --- requests ----------------------------------------------------------------------------------------

export function requestView(
  patch: Partial<RequestRow> = {},
  approvals: RequestView["approvals"] = [],
): RequestView {
  return {
    request: {
      id: 12,
      action: "rotate_credentials",
      target: "main",
      args: { role: "bisman_app", target: "main" },
      plan: {
        summary: "Rotate bisman_app on main: new SCRAM verifier, Vault secret/bisman/db#app_password v8 → v9",
        target: "main",
        steps: [
          "Generate a 32-byte password and its SCRAM-SHA-256 verifier in the bot",
          "BEGIN; ALTER ROLE bisman_app PASSWORD '<verifier>'",
          "Write secret/bisman/db with cas=8",
          "COMMIT",
          "Log in as bisman_app with the new password",
        ],
        fingerprint: { vaultVersion: 8 },
        warnings: ["3 sessions of bisman_app stay connected with the old password until they reconnect"],
        verify: ["bisman_app logs in with the new password"],
        undo: ["A failed Vault write rolls the ALTER ROLE back"],
      },
      plan_hash: "0123456789ab",
      notes: ["last proven restore: 3 days ago (RTO 4.2 min)"],
      state: "pending",
      requester_id: "U0ALICE",
      requester_name: "alice",
      via: "slack",
      asked_in: "C0OPS",
      channel: "C0OPS",
      message_ts: "1700000000.000100",
      thread_ts: null,
      approvals_needed: 1,
      policy: {
        approvals: 1,
        approvers: { users: ["U0BOB", "U0CAROL"], groups: ["S0DBAS"] },
        expiry_minutes: 60,
        typed_confirmation: false,
        allowed_during_freeze: false,
        channels: undefined,
        require_restore_test_within_days: undefined,
      },
      created_at: AT,
      expires_at: new Date(AT.getTime() + 3600_000),
      started_at: null,
      finished_at: null,
      decided_by: null,
      decided_by_name: null,
      result: null,
      summary: null,
      error: null,
      deny_reason: null,
      run_by: null,
      heartbeat_at: null,
      reconcile: null,
      pre_backup: null,
      ...patch,
    },
    approvals,
    cancellable: false,
  };
}

/** A request with everything at its longest: ids past 24-character modal titles, 200 steps, long names. */
function maximalRequest(patch: Partial<RequestRow> = {}): RequestView {
  const base = requestView();
  return requestView({
    id: 2_147_483_647,
    action: `roles_apply_${"a".repeat(60)}`,
    target: `target_${"t".repeat(56)}`,
    plan: {
      ...base.request.plan,
      summary: hostile(5000, "summary"),
      steps: Array.from(
        { length: 200 },
        (_, i) => `GRANT SELECT ON ${NAME_200} TO ${NAME_200}_${i} ${hostile(300)}`,
      ),
      warnings: Array.from({ length: 30 }, (_, i) => hostile(800, `warn${i}`)),
      verify: Array.from({ length: 50 }, (_, i) => hostile(200, `verify${i}`)),
      undo: Array.from({ length: 50 }, (_, i) => hostile(200, `undo${i}`)),
    },
    notes: Array.from({ length: 20 }, (_, i) => hostile(300, `note${i}`)),
    requester_id: "U0ALICE",
    policy: {
      ...base.request.policy,
      approvals: 3,
      approvers: {
        users: Array.from({ length: 60 }, (_, i) => `U0APPROVER${i}`),
        groups: Array.from({ length: 20 }, (_, i) => `S0GROUP${i}`),
      },
      typed_confirmation: true,
      allowed_during_freeze: true,
    },
    approvals_needed: 3,
    pre_backup: true,
    summary: hostile(3000, "done"),
    error: LONG_ERROR,
    deny_reason: hostile(500, "deny"),
    progress: hostile(2000, "progress"),
    reconcile: { status: "needs_human", note: hostile(2000, "reconcile") },
    ...patch,
  }, Array.from({ length: 2 }, (_, i) => ({ approver: `U0APPROVER${i}`, approver_name: null, at: AT })));
}

const REQUEST_STATES = ALL_STATES;

// --- query results ------------------------------------------------------------------------------------

function idle(i: number, long: boolean): IdleSession {
  return {
    pid: 40_000 + i,
    backendStart: "2026-03-04T04:00:00.123456+00:00",
    user: long ? NAME_200 : "bisman_app",
    database: long ? `db_${"d".repeat(60)}` : "bisman",
    application: long ? hostile(200, "app") : "erp-web",
    clientAddr: long ? "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff" : "10.0.0.21",
    state: "idle in transaction",
    xactStart: ISO,
    idleSeconds: 600 + i,
    query: masked(long ? hostile(200, "q") : "update invoices set status = $1 where id = $2"),
  };
}

function connections(n: number, long: boolean): ConnectionsReport {
  const sessions = Array.from({ length: n }, (_, i) => idle(i, long));
  const bd = (k: string) =>
    Array.from(
      { length: long ? 50 : 3 },
      (_, i) => ({ value: long ? hostile(200, `${k}${i}`) : `${k}${i}`, count: 10 - (i % 10) }),
    );
  return {
    target: long ? `target_${"t".repeat(56)}` : "main",
    checkedAt: ISO,
    total: 180,
    maxConnections: 200,
    reservedForSuperuser: 3,
    percent: 90,
    byUser: bd("user"),
    byApplication: bd("app"),
    byClient: bd("client"),
    byState: bd("state"),
    idleInTransaction: sessions,
    leakMinutes: 5,
    leaks: sessions.slice(0, Math.ceil(n / 2)),
    severity: "critical",
    reasons: long
      ? Array.from({ length: 20 }, (_, i) => hostile(300, `reason${i}`))
      : ["90% of max_connections in use"],
  };
}

function slowQueries(n: number, long: boolean): SlowQueriesReport {
  return {
    target: long ? `target_${"t".repeat(56)}` : "main",
    checkedAt: ISO,
    thresholdMs: 500,
    queries: Array.from({ length: n }, (_, i) => ({
      queryId: String(1000 + i),
      user: long ? NAME_200 : "bisman_app",
      database: long ? `db_${"d".repeat(60)}` : "bisman",
      calls: 1000 + i,
      meanMs: 1500 - i,
      totalMs: 1_500_000,
      rows: 10,
      query: masked(long ? hostile(1000, "select ```") : "select * from invoices where client_id = $1"),
      severity: "warning" as const,
    })),
    overThreshold: n,
    statsReset: ISO,
    severity: "warning",
  };
}

function replica(i: number, long: boolean): ReplicaLag {
  return {
    target: "main",
    replica: long ? `replica_${"r".repeat(100)}_${i}` : `replica${i}`,
    address: long ? `${"h".repeat(200)}:5432` : `10.0.0.${30 + i}:5432`,
    severity: "critical",
    reasons: long
      ? Array.from({ length: 10 }, (_, j) => hostile(300, `r${j}`))
      : ["120 s behind (critical at 60 s)"],
    notes: long ? Array.from({ length: 10 }, (_, j) => hostile(300, `n${j}`)) : [],
    idle: false,
    sender: {
      applicationName: long ? hostile(100, "walsender") : `replica${i}`,
      clientAddr: "10.0.0.31",
      state: "streaming",
      syncState: "async",
      sentLsn: "0/3000000",
      writeLsn: "0/3000000",
      flushLsn: "0/3000000",
      replayLsn: "0/2000000",
      bytesBehind: 16_777_216,
      writeLagSeconds: 0.1,
      flushLagSeconds: 0.2,
      replayLagSeconds: 120,
    },
    view: {
      reachable: true,
      inRecovery: true,
      receiveLsn: "0/3000000",
      replayLsn: "0/2000000",
      lastReplayAt: ISO,
      secondsSinceLastReplay: 120,
      receiver: {
        status: long ? hostile(100, "st") : "streaming",
        senderHost: "10.0.0.12",
        senderPort: 5432,
        receivedTli: 1,
        applicationName: "replica1",
      },
    },
    lagBytes: 16_777_216,
    lagSeconds: 120,
  };
}

function lag(targets: number, replicas: number, long: boolean): LagReport[] {
  return Array.from({ length: targets }, (_, t) => ({
    target: long ? `target_${t}_${"t".repeat(54)}` : `main${t || ""}`,
    checkedAt: ISO,
    severity: "critical" as const,
    primary: {
      address: long ? `${"p".repeat(200)}:5432` : "10.0.0.12:5432",
      reachable: t % 2 === 0,
      error: long ? LONG_ERROR : "connection refused",
      inRecovery: false,
      unknownSenders: long
        ? Array.from(
          { length: 5 },
          (_, j) => ({ ...replica(j, true).sender!, applicationName: hostile(100, `u${j}`) }),
        )
        : [],
    },
    replicas: Array.from({ length: replicas }, (_, i) => replica(i, long)),
    thresholds: {
      bytes_warning: 16_777_216,
      bytes_critical: 134_217_728,
      seconds_warning: 30,
      seconds_critical: 60,
    },
  }));
}

function backups(targets: number, findings: number, long: boolean): BackupStatusReport[] {
  const sources = ["dump_folder", "pgbackrest", "wal_archiving", "restore_test", "config"] as const;
  return Array.from({ length: targets }, (_, t) => ({
    target: long ? `target_${t}_${"t".repeat(54)}` : "main",
    checkedAt: ISO,
    dumpFolder: {
      path: long ? `/var/backups/${"d".repeat(200)}` : "/var/backups/bisman",
      files: 30,
      totalBytes: 5e9,
    } as never,
    pgbackrest: { stanza: long ? "s".repeat(100) : "bisman" } as never,
    lastProvenRestore: {
      id: 3,
      at: AT,
      backupFile: "bisman_20260303.dump",
      restoreMs: 250_000,
      dataAgeMs: 3600_000,
    },
    findings: Array.from({ length: findings }, (_, i) => ({
      source: sources[i % sources.length],
      severity: (["ok", "warning", "critical"] as const)[i % 3],
      check: long ? hostile(100, `check${i}`) : "newest dump age",
      reason: long ? hostile(1500, `reason${i}`) : "the newest dump is 2.0 h old (warning at 26 h)",
    })),
    severity: "critical" as const,
  }));
}

function restoreResult(long: boolean, passed: boolean): RestoreTestResult {
  return {
    id: 42,
    target: long ? `target_${"t".repeat(56)}` : "main",
    passed,
    backup: {
      name: long ? `bisman_${"b".repeat(200)}.dump` : "bisman_20260304.dump",
      size: 7_200_000,
      dataAgeMs: 3600_000,
    },
    server: long ? `${"h".repeat(200)}:5432` : "restore1:5432",
    scratchDatabase: "bisman_restore_test_20260304_0506",
    scratchDropped: passed,
    objectsTotal: 1234,
    restoreMs: 250_000,
    totalMs: 260_000,
    restoredBytes: 52_000_000,
    verifications: Array.from({ length: long ? 200 : 4 }, (_, i) => ({
      name: long ? hostile(120, `count ${i}`) : `rows in invoices`,
      restored: "600000",
      source: "600010",
      sourceMember: "replica1",
      diffPercent: 0.01,
      ok: i % 2 === 0,
      reason: long ? hostile(400, "why") : "differs by more than 1%",
    })),
    ...(passed ? {} : { error: { step: long ? hostile(200, "step") : "pg_restore", message: LONG_ERROR } }),
    notes: long ? Array.from({ length: 30 }, (_, i) => hostile(500, `note${i}`)) : [],
  };
}

function credentialAges(n: number, long: boolean): CredentialAge[] {
  return Array.from({ length: n }, (_, i) => ({
    target: "main",
    role: long ? `${NAME_200}_${i}` : `bisman_role${i}`,
    ref: long ? `secret/${"p".repeat(200)}#${"k".repeat(50)}` : "secret/bisman/db#app_password",
    currentVersion: 9,
    sinceVersion: 8,
    changedAt: ISO,
    ageDays: 100 + i,
    atLeast: i % 2 === 0,
    maxAgeDays: 90,
    overdue: i % 3 === 0,
    ...(i % 5 === 4 ? { error: long ? LONG_ERROR : "Vault does not answer" } : {}),
  }));
}

function auditSearch(rows: number, long: boolean): AuditSearchResult {
  return {
    target: long ? `target_${"t".repeat(56)}` : "main",
    member: long ? `replica_${"r".repeat(100)}` : "replica1",
    note: long ? hostile(1000, "note") : undefined,
    since: ISO,
    filters: long
      ? Object.fromEntries(Array.from({ length: 8 }, (_, i) => [`f${i}`, hostile(100, `v${i}`)]))
      : { table: "clients" },
    rows: Array.from({ length: rows }, (_, i) => ({
      id: i + 1,
      occurredAt: "2026-03-04T05:06:07.123Z",
      table: long ? `t_${"t".repeat(60)}` : "clients",
      action: "UPDATE",
      rowId: String(i),
      dbUser: long ? NAME_200 : "bisman_app",
      sessionUser: long ? `${NAME_200}x` : "bisman_app",
      appUserId: long ? hostile(100, "u") : "42",
      serviceName: long ? hostile(100, "svc") : "erp-web",
      clientAddr: "10.0.0.21",
      applicationName: "erp-web",
      query: masked("update clients set name = $1 where id = $2"),
      changed: long ? Array.from({ length: 30 }, (_, j) => `col_${j}_${"c".repeat(30)}`) : ["name"],
      oldData: long
        ? Object.fromEntries(Array.from({ length: 30 }, (_, j) => [`c${j}`, hostile(100, "o")]))
        : { name: "Acme" },
      newData: long
        ? Object.fromEntries(Array.from({ length: 30 }, (_, j) => [`c${j}`, hostile(100, "n")]))
        : { name: "Acme Ltd" },
    })),
    more: long ? 10_000 : 0,
    moreCapped: long,
    ms: 3,
  };
}

function auditLogRows(n: number, long: boolean): AuditRow[] {
  return Array.from({ length: n }, (_, i) => ({
    seq: i + 1,
    at: "2026-03-04T05:06:07.123Z",
    actor: long ? `slack:T0TEST:U0${"A".repeat(200)}` : "slack:T0TEST:U0ALICE",
    actor_name: long ? hostile(200, "name") : "alice",
    action: "request.created",
    target: long ? `target_${"t".repeat(56)}` : "main",
    request_id: i,
    outcome: "ok",
    details: long ? { text: hostile(2000, "details") } : { action: "rotate_credentials" },
    prev_hash: "0".repeat(64),
    hash: "f".repeat(64),
  }));
}

function digest(targets: number, long: boolean): Digest {
  const section = (key: string, i: number): DigestSection => ({
    key,
    title: long ? `${key} ${"x".repeat(40)}` : key,
    result: i % 4 === 0
      ? { state: "failed", error: long ? LONG_ERROR : "timed out after 10 s", unreachable: i % 8 === 0 }
      : i % 4 === 1
      ? { state: "unavailable", why: long ? hostile(300, "why") : "Vault not configured" }
      : {
        state: "checked",
        status: (["ok", "warning", "critical"] as const)[i % 3],
        lines: Array.from({ length: long ? 20 : 2 }, (_, j) => ({
          status: (["ok", "warning", "critical"] as const)[j % 3],
          text: long ? hostile(400, `line${j}`) : "newest dump 2.0 h old",
        })),
      },
  });
  const keys = [
    "backups",
    "restore",
    "lag",
    "connections",
    "slow_queries",
    "vacuum",
    "credentials",
    "audit",
    "security",
  ];
  return {
    generatedAt: AT,
    since: new Date(AT.getTime() - 86_400_000),
    global: keys.slice(0, 3).map((k, i) => section(`global_${k}`, i)),
    targets: Array.from({ length: targets }, (_, t) => ({
      target: long ? `target_${t}_${"t".repeat(54)}` : `t${t}`,
      description: long ? hostile(300, "desc") : "production",
      unreachable: t % 3 === 0 ? (long ? LONG_ERROR : "connection refused") : undefined,
      sections: keys.map((k, i) => section(k, i + t)),
    })),
    snapshots: {},
    ms: 1234,
    inlineTargets: 10,
  };
}

function checklist(long: boolean): Checklist {
  const groups = ["pre_production", "ongoing", "incident_response"] as const;
  const statuses = ["pass", "fail", "warning", "unknown", "attestation_needed", "runbook"] as const;
  return {
    target: long ? `target_${"t".repeat(56)}` : "main",
    checkedAt: AT,
    items: Array.from({ length: long ? 40 : 12 }, (_, i) => ({
      group: groups[i % 3],
      key: `item_${i}`,
      title: long ? hostile(300, `title${i}`) : "Backups scheduled and tested",
      status: statuses[i % statuses.length],
      evidence: Array.from(
        { length: long ? 20 : 2 },
        (_, j) => (long ? hostile(500, `ev${j}`) : "newest dump 2 h old"),
      ),
      command: long ? `/bisman backups ${"x".repeat(200)}` : "/bisman backups",
      ...(i % 6 === 4
        ? {
          attest: {
            item: (i % 12 === 4 ? "waf_rules" : "encryption_at_rest") as "waf_rules" | "encryption_at_rest",
            mechanisms: ["cloud KMS", "LUKS", "kong", "other", "fifth", "sixth"],
          },
        }
        : {}),
      ...(i % 6 === 5 ? { buttons: [...alertButtonKeys] } : {}),
    })),
  };
}

function run(i: number, long: boolean, outcome: RunRecord["outcome"]): RunRecord {
  return {
    id: 100 + i,
    job: long ? `job_${"j".repeat(60)}` : "digest",
    slot: AT,
    trigger: "schedule",
    runner: "bot-1",
    invoker: null,
    startedAt: AT,
    finishedAt: new Date(AT.getTime() + 1200),
    outcome,
    level: "warning",
    summary: long ? hostile(3000, "summary") : "posted the digest",
    error: long ? LONG_ERROR : "timed out",
    details: {},
    ackedBy: null,
    ackedAt: null,
  };
}

function schedules(n: number, long: boolean): EffectiveSchedule[] {
  return Array.from({ length: n }, (_, i) => ({
    name: long ? `job_${i}_${"j".repeat(60)}` : `job${i}`,
    summary: long ? hostile(500, "summary") : "Posts the daily digest",
    cron: "0 9 * * *",
    timezone: "Europe/Amsterdam",
    enabled: i % 3 !== 2,
    destructive: i % 4 === 0,
    ...(i % 5 === 4 ? { unavailable: long ? hostile(300, "why") : "Vault not configured" } : {}),
    nextRun: AT,
  }));
}

function statuses(targets: number, long: boolean): MemberStatus[] {
  return Array.from({ length: targets * 3 }, (_, i) => ({
    target: long ? `target_${Math.floor(i / 3)}_${"t".repeat(54)}` : `main${Math.floor(i / 3)}`,
    member: i % 3 === 0 ? "primary" : `replica${i % 3}`,
    configuredRole: i % 3 === 0 ? "primary" as const : "replica" as const,
    address: long ? `${"h".repeat(200)}:5432` : "10.0.0.12:5432",
    reachable: i % 4 !== 3,
    actualRole: i % 2 ? "standby" as const : "primary" as const,
    serverVersion: "15.6",
    latencyMs: 2,
    error: long ? LONG_ERROR : "connection refused",
  }));
}

function securityEvents(n: number, long: boolean): SecurityEventsResult {
  return {
    target: "main",
    member: "primary",
    note: long ? hostile(500, "note") : undefined,
    since: ISO,
    events: Array.from({ length: n }, (_, i) => ({
      id: i,
      occurredAt: "2026-03-04T05:06:07.123Z",
      eventType: i % 2 ? "ddl" : "role_locked",
      severity: "critical",
      source: "bisman-ops",
      actor: long ? hostile(200, "actor") : "alice",
      requestId: 3,
      targetRole: long ? NAME_200 : "bisman_app",
      targetAddress: "10.0.0.66",
      dbUser: "bisman_ops",
      clientAddr: "10.0.0.5",
      txid: 1,
      details: long
        ? { command_tag: hostile(200, "tag"), object_identity: hostile(200, "obj"), extra: hostile(500, "x") }
        : { command_tag: "ALTER ROLE", object_identity: "bisman_app" },
    })),
    more: long ? 500 : 0,
    byType: long
      ? Object.fromEntries(Array.from({ length: 30 }, (_, i) => [`type_${i}_${"x".repeat(30)}`, i]))
      : { role_locked: 1 },
  };
}

function detect(n: number, long: boolean): DetectBypassResult {
  return {
    target: "main",
    member: "primary",
    note: long ? hostile(500, "note") : undefined,
    since: ISO,
    findings: Array.from({ length: n }, (_, i) => ({
      kind: "unexpected_role" as never,
      severity: i % 2 ? "warning" as const : "critical" as const,
      title: long ? hostile(500, `title${i}`) : "mallory wrote 3 rows (UPDATE clients)",
      evidence: Array.from(
        { length: long ? 10 : 2 },
        (_, j) => (long ? hostile(500, `ev${j}`) : "10.0.0.66 UPDATE clients#4"),
      ),
      auditSearch: long ? `/bisman audit ${hostile(300, "search")}` : "/bisman audit user=mallory",
      next: long ? `/bisman lock-role ${NAME_200}` : "/bisman lock-role mallory",
      subject: {},
    })),
    skipped: long ? Array.from({ length: 10 }, (_, i) => hostile(300, `skip${i}`)) : [],
    ownActions: long
      ? Array.from({ length: 10 }, (_, i) => hostile(300, `own${i}`))
      : ["bisman_vault changed its own password for approved rotate root #12"],
    rowsInWindow: 1000,
  };
}

function usage(n: number, long: boolean): ServiceUsageResult {
  return {
    target: "main",
    member: "primary",
    note: long ? hostile(500, "note") : undefined,
    service: long ? `svc_${"s".repeat(100)}` : "erp-web",
    roles: long ? Array.from({ length: 30 }, (_, i) => `${NAME_200}_${i}`) : ["bisman_app"],
    since: ISO,
    tables: Array.from({ length: n }, (_, i) => ({
      table: long ? `table_${i}_${"t".repeat(60)}` : "clients",
      used: { INSERT: 3, UPDATE: 4 },
      lastUsed: ISO,
      policy: ["SELECT", "INSERT"] as never,
      actual: ["SELECT", "INSERT", "UPDATE"] as never,
      verdicts: ["beyond_policy", "outside_policy"],
    })),
    withoutServiceName: 3,
  };
}

function roleDrift(n: number, long: boolean): RoleDriftResult {
  const item = (i: number) => ({
    kind: "extra_grant" as never,
    severity: "critical" as const,
    role: long ? NAME_200 : "bisman_app",
    detail: long ? hostile(800, `detail${i}`) : "bisman_app may DELETE on clients; the policy says no",
    fix: long
      ? Array.from({ length: 10 }, () => `REVOKE DELETE ON ${NAME_200} FROM ${NAME_200};`)
      : ["REVOKE DELETE ON clients FROM bisman_app;"],
  });
  return {
    target: "main",
    schema: long ? `s_${"s".repeat(60)}` : "public",
    drift: Array.from({ length: n }, (_, i) => item(i)),
    notes: Array.from({ length: long ? 50 : 1 }, (_, i) => ({ ...item(i), fix: [] })),
    statements: Array.from({ length: n }, () => "REVOKE DELETE ON clients FROM bisman_app;"),
    checkedAt: ISO,
  };
}

function tls(n: number, long: boolean): TlsCheckResult {
  return {
    target: "main",
    ok: false,
    checks: Array.from({ length: n }, (_, i) => ({
      check: long ? `check_${i}_${"c".repeat(60)}` : "hba_hostssl",
      status: (["ok", "warning", "critical"] as const)[i % 3],
      detail: long ? hostile(1000, `detail${i}`) : "2 host lines accept non-TLS connections",
      evidence: Array.from(
        { length: long ? 30 : 2 },
        (_, j) => (long ? hostile(300, `line${j}`) : "host all all 0.0.0.0/0 md5"),
      ),
    })),
  };
}

// --- the cases -----------------------------------------------------------------------------------------

export const CASES: MessageCase[] = [
  {
    name: "alert parent as the poster builds it, in each state a thread goes through",
    covers: [
      "views/alerts.ts#renderAlertParent",
      "views/alerts.ts#buttonsBlock",
      "views/alerts.ts#threadButtonsBlock",
      "alerts/poster.ts#threadExtras",
      "alerts/poster.ts#alertViewOf",
    ],
    render(config) {
      const future = new Date(Date.now() + 4 * 3600_000);
      const states: [string, StateRow][] = [
        ["fresh", stateRow()],
        ["taken", stateRow({ owner: "U0BOB", owned_at: AT })],
        [
          "silenced",
          stateRow({
            owner: "U0BOB",
            owned_at: AT,
            silence_id: "abc-123",
            silence_until: future,
            silenced_by: "U0CAROL",
          }),
        ],
      ];
      const messages: Rendered["messages"] = [];
      const names = [
        ...new Set([
          ...Object.keys(config.alerts.buttons),
          "HighReplicationLag",
          "TooManyConnections",
          "SlowQueries",
          "SuspiciousActivity",
          "ReplicationFailure",
          "Unknown",
        ]),
      ];
      for (const alertname of names) {
        for (const [label, s] of states) {
          for (const source of ["alertmanager", "lag_check"] as const) {
            const a = alert(1, {
              alertname,
              source,
              labels: { ...alert(1).labels, alertname, client_addr: "10.0.0.66" },
            });
            messages.push({ name: `${alertname} ${source} ${label}`, body: posterParent(config, a, s) });
          }
        }
      }
      const resolved = alertViewOf({
        fingerprint: "000000000000a001",
        alertname: "HighReplicationLag",
        status: "resolved",
        labels: alert(1).labels,
        annotations: alert(1).annotations,
        starts_at: AT,
        ends_at: AT,
        source: "alertmanager",
      });
      messages.push({ name: "resolved", body: posterParent(config, resolved, stateRow()) });
      messages.push({
        name: "maximal labels and annotations, every button",
        body: renderAlertParent(maximalAlert(1), everyButton.slice(0, 5), {
          alertmanagerUrl: `https://alertmanager.example/${"a".repeat(200)}`,
          runbookUrl: `https://runbook.example/${"r".repeat(500)}`,
          owner: { id: "U0BOB", at: ISO },
          silence: { id: "s".repeat(100), until: future.toISOString(), by: "U0CAROL" },
          threadButtons: { silenceable: true },
        }),
      });
      messages.push({
        name: "all ten runbook buttons at once",
        body: renderAlertParent(alert(2), everyButton, { threadButtons: { silenceable: true } }),
      });
      messages.push({
        name: "a config that repeats a button",
        body: renderAlertParent(alert(3), [everyButton[1], everyButton[1], everyButton[2]], {}),
      });
      return { messages, views: [] };
    },
  },
  {
    name: "alert thread replies",
    covers: ["views/alerts.ts#renderAlertEvent", "views/alerts.ts#renderContinuedBelow"],
    render() {
      return direct(
        ...(["firing", "refiring", "updated", "resolved"] as const).flatMap((e) =>
          [[`${e}`, renderAlertEvent(e, alert(1))], [
            `${e} maximal`,
            renderAlertEvent(e, maximalAlert(1)),
          ]] as [
            string,
            { text: string; blocks: Block[] },
          ][]
        ),
        ["continued below", renderContinuedBelow(alert(1))],
        ["continued below, maximal", renderContinuedBelow(maximalAlert(1))],
      );
    },
  },
  {
    name: "storm parent and detail: realistic, and 50 alerts with maximal labels",
    covers: ["views/alerts.ts#renderStormParent", "views/alerts.ts#renderStormDetail"],
    render() {
      const detail = (n: number, each: (i: number) => AlertView) =>
        renderStormDetail(
          Array.from({ length: n }, (_, i) => ({ event: i % 2 ? "resolved" : "firing", alert: each(i) })),
        );
      return direct(
        ["storm of 12", renderStormParent(stormView(12, 12, (i) => alert(i)), everyButton.slice(0, 3))],
        ["storm of 50, maximal", renderStormParent(stormView(50, 49, maximalAlert), everyButton)],
        ["storm over", renderStormParent(stormView(50, 0, maximalAlert), everyButton)],
        ["detail of 20 (one poster reply)", detail(20, (i) => alert(i))],
        ["detail of 20 maximal", detail(20, maximalAlert)],
        ["detail of 50 maximal", detail(50, maximalAlert)],
      );
    },
  },
  {
    name: "a read-only alert button's answer in the thread",
    covers: ["views/alerts.ts#renderButtonAnswer"],
    render() {
      const big = renderConnections(connections(200, true));
      return direct(
        ["lag answer", renderButtonAnswer(renderLag(lag(1, 1, false)), "U0BOB", "Show lag")],
        ["50-block answer", renderButtonAnswer(big, "U0BOB", hostile(200, "label"))],
        ["text-only answer", renderButtonAnswer({ text: hostile(10_000, "t") }, "U0BOB", "Status")],
      );
    },
  },
  {
    name: "approval message in every state, realistic and maximal, and its reminder",
    covers: ["views/approval.ts#renderApproval", "views/approval.ts#renderReminder"],
    render() {
      const list: [string, { text: string; blocks: Block[] }][] = [];
      for (const state of REQUEST_STATES) {
        for (
          const [kind, v] of [
            ["realistic", requestView({ state, started_at: state === "pending" ? null : AT })],
            ["realistic cancellable", {
              ...requestView({ state, started_at: AT, pre_backup: false }),
              cancellable: true,
            }],
            ["maximal", maximalRequest({ state, started_at: state === "pending" ? null : AT })],
            ["maximal cancellable", { ...maximalRequest({ state, started_at: AT }), cancellable: true }],
          ] as [string, RequestView][]
        ) list.push([`${state} ${kind}`, renderApproval(v)]);
      }
      list.push(["reminder", renderReminder(requestView(), 20)]);
      list.push(["reminder maximal", renderReminder(maximalRequest(), 20)]);
      return direct(...list);
    },
  },
  {
    name: "deny and typed-confirmation modals",
    covers: ["views/approval.ts#renderDenyModal", "views/approval.ts#renderTypedConfirmationModal"],
    render() {
      const meta = (v: RequestView) => ({
        request: v.request.id,
        plan: v.request.plan_hash,
        channel: "C0OPS",
        thread: "1700000000.000100",
        expected: v.request.target ?? undefined,
      });
      const real = requestView({ policy: { ...requestView().request.policy, typed_confirmation: true } });
      const max = maximalRequest();
      return {
        messages: [],
        views: [
          { name: "deny", view: renderDenyModal(meta(real), real) },
          { name: "deny maximal", view: renderDenyModal({ ...meta(max), expected: "x".repeat(200) }, max) },
          { name: "typed", view: renderTypedConfirmationModal(meta(real), real) },
          {
            name: "typed maximal",
            view: renderTypedConfirmationModal({ ...meta(max), expected: "x".repeat(200) }, max),
          },
        ],
      };
    },
  },
  {
    name: "the asker's answer to a request",
    covers: ["views/approval.ts#renderRequestCreated"],
    render() {
      const base = {
        id: 12,
        summary: "Rotate bisman_app on main",
        planHash: "0123456789ab",
        expiresAt: AT,
        approvalsNeeded: 2,
      };
      return msgs(
        ["posted", renderRequestCreated({ ...base, postedIn: "C0OPS" })],
        ["not posted", renderRequestCreated(base)],
        [
          "maximal",
          renderRequestCreated({
            ...base,
            id: 2_147_483_647,
            summary: hostile(5000, "sum"),
            postedIn: "C0OPS",
          }),
        ],
      );
    },
  },
  {
    name: "audit search",
    covers: ["views/audit.ts#renderAuditSearch"],
    render() {
      return msgs(
        ["3 rows", renderAuditSearch(auditSearch(3, false))],
        ["none", renderAuditSearch(auditSearch(0, false))],
        [
          "200 maximal rows with a file",
          renderAuditSearch(auditSearch(200, true), { file: hostile(300, "file") }),
        ],
      );
    },
  },
  {
    name: "audit-log search and anchor",
    covers: ["views/audit_log.ts#renderAuditLogSearch", "views/audit_log.ts#renderAnchor"],
    render() {
      return msgs(
        ["3 rows", renderAuditLogSearch(auditLogRows(3, false), "action=request.created", { limit: 100 })],
        [
          "5000 maximal rows",
          renderAuditLogSearch(auditLogRows(5000, true), hostile(500, "filters"), {
            limit: 5000,
            file: "audit-log.csv",
          }),
        ],
        ["all 300 rows", renderAuditLogSearch(auditLogRows(300, true), "", { limit: 5000, all: true })],
        ["anchor", renderAnchor({ seq: 123456, hash: "f".repeat(64) }, AT)],
        ["anchor of an empty log", renderAnchor(undefined, AT)],
      );
    },
  },
  {
    name: "backups",
    covers: ["views/backups.ts#renderBackups"],
    render() {
      return msgs(
        ["one target", renderBackups(backups(1, 6, false), AT)],
        ["20 targets, 40 maximal findings each", renderBackups(backups(20, 40, true), AT)],
      );
    },
  },
  {
    name: "checklist",
    covers: ["views/checklist.ts#renderChecklist"],
    render() {
      return msgs(["realistic", renderChecklist(checklist(false))], [
        "maximal",
        renderChecklist(checklist(true)),
      ]);
    },
  },
  {
    name: "connections and slow queries",
    covers: ["views/connections.ts#renderConnections", "views/connections.ts#renderSlowQueries"],
    render() {
      return msgs(
        ["connections", renderConnections(connections(3, false))],
        ["connections: 200 maximal idle sessions", renderConnections(connections(200, true))],
        ["connections: none idle", renderConnections(connections(0, false))],
        ["slow queries", renderSlowQueries(slowQueries(5, false))],
        ["slow queries: 100 maximal", renderSlowQueries(slowQueries(100, true))],
        ["slow queries: none", renderSlowQueries(slowQueries(0, false))],
      );
    },
  },
  {
    name: "daily digest",
    covers: ["views/digest.ts#renderDigest", "views/digest.ts#targetBlocks"],
    render() {
      const list: [string, Reply][] = [];
      for (
        const [name, d] of [["3 targets", digest(3, false)], ["10 maximal targets", digest(10, true)], [
          "60 maximal targets",
          digest(60, true),
        ]] as [string, Digest][]
      ) {
        const r = renderDigest(d);
        list.push([name, r.main]);
        r.thread.forEach((t, i) => list.push([`${name} thread ${i}`, t]));
      }
      return msgs(...list);
    },
  },
  {
    name: "errors",
    covers: ["views/error.ts#renderError"],
    render() {
      return msgs(
        [
          "refusal",
          renderError(new OpsError("not_permitted", "Only operators may run restore-test: ask in <#C0OPS>")),
        ],
        ["maximal", renderError(new OpsError("internal", LONG_ERROR))],
      );
    },
  },
  {
    name: "help",
    covers: ["views/help.ts#renderHelp", "views/help.ts#renderHelpOne"],
    render() {
      const subs = allSubcommands();
      const long = {
        usage: `/bisman ${"u".repeat(200)}`,
        summary: hostile(2000, "s"),
        examples: Array.from({ length: 50 }, () => hostile(100, "e")),
        access: "operator" as const,
        destructive: true,
      };
      return msgs(
        ["every subcommand", renderHelp(subs)],
        ...subs.map((s) => [`help ${s.name}`, renderHelpOne(s)] as [string, Reply]),
        ["100 maximal subcommands", renderHelp(Array.from({ length: 100 }, () => long))],
        ["one maximal subcommand", renderHelpOne(long)],
      );
    },
  },
  {
    name: "jobs: list, run result, failure, recovery, interruption, reviews, changes, anomalies",
    covers: [
      "views/jobs.ts#renderJobs",
      "views/jobs.ts#renderRunResult",
      "views/jobs.ts#renderJobFailed",
      "views/jobs.ts#renderJobRecovered",
      "views/jobs.ts#renderJobInterrupted",
      "views/jobs.ts#renderSlowQueryReview",
      "views/jobs.ts#renderTargetChanges",
      "views/jobs.ts#renderAuditAnomalies",
    ],
    render() {
      const last = (n: number, long: boolean) =>
        new Map(schedules(n, long).map((s, i) => [s.name, run(i, long, i % 2 ? "failed" : "ok")]));
      const anomalies = (n: number, long: boolean) =>
        Array.from(
          { length: n },
          (_, t) =>
            t % 5 === 4 ? { target: `t${t}`, error: long ? LONG_ERROR : "timed out" } : {
              target: long ? `target_${t}_${"t".repeat(54)}` : `t${t}`,
              findings: Array.from({ length: long ? 10 : 1 }, (_, i) => ({
                severity: i % 2 ? "warning" as const : "critical" as const,
                title: long ? hostile(400, `f${i}`) : "mallory wrote 3 rows",
                next: "/bisman lock-role mallory",
                auditSearch: long ? `/bisman audit ${hostile(200, "q")}` : undefined,
              })),
              events: Array.from(
                { length: long ? 10 : 1 },
                () => ({
                  severity: "critical",
                  eventType: long ? hostile(100, "ev") : "ddl",
                  occurredAt: ISO,
                  actor: long ? hostile(100, "a") : "alice",
                }),
              ),
              skipped: [],
            },
        );
      const changes = (n: number, long: boolean) =>
        Array.from({ length: n }, (_, i) => ({
          target: long ? `target_${i}_${"t".repeat(54)}` : `t${i}`,
          was: "ok" as const,
          now: "critical" as const,
          lines: Array.from(
            { length: long ? 10 : 1 },
            () => ({ status: "critical" as const, text: long ? hostile(600, "l") : "lag 120 s" }),
          ),
        }));
      return msgs(
        ["jobs", renderJobs(schedules(10, false), last(10, false))],
        ["100 maximal jobs", renderJobs(schedules(100, true), last(100, true))],
        ["run result", renderRunResult(run(1, false, "ok"))],
        ["run result maximal", renderRunResult(run(1, true, "failed"))],
        ["failed", renderJobFailed("digest", AT, "timed out", "schedule")],
        ["failed maximal", renderJobFailed(`job_${"j".repeat(60)}`, AT, LONG_ERROR, "manual")],
        ["recovered", renderJobRecovered("digest", 3)],
        ["interrupted", renderJobInterrupted("digest", { id: 4, runner: "bot-1", slot: AT })],
        [
          "interrupted maximal",
          renderJobInterrupted(`job_${"j".repeat(60)}`, { id: 4, runner: hostile(200, "runner"), slot: AT }),
        ],
        ["slow-query review", renderSlowQueryReview(9, [slowQueries(5, false)], [])],
        [
          "slow-query review, 10 maximal targets",
          renderSlowQueryReview(
            9,
            Array.from({ length: 10 }, () => slowQueries(100, true)),
            Array.from({ length: 10 }, (_, i) => ({ target: `t${i}`, error: LONG_ERROR })),
          ),
        ],
        ["target changes", renderTargetChanges("Replication lag", changes(2, false))],
        ["target changes maximal", renderTargetChanges(hostile(200, "title"), changes(60, true))],
        ["audit anomalies", renderAuditAnomalies(9, AT, anomalies(2, false))],
        ["audit anomalies maximal", renderAuditAnomalies(9, AT, anomalies(60, true))],
      );
    },
  },
  {
    name: "replication lag",
    covers: ["views/lag.ts#renderLag"],
    render() {
      return msgs(["one replica", renderLag(lag(1, 1, false))], [
        "10 targets of 5 maximal replicas",
        renderLag(lag(10, 5, true)),
      ]);
    },
  },
  {
    name: "request lists",
    covers: ["views/requests.ts#renderRequestList"],
    render() {
      const items = (n: number, long: boolean) =>
        Array.from({ length: n }, (_, i) => ({
          request:
            (long ? maximalRequest({ id: i + 1, state: REQUEST_STATES[i % 10] }) : requestView({ id: i + 1 }))
              .request,
          approvals: 1,
          permalink: `https://bisman.slack.com/archives/C0OPS/p17000000000001${i}`,
        }));
      return msgs(
        ["3 pending", renderRequestList(items(3, false), { scope: "pending", since: AT, limit: 20 }, AT)],
        ["none", renderRequestList([], { scope: "mine", since: AT, limit: 20 }, AT)],
        ["100 maximal", renderRequestList(items(100, true), { scope: "all", since: AT, limit: 100 }, AT)],
      );
    },
  },
  {
    name: "restore test progress and result",
    covers: ["views/restore_test.ts#renderRestoreProgress", "views/restore_test.ts#renderRestoreResult"],
    render() {
      const phases = ["reading dump", "creating database", "restoring", "verifying", "dropping"] as const;
      return msgs(
        ...phases.map((phase) =>
          [
            `progress ${phase}`,
            renderRestoreProgress({
              target: "main",
              backup: "bisman_20260304.dump",
              phase,
              objectsDone: 10,
              objectsTotal: 1234,
              verifyDone: 1,
              verifyTotal: 4,
              elapsedMs: 4 * 3600_000,
            }),
          ] as [string, Reply]
        ),
        [
          "progress maximal",
          renderRestoreProgress({
            target: `target_${"t".repeat(56)}`,
            backup: `bisman_${hostile(200, "b")}.dump`,
            phase: "verifying",
            objectsDone: 1e6,
            objectsTotal: 1e6,
            verifyDone: 100,
            verifyTotal: 100,
            elapsedMs: 4 * 3600_000,
          }),
        ],
        ["passed", renderRestoreResult(restoreResult(false, true))],
        ["failed", renderRestoreResult(restoreResult(false, false))],
        ["failed maximal", renderRestoreResult(restoreResult(true, false))],
        [
          "cancelled maximal",
          renderRestoreResult({
            ...restoreResult(true, false),
            cancelled: { by: "U0BOB", phase: "restoring", objectsDone: 3 },
          }),
        ],
      );
    },
  },
  {
    name: "credential ages",
    covers: ["views/rotate.ts#renderCredentialAges"],
    render() {
      return msgs(["3 roles", renderCredentialAges("main", credentialAges(3, false))], [
        "200 maximal roles",
        renderCredentialAges(`target_${"t".repeat(56)}`, credentialAges(200, true)),
      ]);
    },
  },
  {
    name: "security subcommands",
    covers: [
      "views/security.ts#renderSecurityEvents",
      "views/security.ts#renderDetect",
      "views/security.ts#renderUsage",
      "views/security.ts#renderRoleDrift",
      "views/security.ts#renderTls",
    ],
    render() {
      return msgs(
        ["events", renderSecurityEvents(securityEvents(3, false))],
        ["events maximal", renderSecurityEvents(securityEvents(200, true))],
        ["detect", renderDetect(detect(2, false))],
        ["detect maximal", renderDetect(detect(40, true))],
        ["usage", renderUsage(usage(3, false))],
        ["usage maximal", renderUsage(usage(100, true))],
        ["roles", renderRoleDrift(roleDrift(2, false))],
        ["roles maximal", renderRoleDrift(roleDrift(200, true))],
        ["tls", renderTls(tls(4, false))],
        ["tls maximal", renderTls(tls(40, true))],
      );
    },
  },
  {
    name: "status",
    covers: ["views/status.ts#renderStatus"],
    render() {
      return msgs(
        ["one target", renderStatus(statuses(1, false), [":ice_cube: Frozen by <@U0ALICE>"])],
        [
          "30 maximal targets",
          renderStatus(statuses(30, true), Array.from({ length: 10 }, () => hostile(300, "extra"))),
        ],
      );
    },
  },
  {
    name: "a query result with its Post to channel button, and as posted to the channel",
    covers: ["slack/share.ts#withShareButtonBlocks", "slack/share.ts#sharedAnswer"],
    render() {
      const big = renderConnections(connections(200, true));
      const checklistReply = renderChecklist(checklist(true));
      return msgs(
        ["with button", { text: big.text, blocks: withShareButtonBlocks(big, 77) }],
        ["checklist with button", {
          text: checklistReply.text,
          blocks: withShareButtonBlocks(checklistReply, 77),
        }],
        ["shared", { ...sharedAnswer(big, "U0ALICE", "connections"), visibility: "in_channel" }],
      );
    },
  },
];

CASES.push({
  name: "long work's message: progress and the answer under who asked",
  covers: ["slack/answers.ts#workMessageContent"],
  render() {
    const asked = `/bisman restore-test ${hostile(200, "args")}`;
    const progress = renderRestoreProgress({
      target: "main",
      backup: "bisman_20260304.dump",
      phase: "restoring",
      objectsDone: 10,
      objectsTotal: 1234,
      verifyDone: 0,
      verifyTotal: 4,
      elapsedMs: 3 * 3600_000,
    });
    return direct(
      ["progress", workMessageContent("U0ALICE", "/bisman restore-test main", progress)],
      [
        "result, maximal",
        workMessageContent("U0ALICE", asked, renderRestoreResult(restoreResult(true, false))),
      ],
      [
        "a 50-block answer keeps 50 blocks",
        workMessageContent("U0ALICE", asked, renderConnections(connections(200, true))),
      ],
      [
        "a refusal",
        workMessageContent(
          "U0BOB",
          "/bisman restore-test main",
          renderError(new OpsError("conflict", "A restore test of main is already running")),
        ),
      ],
    );
  },
});

/** Exports of views/ (and the other message modules) that are not messages, and why. */
export const NOT_MESSAGES: Record<string, string> = {
  "views/actions.ts": "action IDs and the encoding of button values",
  "views/blocks.ts": "block builders and text helpers every renderer uses",
  "views/csv.ts": "CSV files, not messages",
  "views/plain_text.ts": "terminal text for the CLI, not a Slack message",
  "views/reply.ts": "types",
  "views/digest_model.ts": "the digest's data and its ranking",
  "views/checklist_model.ts": "the checklist's data",
  "views/alerts.ts#alertOneLine": "one line of text inside the alert renderers",
  "views/approval.ts#stateLine": "a line inside renderApproval",
  "views/approval.ts#approverMentions": "mentions inside renderApproval and renderReminder",
  "views/approval.ts#blockTexts": "reads the texts of a message (a clicked one), draws nothing",
  "views/approval.ts#approvalPlanTexts":
    "texts taken from renderApproval, to check a clicked message against",
  "views/approval.ts#approvalText": "the fallback text of renderApproval",
  "views/audit.ts#auditRowLine": "a line inside renderAuditSearch",
  "views/audit.ts#auditDataLine": "a line inside renderAuditSearch",
  "views/audit.ts#auditSearchCsv": "the CSV file of an audit search",
  "views/audit_log.ts#auditLogLine": "a line inside renderAuditLogSearch",
  "views/audit_log.ts#auditLogCsv": "the CSV file of an audit-log search",
  "views/audit_log.ts#AUDIT_LOG_ROWS_SHOWN": "a number",
  "views/checklist.ts#checklistCounts": "a line inside renderChecklist",
  "views/connections.ts#sessionLine": "a line inside renderConnections",
  "views/digest.ts#mark": "a status mark",
  "views/digest.ts#targetLines": "lines inside renderDigest",
  "views/jobs.ts#shortTime": "a time format",
  "views/lag.ts#lagText": "the fallback text of renderLag",
  "views/requests.ts#requestLine": "a line inside renderRequestList",
  "views/rotate.ts#credentialAgeLine": "a line inside renderCredentialAges",
};
