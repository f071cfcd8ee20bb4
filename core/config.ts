/**
 * The bot's configuration: one YAML file named by `BISMAN_CONFIG`, validated with zod at start-up.
 *
 * Secrets never live in the file: a connection names `password_env: VAR` or `vault: <path>#<key>`.
 * Every object is strict, so a misspelt key is an error that names it instead of a silently ignored line.
 * Defaults follow the seed runbook (90-day credentials, 15-minute approvals, 2 approvals to promote).
 *
 * @module
 */

import { z } from "zod";
import { parse as parseYaml } from "yaml";
import { Cron } from "croner";
import { own, protoKeys } from "./lookup.ts";
import { parsePublicKey } from "./cli_signature.ts";
import {
  awsWafSchema,
  centralLoggingSchema,
  kubernetesSchema,
  networkPolicySchema,
  postgresVersionsSchema,
  walStreamingSchema,
} from "./config_evidence.ts";

const slackUserId = z.string().regex(/^[UW][A-Z0-9]{2,}$/, "a Slack user ID such as U012ABCDEF");
const slackGroupId = z.string().regex(/^S[A-Z0-9]{2,}$/, "a Slack user-group ID such as S012ABCDEF");
const slackChannelId = z.string().regex(/^[CGD][A-Z0-9]{2,}$/, "a Slack channel ID such as C012ABCDEF");
/** A PostgreSQL login name (the break-glass CLI's people: their own roles on the state database). */
const cliLogin = z.string().regex(/^[a-z_][a-z0-9_.-]{0,31}$/, "a PostgreSQL login such as alice");
const identifier = z.string().regex(
  /^[a-z_][a-z0-9_]{0,62}$/,
  "a lower-case PostgreSQL identifier (letters, digits, underscore)",
);
const vaultRef = z.string().regex(
  /^[A-Za-z0-9_./-]+#[A-Za-z0-9_.-]+$/,
  "<kv path>#<key>, e.g. bisman/db#app_password",
);

/** Who: Slack user IDs and user-group IDs. Names are never trusted. */
export const principalsSchema = z.strictObject({
  users: z.array(slackUserId).default([]),
  groups: z.array(slackGroupId).default([]),
});
export type Principals = z.infer<typeof principalsSchema>;

/** How to reach one PostgreSQL server. */
export const connectionSchema = z.strictObject({
  host: z.string().min(1),
  port: z.number().int().min(1).max(65535).default(5432),
  database: z.string().min(1).default("postgres"),
  user: z.string().min(1),
  password_env: z.string().regex(/^[A-Z_][A-Z0-9_]*$/, "an environment variable name").optional(),
  vault: vaultRef.optional(),
  /**
   * TLS to the server. verify-full by default: `prefer` and `require` accept any certificate (a machine in
   * the middle reads every password the bot sends or rotates), and `prefer` falls back to clear text.
   */
  sslmode: z.enum(["disable", "prefer", "require", "verify-full"]).default("verify-full"),
  ca_file: z.string().optional(),
  connect_timeout_seconds: z.number().int().min(1).max(60).default(3),
});
export type ConnectionConfig = z.infer<typeof connectionSchema>;

export const replicaSchema = connectionSchema.extend({ name: identifier });
export type ReplicaConfig = z.infer<typeof replicaSchema>;

/** A role whose password the bot rotates: the KV v2 path and key that hold it. */
export const rotatableRoleSchema = z.strictObject({
  path: z.string().regex(/^[A-Za-z0-9_./-]+$/, "a KV v2 path such as bisman/db"),
  key: z.string().regex(/^[A-Za-z0-9_.-]+$/, "a key name such as app_password"),
});

// --- backups and restore tests (issue 5) ---

/** A program path: absolute, or a bare name found on PATH. */
const programPath = z.string().regex(
  /^(\/[A-Za-z0-9_./+-]+|[A-Za-z0-9_.+-]+)$/,
  "an absolute path or a program name",
);
const osUser = z.string().regex(/^[a-z_][a-z0-9_-]{0,31}$/, "an operating-system user name");

/**
 * A folder of `pg_dump -Fc` files on the bot's host (the seed: a daily full dump kept 30 days). Ages are
 * judged against `max_age_hours`: beyond it a warning, beyond twice it critical.
 */
export const dumpFolderSchema = z.strictObject({
  path: z.string().regex(/^\/[^\0]*$/, "an absolute folder path"),
  /** File names to consider: `*` and `?` wildcards only (the seed: bisman_YYYYMMDD.dump). */
  pattern: z.string().regex(/^[A-Za-z0-9_.*?-]{1,100}$/, "a file-name pattern with * and ? only").default(
    "*.dump",
  ),
  max_age_hours: z.number().positive().default(26),
  /** How often a dump is expected; a longer gap between two dumps is reported as missing dumps. */
  expected_every_hours: z.number().positive().default(24),
  /** The seed keeps dumps 30 days; fewer days on hand is "retention not reached", 0 turns the check off. */
  retention_days: z.number().int().min(0).default(30),
  /**
   * `full` reads the newest dump to its end (`pg_restore -f /dev/null`): a truncated custom-format file
   * still passes `pg_restore --list`, whose table of contents sits at the start. `list` only reads that.
   */
  read_check: z.enum(["full", "list"]).default("full"),
});

