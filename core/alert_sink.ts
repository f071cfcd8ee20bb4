/**
 * Where alerts go: the Alertmanager webhook and the scheduled lag check hand alerts to the alert threads
 * (alerts/threads.ts) through this interface, so a job never imports the Slack-facing thread keeper; bot.ts
 * passes the one it built.
 *
 * @module
 */

/** An alert as it enters: from Alertmanager's payload or from the bot's own checks. */
export interface IncomingAlert {
  fingerprint: string;
  status: "firing" | "resolved";
  labels: Record<string, string>;
  annotations: Record<string, string>;
  startsAt: string | null;
  endsAt: string | null;
  generatorURL?: string;
  groupKey: string;
  /** Alertmanager's own URL as the delivery named it (silences use it when the config names none). */
  externalURL?: string;
}

/** A firing alert as stored. */
export interface FiringAlert {
  fingerprint: string;
  labels: Record<string, string>;
  annotations: Record<string, string>;
  startsAt: string | null;
}

/** The result of one ingest. */
export interface IngestResult {
  received: number;
  /** Alerts that changed and were queued for Slack. */
  queued: number;
}

/** The alert threads as jobs see them: record alerts that changed, and list those still firing. */
export interface AlertSink {
  ingest(alerts: IncomingAlert[], source: "alertmanager" | "lag_check"): Promise<IngestResult>;
  firing(source: "alertmanager" | "lag_check"): Promise<FiringAlert[]>;
}
