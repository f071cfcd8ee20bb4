/**
 * The runbook's health as gauges, set where the checks run: every caller of a check (a command, the digest,
 * a scheduled job, the checklist) refreshes them, on the replica that ran it. Values that live in the state
 * database (pending approvals, open alert threads, the last passing restore test) are read at scrape time
 * instead (http/runbook_metrics.ts), so every replica reports the same.
 *
 * Times are exported as Unix timestamps, not ages: an age set when a check ran would stand still until the
 * next check, while `time() - <timestamp>` in a rule is always current
 * (https://prometheus.io/docs/practices/instrumentation/#timestamps-not-time-since).
 *
 * Labels are bounded: `target` and `replica`/`role` come from the config, `source` is one of three names.
 * Nothing here is a secret.
 *
 * @module
 */

import type { Metrics } from "../core/metrics.ts";
import type { BackupStatusReport } from "./backup_status.ts";
import type { LagReport } from "./replication_lag.ts";
import type { CredentialAge } from "./credential_ages.ts";

/** The names of the runbook's series (deploy/prometheus/rules.yaml reads them). */
export const RUNBOOK_SERIES = {
  backupNewest: "bisman_backup_newest_timestamp_seconds",
  backupChecked: "bisman_backup_checked_timestamp_seconds",
  credentialChanged: "bisman_credential_changed_timestamp_seconds",
  lagBytes: "bisman_replication_lag_bytes",
  lagSeconds: "bisman_replication_lag_seconds",
  lagChecked: "bisman_replication_lag_checked_timestamp_seconds",
  auditOk: "bisman_audit_chain_ok",
  auditVerifiedSeq: "bisman_audit_chain_verified_seq",
  auditVerifiedAt: "bisman_audit_chain_verified_timestamp_seconds",
} as const;

/** Backup sources, as the `source` label names them (the same words as the findings' `source`). */
export type BackupSource = "dump_folder" | "pgbackrest" | "wal_archiving";

const seconds = (d: Date) => d.getTime() / 1000;

/** Sets (or, where nothing is found, removes) the newest backup's time of one source. */
export function recordBackupTime(
  metrics: Metrics | undefined,
  target: string,
  source: BackupSource,
  at: Date | undefined,
): void {
  if (!metrics) return;
  const labels = { target, source };
  if (at && !Number.isNaN(at.getTime())) {
    metrics.set(
      RUNBOOK_SERIES.backupNewest,
      labels,
      seconds(at),
      "When the newest backup of each source was taken, as the bot last saw it (Unix time; a WAL archive: " +
        "the last segment archived)",
    );
  } else metrics.remove(RUNBOOK_SERIES.backupNewest, labels);
}

/** After a backup check: the newest backup of each configured source, and when the check ran. */
export function recordBackupStatus(metrics: Metrics | undefined, r: BackupStatusReport): void {
  if (!metrics) return;
  if (r.dumpFolder) {
    const n = r.dumpFolder.newest;
    recordBackupTime(metrics, r.target, "dump_folder", n ? n.createdAt ?? n.mtime : undefined);
  }
  if (r.pgbackrest) {
    const n = r.pgbackrest.newest;
    recordBackupTime(metrics, r.target, "pgbackrest", n && !n.error ? n.stop : undefined);
  }
  if (r.archiver) recordBackupTime(metrics, r.target, "wal_archiving", r.archiver.lastArchivedAt);
  metrics.set(
    RUNBOOK_SERIES.backupChecked,
    { target: r.target },
    seconds(new Date(r.checkedAt)),
    "When the bot last checked a target's backups (Unix time)",
  );
}

/** After a lag check: bytes and seconds behind per replica; a replica that could not be measured has none. */
export function recordReplicationLag(metrics: Metrics | undefined, r: LagReport): void {
  if (!metrics) return;
  for (const x of r.replicas) {
    const labels = { target: r.target, replica: x.replica };
    if (x.lagBytes !== null) {
      metrics.set(RUNBOOK_SERIES.lagBytes, labels, x.lagBytes, "Replication lag in bytes (last check)");
    } else metrics.remove(RUNBOOK_SERIES.lagBytes, labels);
    if (x.lagSeconds !== null) {
      metrics.set(RUNBOOK_SERIES.lagSeconds, labels, x.lagSeconds, "Replication lag in seconds (last check)");
    } else metrics.remove(RUNBOOK_SERIES.lagSeconds, labels);
  }
  metrics.set(
    RUNBOOK_SERIES.lagChecked,
    { target: r.target },
    seconds(new Date(r.checkedAt)),
    "When the bot last measured a target's replication lag (Unix time)",
  );
}

const CREDENTIAL_HELP = "When each rotatable role's current password was written to Vault (Unix time; " +
  "when Vault's history is shorter, the oldest version it keeps)";

/** After a credential-age check: when each role's password was set; a role whose age is unknown has none. */
export function recordCredentialAges(metrics: Metrics | undefined, ages: CredentialAge[]): void {
  if (!metrics) return;
  for (const a of ages) {
    const labels = { target: a.target, role: a.role };
    if (a.changedAt && !a.error) {
      metrics.set(RUNBOOK_SERIES.credentialChanged, labels, Date.parse(a.changedAt) / 1000, CREDENTIAL_HELP);
    } else metrics.remove(RUNBOOK_SERIES.credentialChanged, labels);
  }
}

/** After a rotation: the roles whose new password was committed. */
export function recordRotation(
  metrics: Metrics | undefined,
  target: string,
  rotated: { role: string; at: Date }[],
): void {
  if (!metrics) return;
  for (const r of rotated) {
    metrics.set(RUNBOOK_SERIES.credentialChanged, { target, role: r.role }, seconds(r.at), CREDENTIAL_HELP);
  }
}

/** After the audit chain was walked: intact or not, its head, and when. */
export function recordAuditVerify(
  metrics: Metrics | undefined,
  v: { ok: boolean; head?: { seq: number } },
  at: Date,
): void {
  if (!metrics) return;
  metrics.set(
    RUNBOOK_SERIES.auditOk,
    {},
    v.ok ? 1 : 0,
    "1 when the last walk of the bot's audit chain found it intact, 0 when it found a bad row",
  );
  metrics.set(
    RUNBOOK_SERIES.auditVerifiedAt,
    {},
    seconds(at),
    "When the bot last walked its audit chain (Unix time)",
  );
  if (v.ok) {
    metrics.set(
      RUNBOOK_SERIES.auditVerifiedSeq,
      {},
      v.head?.seq ?? 0,
      "The newest audit-log row the last intact walk of the chain reached",
    );
  }
}