/** A pgBackRest stanza (the seed: point-in-time recovery kept 90 days, WAL archived with archive-push). */
export const pgbackrestSourceSchema = z.strictObject({
  stanza: z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/, "a pgBackRest stanza name"),
  /** pgbackrest --config=<file>; absent: pgBackRest's own default (/etc/pgbackrest/pgbackrest.conf). */
  config_file: z.string().regex(/^\/[^\0]*$/, "an absolute file path").optional(),
  /** Run pgbackrest as this OS user when the bot runs as root (it must own the repo and lock paths). */
  run_as: osUser.optional(),
  /** Newest full backup: older is a warning, twice as old critical. */
  full_max_age_days: z.number().positive().default(7),
  /** Newest backup of any type (full, diff, incr). */
  backup_max_age_hours: z.number().positive().default(26),
  /** The oldest backup on hand should be at least this old (the seed: 90 days of PITR); 0 turns it off. */
  retention_days: z.number().int().min(0).default(90),
});

export const backupsSchema = z.strictObject({
  dump_folder: dumpFolderSchema.optional(),
  pgbackrest: pgbackrestSourceSchema.optional(),
  /** pg_stat_archiver on the primary: failing archive_command is critical, so is a stale backlog. */
  wal_archiving: z.strictObject({
    /** WAL segments waiting (.ready) while nothing was archived for this long: critical. */
    max_age_minutes: z.number().positive().default(60),
  }).optional(),
  /** The programs the bot runs on its own host; bare names are looked up on PATH. */
  tools: z.strictObject({
    pg_restore: programPath.default("pg_restore"),
    pgbackrest: programPath.default("pgbackrest"),
    // Everyday use (issue 11): `/bisman backup now` with a dump folder runs pg_dump -Fc.
    pg_dump: programPath.default("pg_dump"),
  }).prefault({}),
  // --- everyday use (issue 11): `/bisman backup now` (through the approval gate, policies.backup_now) ---
  on_demand: z.strictObject({
    /** Which source an on-demand backup uses; default: pgBackRest when configured, else the dump folder. */
    source: z.enum(["pgbackrest", "dump_folder"]).optional(),
    /** pgBackRest backup type when none is typed (the seed's daily backup is full). */
    type: z.enum(["full", "diff", "incr"]).default("full"),
    /** On-demand dumps are named <prefix><YYYYMMDD>_<HHMMSS>.dump, which must match dump_folder.pattern. */
    dump_prefix: z.string().regex(/^[A-Za-z0-9_.-]{1,60}$/, "letters, digits, _ . -").default("bisman_"),
    /** The backup is stopped and fails after this long. */
    timeout_minutes: z.number().int().min(1).max(24 * 60).default(240),
  }).prefault({}),
});
export type BackupsConfig = z.infer<typeof backupsSchema>;

/** A fixed verification query, written by an admin; run read-only with a statement timeout. */
export const verifyQuerySchema = z.strictObject({
  name: z.string().regex(/^[A-Za-z0-9_ .:()-]{1,60}$/, "a short name (letters, digits, space, _.:()-)"),
  sql: z.string().max(2000).regex(
    /^\s*(select|with)\s[^;]*;?\s*$/is,
    "one SELECT (or WITH \u2026 SELECT) statement, without semicolons inside",
  ),
  /** The restored value must be at least this (e.g. 1: an empty clients table fails the test). */
  min: z.number().optional(),
});

/**
 * Monthly restore tests of the newest dump into a scratch database on a restore server.
 *
 * Approval (README design section): a restore test does not need the approval gate when it runs on a
 * separate restore server. Its only writes are CREATE DATABASE and DROP DATABASE of a scratch database it
 * created and marked itself, on a server that holds no production data; production is only read (the
 * dump file, and the optional count comparison in a read-only transaction with a statement timeout). The
 * worst failure is a leftover scratch database, which the cleanup job removes. Requiring a second person's
 * click would stop the monthly schedule from running unattended and would put friction on the very check
 * that other approvals depend on (require_restore_test_within_days). Restoring on the production primary
 * is different (load and disk on production), so there it needs approval unless `requires_approval`
 * says otherwise: `requires_approval` defaults to false with a `server`, true with `allow_on_primary`.
 */
