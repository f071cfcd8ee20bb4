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

export const seconds = (d: Date) => d.getTime() / 1000;

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

export const CREDENTIAL_HELP =
  "When each rotatable role's current password was written to Vault (Unix time; " +
  "when Vault's history is shorter, the oldest version it keeps)";

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