export const restoreTestSchema = z.strictObject({
  /**
   * The restore server (a scratch cluster); the bot's role there needs CREATEDB, and superuser when the
   * dumps hold event triggers or untrusted extensions (the BISMAN audit SQL has a DDL event trigger).
   * None: refuse, unless...
   */
  server: connectionSchema.optional(),
  /** ...this is true: then the scratch database is created on the target's primary. */
  allow_on_primary: z.boolean().default(false),
  requires_approval: z.boolean().optional(),
  /** pg_restore -j */
  jobs: z.number().int().min(1).max(32).default(2),
  /**
   * The nice level pg_restore runs at on the bot's host (0 to 19; 0: the bot's own priority). pg_restore
   * decompresses the dump and feeds COPY there, and must not take the CPU the bot needs to answer Slack.
   */
  nice: z.number().int().min(0).max(19).default(10),
  /** Include this target in the scheduled `restore_test` job (monthly in the seed; cron under schedules). */
  scheduled: z.boolean().default(true),
  /** The seed's verification queries. */
  verify: z.array(verifyQuerySchema).max(20).default([
    { name: "clients", sql: "SELECT COUNT(*) FROM clients" },
    { name: "payment_requests", sql: "SELECT COUNT(*) FROM payment_requests" },
  ]),
  /** Run the same queries on the source and compare: `primary`, `replica` (see compare_replica) or `none`. */
  compare_with: z.enum(["primary", "replica", "none"]).default("none"),
  /** Which replica for `compare_with: replica` (default: the first one). */
  compare_replica: identifier.optional(),
  /** Allowed difference between restored and source values, in percent of the source's. */
  tolerance_percent: z.number().min(0).max(100).default(1),
  statement_timeout_seconds: z.number().int().min(1).max(3600).default(60),
  /** pg_restore is stopped after this long and the test fails. */
  timeout_minutes: z.number().int().min(1).max(24 * 60).default(240),
  /** Restore owners and grants too (needs the production roles on the restore server); default off. */
  restore_owner_and_privileges: z.boolean().default(false),
  /** `/bisman backups` warns when the last passing test is older (monthly schedule plus a few days). */
  max_age_days: z.number().int().min(1).max(366).default(35),
});
export type RestoreTestConfig = z.infer<typeof restoreTestSchema>;

// --- security: the role policy, bypass detection and pg_hba.conf management (issue 7) ---

/** A table privilege as PostgreSQL names it. */
export const tablePrivilegeSchema = z.enum([
  "SELECT",
  "INSERT",
  "UPDATE",
  "DELETE",
  "TRUNCATE",
  "REFERENCES",
  "TRIGGER",
]);
/** A table privilege name. */
export type TablePrivilege = z.infer<typeof tablePrivilegeSchema>;

/** One role of the least-privilege policy that `/bisman roles` compares the database against. */
export const rolePolicySchema = z.strictObject({
  /**
   * `app` and `service` roles are the ones expected to write (detect flags DML by any other role);
   * `service` roles are also held to their table list.
   */
  kind: z.enum(["readonly", "app", "admin", "dba", "service", "other"]),
  login: z.boolean().default(true),
  superuser: z.boolean().default(false),
  createrole: z.boolean().default(false),
  bypassrls: z.boolean().default(false),
  /** Roles it is a member of (GRANT <role> TO this one). */
  member_of: z.array(identifier).default([]),
  /**
   * Direct privileges on the tables of `security.schema`: a table name, or `*` for every table not named
   * (present and future, so `*` also defines the expected default privileges).
   */
  tables: z.record(
    z.string().regex(/^(\*|[a-z_][a-z0-9_]{0,62})$/, "a table name or *"),
    z.array(tablePrivilegeSchema),
  ).default({}),
  /** EXECUTE on every function of the schema (the seed's bisman_admin). */
  execute_functions: z.boolean().default(false),
  /** `service` roles: the app.service_name its writes carry (usage reports are by service). */
  service: z.string().regex(/^[a-z][a-z0-9_-]{0,62}$/, "a service name such as payments").optional(),
  /** pgaudit.log expected for this role (the seed: write for bisman_app, all for bisman_admin). */
  pgaudit_log: z.string().regex(
    /^-?[a-z]+(, *-?[a-z]+)*$/,
    "a pgaudit.log value such as write or read, write",
  )
    .optional(),
});
/** One role of the policy, defaults filled in. */
export type RolePolicy = z.infer<typeof rolePolicySchema>;

const DML = ["SELECT", "INSERT", "UPDATE", "DELETE"] as const;
/** The seed's role hierarchy (runbook section 1; sql/target/roles.sql), the default policy of every target. */
export const SEED_ROLE_POLICY: Record<string, RolePolicy> = Object.fromEntries(
  Object.entries({
    bisman_readonly: { kind: "readonly", tables: { "*": ["SELECT"] } },
    bisman_app: {
      kind: "app",
      tables: { "*": [...DML], audit_logs_dml: ["INSERT"], security_events: ["INSERT"] },
      pgaudit_log: "write",
    },
    bisman_admin: {
      kind: "admin",
      member_of: ["bisman_app"],
      tables: { audit_logs_dml: ["DELETE"] },
      execute_functions: true,
      pgaudit_log: "all",
    },
    bisman_dba: { kind: "dba", login: false, superuser: true },
    svc_payments: {
      kind: "service",
      service: "payments",
      tables: {
        payment_requests: ["SELECT", "INSERT", "UPDATE"],
        payments: ["SELECT", "INSERT", "UPDATE"],
        audit_logs_dml: ["INSERT"],
      },
    },
  }).map(([name, p]) => [name, rolePolicySchema.parse(p)]),
);

/** Per target: the role policy, who may log in, and whether the bot edits pg_hba.conf. */
export const securitySchema = z.strictObject({
  /** The schema holding the application tables, audit_logs_dml and security_events. */
  schema: identifier.default("public"),
  /** Expected roles and their privileges; default: the seed's hierarchy. */
  roles: z.record(identifier, rolePolicySchema).default(SEED_ROLE_POLICY),
  /**
   * Roles that exist and may log in outside the policy (a replication user, the tables' owner, personal
   * DBA logins). The bot's own login is always allowed. Any other login is the seed's "unexpected DB user".
   */
  other_roles: z.array(identifier).default([]),
  /** Set only where the bot runs beside the server and may edit its pg_hba.conf (block, unblock). */
  manage_hba: z.strictObject({
    /** The server's pg_hba.conf as the bot sees it; must be the file `SHOW hba_file` names. */
    path: z.string().regex(/^\/[^\0]*$/, "an absolute file path"),
  }).optional(),
  /** Where audit searches and detection read: a replica when one is configured (default), or the primary. */
  audit_reads: z.enum(["replica", "primary"]).default("replica"),
  /** `roles apply` runs its GRANT/REVOKE after SET LOCAL ROLE to this role (the tables' owner), when set. */
  grant_role: identifier.optional(),
}).superRefine((s, ctx) => {
  for (const [name, p] of Object.entries(s.roles)) {
    if (p.kind === "service" && !p.service) {
      ctx.addIssue({
        code: "custom",
        path: ["roles", name, "service"],
        message: "a service role names its service",
      });
    }
    for (const m of p.member_of) {
      if (!own(s.roles, m) && !s.other_roles.includes(m) && !m.startsWith("pg_")) {
        ctx.addIssue({
          code: "custom",
          path: ["roles", name, "member_of"],
          message: `${m} is neither in security.roles nor in security.other_roles`,
        });
      }
    }
  }
});
/** A target's `security` block, defaults filled in. */
export type SecurityConfig = z.infer<typeof securitySchema>;

export const targetSchema = z.strictObject({
  description: z.string().optional(),
  primary: connectionSchema,
  replicas: z.array(replicaSchema).default([]),
  vault: z.strictObject({
    kv_mount: z.string().default("secret"),
    database_connection: z.string().optional(),
    /**
     * A Vault database role of that connection: after `rotate root` the bot asks Vault for its credentials
     * (Vault must log in with the new root credential to create them), logs in with them and revokes them.
     */
    verify_role: z.string().regex(/^[A-Za-z0-9_.-]{1,128}$/, "a Vault role name").optional(),
  }).default({ kv_mount: "secret" }),
  roles: z.record(identifier, rotatableRoleSchema).default({}),
  credential_max_age_days: z.number().int().positive().default(90),
  security: securitySchema.prefault({}),
  backups: backupsSchema.optional(),
  restore_test: restoreTestSchema.optional(),
  // The seed's remaining items, each read from the system that holds it (issue 19; core/config_evidence.ts).
  /** The database pods' NetworkPolicies, read from the Kubernetes API when the bot runs in a cluster. */
  network_policy: networkPolicySchema.optional(),
  /** The AWS WAF web ACL in front of the app, read with the WAFV2 API. */
  aws_waf: awsWafSchema.optional(),
  /** The pg_receivewal client streaming WAL from the primary, and its directory. */
  wal_streaming: walStreamingSchema.optional(),
  /** Server log settings for Fluent Bit, and the lines that reached Elasticsearch/OpenSearch. */
  central_logging: centralLoggingSchema.optional(),
});
export type TargetConfig = z.infer<typeof targetSchema>;

/** One action's approval policy. Unset fields fall back to `policies.default`, then to built-in defaults. */
export const policySchema = z.strictObject({
  approvals: z.number().int().min(1).max(5).optional(),
  approvers: principalsSchema.optional(),
  expiry_minutes: z.number().int().min(1).max(24 * 60).optional(),
  typed_confirmation: z.boolean().optional(),
  allowed_during_freeze: z.boolean().optional(),
  channels: z.array(slackChannelId).optional(),
  /** Refuse the action unless the target's last passing restore test is at most this many days old. */
  require_restore_test_within_days: z.number().int().min(1).max(366).optional(),
});
export type PolicyConfig = z.infer<typeof policySchema>;

// --- thresholds and alerts (replication lag, connections, slow queries, Alertmanager threads) ---

/**
 * What the checks judge against. Defaults follow the seed's alert rules (replication lag over 30 s and a
 * mean query time over 1 s are warnings); connections are judged as a share of `max_connections`, and an
 * idle-in-transaction session older than the limit is a suspected connection leak.
 */
export const thresholdsSchema = z.strictObject({
  lag: z.strictObject({
    bytes_warning: z.number().int().positive().default(16 * 1024 * 1024),
    bytes_critical: z.number().int().positive().default(1024 * 1024 * 1024),
    seconds_warning: z.number().positive().default(30),
    seconds_critical: z.number().positive().default(300),
  }).refine((l) => l.bytes_warning <= l.bytes_critical, {
    message: "bytes_warning must not exceed bytes_critical",
    path: ["bytes_warning"],
  }).refine((l) => l.seconds_warning <= l.seconds_critical, {
    message: "seconds_warning must not exceed seconds_critical",
    path: ["seconds_warning"],
  }).prefault({}),
  connections_percent_warning: z.number().min(1).max(100).default(80),
  connections_percent_critical: z.number().min(1).max(100).default(95),
  idle_in_transaction_minutes: z.number().positive().max(24 * 60).default(5),
  slow_query_mean_ms: z.number().positive().default(1000),
}).prefault({});
export type Thresholds = z.infer<typeof thresholdsSchema>;

/** The remediation buttons an alert may offer (alerts/buttons.ts maps each to a subcommand or operation). */
export const alertButtonKeys = [
  "status",
  "show_lag",
  "promote_replica",
  "show_connections",
  "terminate_idle",
  "top_slow_queries",
  "reset_statements",
  "show_audit",
  "rotate_all",
  "terminate_client",
] as const;
export type AlertButtonKey = (typeof alertButtonKeys)[number];

export const alertsSchema = z.strictObject({
  /**
   * Alertmanager's own URL, linked from alert threads; silences go only here (alerts/silences.ts), never to
   * the externalURL an alert names.
   */
  alertmanager_url: z.url().optional(),
  /** Buttons per alert name; names not listed use the built-in runbook mapping, then `default`. */
  buttons: z.record(
    z.string().regex(/^[A-Za-z_:][A-Za-z0-9_:]*$/, "an alert name"),
    z.array(z.enum(alertButtonKeys)).max(5),
  ).default({}),
  lag_check: z.strictObject({
    enabled: z.boolean().default(true),
    interval_seconds: z.number().int().min(1).max(24 * 3600).default(60),
  }).prefault({}),
  /** Pace of posts and edits per channel; Slack allows about one message per second per channel. */
  slack_per_channel_per_second: z.number().positive().max(100).default(1),
  /** New alerts of one group waiting together at least this many times are listed in one parent message. */
  storm_group_at: z.number().int().min(2).default(5),
  // --- everyday use (issue 11): runbook links on alert threads ---
  /**
   * A runbook URL per alert name (and `default`), linked from the alert's thread when the alert carries no
   * `runbook_url` annotation of its own.
   */
  runbook_urls: z.record(
    z.string().regex(/^[A-Za-z_:][A-Za-z0-9_:]*$/, "an alert name"),
    z.url({ protocol: /^https?$/ }),
  ).default({}),
}).prefault({});
export type AlertsConfig = z.infer<typeof alertsSchema>;

// --- scheduled jobs, the daily digest, the checklist and retention (issue 8: jobs/) ---

/** A croner pattern: 5 fields (minute precision) or 6 (with seconds), or a nickname such as @daily. */
const cronPattern = z.string().min(1).refine((p) => {
  try {
    new Cron(p, { paused: true });
    return true;
  } catch {
    return false;
  }
}, 'a cron pattern such as "0 9 * * *" (5 fields, or 6 with seconds first)');

/** An IANA time zone name, checked against the runtime's time-zone data. */
const timeZone = z.string().refine((tz) => {
  try {
    new Intl.DateTimeFormat("en", { timeZone: tz });
    return true;
  } catch {
    return false;
  }
}, "an IANA time zone such as UTC or Europe/Berlin");

/** One job's schedule; unset fields keep the job's default (jobs/registry.ts) and `scheduler.timezone`. */
export const jobScheduleSchema = z.strictObject({
  cron: cronPattern.optional(),
  timezone: timeZone.optional(),
  /** Default true (the lag check: `alerts.lag_check.enabled`). */
  enabled: z.boolean().optional(),
});
export type JobScheduleConfig = z.infer<typeof jobScheduleSchema>;

/** How the replicas share the schedules: each run holds a lease in the state database, renewed while it runs. */
export const schedulerSchema = z.strictObject({
  /** Time zone of every schedule that does not name its own. */
  timezone: timeZone.default("UTC"),
  /** A run whose process stops renewing its lease for this long is taken as dead; the next slot proceeds. */
  lease_seconds: z.number().int().min(2).max(3600).default(60),
  /** How long `stop()` waits for running jobs before it marks them interrupted. */
  stop_grace_seconds: z.number().int().min(0).max(600).default(10),
}).prefault({});

/** The daily digest: limits of each check and the autovacuum judgement. */
export const digestSchema = z.strictObject({
  /** Each check of each target gets this long; a slower one says "could not check: timed out". */
  check_timeout_seconds: z.number().min(1).max(120).default(10),
  /** Top slow queries per target since the previous digest. */
  slow_queries: z.number().int().min(1).max(20).default(5),
  /** Up to this many targets are shown in the message itself; with more, details go to its thread. */
  inline_targets: z.number().int().min(1).max(10).default(10),
  /** A credential this many days before its maximum age is a warning. */
  credential_warning_days: z.number().int().min(0).max(365).default(14),
  vacuum: z.strictObject({
    /** A table with dead tuples not vacuumed (manually or by autovacuum) for this long is a warning. */
    stale_days: z.number().int().min(1).max(365).default(7),
    /** Tables with fewer dead tuples are never reported (small tables churn without harm). */
    min_dead_tuples: z.number().int().min(0).default(1000),
    dead_ratio_warning: z.number().min(0).max(1).default(0.2),
    dead_ratio_critical: z.number().min(0).max(1).default(0.5),
  }).prefault({}),
}).prefault({});
export type DigestConfig = z.infer<typeof digestSchema>;

/** A key an older release accepted: its presence is an error that says what replaced it. */
function removedKey(message: string) {
  return z.unknown().optional().refine((v) => v === undefined, message);
}

/** The seed's checklist: what its live evaluation compares against. */
export const checklistSchema = z.strictObject({
  /** Kong's Admin API; when set, "WAF rules deployed" reads its plugins instead of asking for an attestation. */
  kong_admin_url: z.url().optional(),
  /** The seed's Kong plugins: rate-limiting at most this many requests a minute... */
  kong_rate_limit_per_minute: z.number().int().positive().default(100),
  /** ...and ip-restriction allowing only these networks. */
  kong_ip_allow: z.array(z.string().min(1)).default(["10.0.0.0/8", "192.168.0.0/16"]),
  /** "Backup schedule configured and tested": a passing restore test at most this many days old. */
  restore_test_within_days: z.number().int().min(1).max(366).default(31),
  /** "Monitoring enabled": an Alertmanager webhook received at most this many days ago. */
  alert_webhook_within_days: z.number().int().min(1).max(366).default(7),
  /** An operator's attestation (WAF, encryption at rest) must be renewed after this many days. */
  attestation_valid_days: z.number().int().min(1).max(3650).default(365),
  /** "Update security patches promptly": each server's version against PostgreSQL's versions feed. */
  postgres_versions: postgresVersionsSchema,
  // Replaced by postgres_versions (issue 19); refused with a pointer rather than as an unknown key.
  releases: removedKey("replaced by checklist.postgres_versions (PostgreSQL's versions feed): remove it"),
  release_info_max_age_days: removedKey("replaced by checklist.postgres_versions: remove it"),
}).prefault({});
export type ChecklistConfig = z.infer<typeof checklistSchema>;

/** What the cleanup job keeps. */
export const retentionSchema = z.strictObject({
  /** Job-run history (`/bisman jobs`, the checklist's evidence) is pruned beyond this many days. */
  job_runs_days: z.number().int().min(7).max(3650).default(90),
  /**
   * When set, audit_logs_dml rows older than `older_than_days` are written to a file in `dir`, read back and
   * verified, and only then deleted. Unset: nothing is ever deleted from audit_logs_dml.
   */
  audit_archive: z.strictObject({
    older_than_days: z.number().int().min(30).max(3650).default(365),
    dir: z.string().regex(/^\/[^\0]*$/, "an absolute folder path"),
    /** Targets to archive (default: every target). */
    targets: z.array(identifier).optional(),
    /** Rows per file and per delete transaction. */
    batch_rows: z.number().int().min(100).max(1_000_000).default(50_000),
    /**
     * Durable storage beyond `dir` (an object store, a backup host): `store_command` copies one archive file
     * there (`{file}`: its path in dir, `{name}`: its file name) and `fetch_command` prints it back from there
     * (`{name}`). Rows are deleted only once the file read back from there holds exactly the archived rows.
     * Without them, `dir` itself is the destination (put it on durable storage), read back from disk.
     */
    store_command: z.array(z.string().min(1).max(500)).min(1).max(30).optional(),
    fetch_command: z.array(z.string().min(1).max(500)).min(1).max(30).optional(),
    /** Environment variables the two commands get besides PATH and HOME (their credentials' names). */
    command_env: z.array(
      z.string().regex(/^[A-Z_][A-Z0-9_]{0,63}$/, "an environment variable name").refine(
        (n) => !/^(SLACK_|VAULT_|DATABASE_|BISMAN_|ALERTS_TOKEN$)/.test(n),
        "the bot's own secrets never go to a command",
      ),
    ).max(20).default([]),
  }).optional(),
}).prefault({});
export type RetentionConfig = z.infer<typeof retentionSchema>;

// --- everyday use (issue 11): what the bot never shows of row data and statement text ---

/**
 * Columns whose values are replaced by `mark` wherever row data is shown or exported (`/bisman audit` old
 * and new values, its CSV). A column is sensitive when its name contains one of these, case-insensitively.
 */
export const DEFAULT_SENSITIVE_COLUMNS = [
  "password",
  "passwd",
  "token",
  "secret",
  "api_key",
  "iban",
  "card_number",
  "cvv",
];

export const redactionSchema = z.strictObject({
  sensitive_columns: z.array(z.string().regex(/^[A-Za-z0-9_]{2,63}$/, "a column name or part of one"))
    .default(DEFAULT_SENSITIVE_COLUMNS),
  mark: z.string().min(1).max(40).default("[redacted]"),
  /**
   * Numeric literals in statement text the bot shows (slow queries, sessions, audit rows): `mask` (default)
   * replaces them with `?` like string literals; `keep` shows numbers of fewer than 12 digits (longer ones,
   * which may be card or account numbers, are masked anyway). String literals, comments and passwords are
   * always masked (core/statement_mask.ts).
   */
  statement_numbers: z.enum(["mask", "keep"], { error: 'either "mask" or "keep"' }).default("mask"),
}).prefault({});

/** The bot's own audit log: where its anchors go besides Slack. */
export const auditLogSchema = z.strictObject({
  /**
   * A witness the bot can add anchors to but not change afterwards: a KV v2 folder in Vault where each anchor
   * is a new entry written with check-and-set 0, under a policy granting only `create` and `read` on
   * `<mount>/data/<path>/*` and `list` on `<mount>/metadata/<path>/*` (no update, delete or destroy).
   */
  witness: z.strictObject({
    vault_path: z.string().regex(
      /^[A-Za-z0-9_.-]+(\/[A-Za-z0-9_.-]+)*$/,
      "a KV v2 folder such as bisman/audit-anchors",
    ),
    mount: z.string().regex(/^[A-Za-z0-9_.-]+(\/[A-Za-z0-9_.-]+)*$/).default("secret"),
  }).nullish(),
  /**
   * How many of the log's first rows were written before BISMAN_SIGNING_KEY was set, and so carry no MAC
   * (0 for a log the bot always keyed). Kept here, outside the state database: every later row without a MAC
   * fails verification, so stripping the MACs and recomputing the plain hashes from row 1 is named.
   */
  unkeyed_rows: z.number().int().min(0).default(0),
}).prefault({});

export const configSchema = z.strictObject({
  workspace: z.strictObject({
    team_id: z.string().regex(/^T[A-Z0-9]{2,}$/, "a Slack team ID such as T012ABCDEF"),
    enterprise_id: z.string().regex(/^E[A-Z0-9]{2,}$/).optional(),
  }),
  slack: z.strictObject({
    ops_channel: slackChannelId,
    command_channels: z.array(slackChannelId).default([]),
  }),
  access: z.strictObject({
    operators: principalsSchema,
    approvers: principalsSchema,
    /**
     * Break-glass CLI (`deno task ops`): PostgreSQL login on the state database -> Slack user ID. The bot runs
     * the CLI's commands as that person, with their operator and approver rights (never approving their own
     * request); logins not listed may not use it.
     */
    cli_operators: z.record(cliLogin, slackUserId).default({}),
    /**
     * Break-glass CLI logins that sign their commands (core/cli_signature.ts): login -> Ed25519 public key
     * (the base64 body of its PEM). A superuser of the state database can submit as any login; it cannot
     * sign as one listed here. `cli_require_keys` makes every CLI login sign.
     */
    cli_keys: z.record(
      cliLogin,
      z.string().max(200).refine((k) => {
        try {
          parsePublicKey(k);
          return true;
        } catch {
          return false;
        }
      }, "an Ed25519 public key: the base64 line of `openssl pkey -in key.pem -pubout`"),
    ).default({}),
    cli_require_keys: z.boolean().default(false),
  }),
  policies: z.record(z.string().regex(/^[a-z][a-z_-]*$/), policySchema).default({}),
  targets: z.record(identifier, targetSchema).refine((t) => Object.keys(t).length > 0, "at least one target"),
  default_target: identifier.optional(),
  thresholds: thresholdsSchema,
  alerts: alertsSchema,
  // Jobs (issue 8): per-job schedules by job name; see jobs/registry.ts for the names and defaults.
  schedules: z.record(z.string().regex(/^[a-z][a-z0-9_]{0,40}$/, "a job name"), jobScheduleSchema).default(
    {},
  ),
  scheduler: schedulerSchema,
  digest: digestSchema,
  checklist: checklistSchema,
  /** The in-cluster Kubernetes API (NetworkPolicies); used only where a target names network_policy. */
  kubernetes: kubernetesSchema,
  retention: retentionSchema,
  redaction: redactionSchema,
  audit_log: auditLogSchema,
});
export type Config = z.infer<typeof configSchema>;

/** A config file that failed validation; `problems` has one line per bad key. */
export class ConfigError extends Error {
  constructor(readonly file: string, readonly problems: string[]) {
    super(`Invalid config ${file}:\n${problems.map((p) => `  - ${p}`).join("\n")}`);
    this.name = "ConfigError";
  }
}

function pathOf(path: readonly PropertyKey[]): string {
  return path.length ? path.map(String).join(".") : "(top level)";
}

/**
 * Validates a parsed YAML document.
 * @throws {ConfigError} naming every bad key and what was expected
 * @example
 * parseConfig({ workspace: { team_id: "T1" } }, "x.yaml"); // throws ConfigError "slack: expected object..."
 */
export function parseConfig(doc: unknown, file = "<config>"): Config {
  // zod's records drop a "__proto__" key without a word: refuse it by name instead.
  const proto = protoKeys(doc);
  if (proto.length) {
    throw new ConfigError(
      file,
      proto.map((p) => `${p}: "__proto__" cannot be used as a name`),
    );
  }
  const result = configSchema.safeParse(doc);
  if (!result.success) {
    throw new ConfigError(file, result.error.issues.map((i) => `${pathOf(i.path)}: ${i.message}`));
  }
  const config = result.data;
  const problems: string[] = [];
  if (config.default_target && !own(config.targets, config.default_target)) {
    problems.push(
      `default_target: "${config.default_target}" is not one of targets (${
        Object.keys(config.targets).join(", ")
      })`,
    );
  }
  for (const [name, t] of Object.entries(config.targets)) {
    const conns = [
      ["primary", t.primary] as const,
      ...t.replicas.map((r, i) => [`replicas.${i}`, r] as const),
      ...(t.restore_test?.server ? [["restore_test.server", t.restore_test.server] as const] : []),
    ];
    for (const [where, c] of conns) {
      if (c.password_env && c.vault) {
        problems.push(`targets.${name}.${where}: give password_env or vault, not both`);
      }
    }
    const names = new Set<string>();
    t.replicas.forEach((r, i) => {
      if (names.has(r.name)) problems.push(`targets.${name}.replicas.${i}.name: "${r.name}" is used twice`);
      names.add(r.name);
    });
    const rt = t.restore_test;
    if (rt && !t.backups?.dump_folder) {
      problems.push(`targets.${name}.restore_test: needs backups.dump_folder (the dumps it restores)`);
    }
    if (rt?.compare_with === "replica" && !t.replicas.length) {
      problems.push(
        `targets.${name}.restore_test.compare_with: "replica" needs a replica in targets.${name}.replicas`,
      );
    }
    const perMember = [
      ["search.server_values", t.central_logging?.search?.server_values],
      ["log_directories", t.central_logging?.log_directories],
    ] as const;
    for (const [key, map] of perMember) {
      for (const member of Object.keys(map ?? {})) {
        if (member !== "primary" && !names.has(member)) {
          problems.push(
            `targets.${name}.central_logging.${key}.${member}: not primary or one of its replicas`,
          );
        }
      }
    }
    if (rt?.compare_replica && !names.has(rt.compare_replica)) {
      problems.push(
        `targets.${name}.restore_test.compare_replica: "${rt.compare_replica}" is not one of its replicas`,
      );
    }
  }
  const archive = config.retention.audit_archive;
  if (archive && !archive.store_command !== !archive.fetch_command) {
    problems.push("retention.audit_archive: give store_command and fetch_command together, or neither");
  }
  for (const t of config.retention.audit_archive?.targets ?? []) {
    if (!own(config.targets, t)) {
      problems.push(`retention.audit_archive.targets: "${t}" is not one of targets`);
    }
  }
  if (problems.length) throw new ConfigError(file, problems);
  return config;
}

/**
 * Reads and validates the YAML file at `path`.
 * @throws {ConfigError} when the file is missing, is not YAML, or does not validate
 */
export async function loadConfig(path: string): Promise<Config> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (err) {
    throw new ConfigError(path, [`cannot read the file: ${err instanceof Error ? err.message : err}`]);
  }
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (err) {
    throw new ConfigError(path, [
      `not valid YAML: ${err instanceof Error ? err.message.split("\n")[0] : err}`,
    ]);
  }
  return parseConfig(doc, path);
}

/** The built-in defaults of a policy when neither the action nor `policies.default` sets a field. */
const builtInPolicy = {
  approvals: 1,
  expiry_minutes: 15,
  typed_confirmation: false,
  allowed_during_freeze: false,
} as const;

/** Per-action overrides built in because the seed treats them as higher risk. */
const builtInActionPolicy: Record<string, PolicyConfig> = {
  promote: { approvals: 2 },
  promote_replica: { approvals: 2 },
};

/** Operations whose policy may also be written under the name people say (`policies.promote`). */
const policyAliases: Record<string, string> = {
  promote_replica: "promote",
  restore_test_gated: "restore_test",
};

/** The effective policy of one action, every field resolved. */
export interface EffectivePolicy {
  approvals: number;
  approvers: Principals;
  expiry_minutes: number;
  typed_confirmation: boolean;
  allowed_during_freeze: boolean;
  channels: string[] | undefined;
  /** Refuse unless the target's last passing restore test is at most this many days old (ops/restore_history.ts). */
  require_restore_test_within_days: number | undefined;
}

/** Resolves `policies.<action>` over `policies.default` over the built-in defaults. */
export function policyFor(config: Config, action: string): EffectivePolicy {
  const alias = own(policyAliases, action);
  const builtIn = own(builtInActionPolicy, action);
  const specific = own(config.policies, action) ?? (alias ? own(config.policies, alias) : undefined) ??
    builtIn ?? {};
  const base = config.policies.default ?? {};
  return {
    approvals: specific.approvals ?? builtIn?.approvals ?? base.approvals ??
      builtInPolicy.approvals,
    approvers: specific.approvers ?? base.approvers ?? config.access.approvers,
    expiry_minutes: specific.expiry_minutes ?? base.expiry_minutes ?? builtInPolicy.expiry_minutes,
    typed_confirmation: specific.typed_confirmation ?? base.typed_confirmation ??
      builtInPolicy.typed_confirmation,
    allowed_during_freeze: specific.allowed_during_freeze ?? base.allowed_during_freeze ??
      builtInPolicy.allowed_during_freeze,
    channels: specific.channels ?? base.channels,
    require_restore_test_within_days: specific.require_restore_test_within_days ??
      base.require_restore_test_within_days,
  };
}

/** The target a command means when it names none: `default_target`, else the only one, else an error. */
export function resolveTargetName(config: Config, requested?: string): string | undefined {
  if (requested) return own(config.targets, requested) ? requested : undefined;
  if (config.default_target) return config.default_target;
  const names = Object.keys(config.targets);
  return names.length === 1 ? names[0] : undefined;
}
