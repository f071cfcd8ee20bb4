/**
 * Alertmanager silences for alert threads: "Silence 1 h / 4 h / 24 h" creates a real silence through
 * Alertmanager's API v2 (`POST /api/v2/silences`) whose matchers are the alert's labels, created by the Slack
 * user who clicked, with a comment linking the thread; "Expire silence" removes it
 * (`DELETE /api/v2/silence/<id>`). Silences go only to the configured `alerts.alertmanager_url`: the
 * `externalURL` an alert carries is written by whoever can post to `POST /alerts`, and the bot would otherwise
 * send the clicker's name, the alert's labels and the thread's link to any server it names (and report a
 * silence that silences nothing). An externalURL that matches the configured URL is that Alertmanager; any
 * other is ignored, and the silence still goes to the configured one (the peers of an HA Alertmanager share
 * their silences). Without the setting, the button answers why it cannot silence.
 *
 * API: https://github.com/prometheus/alertmanager/blob/main/api/v2/openapi.yaml
 *
 * @module
 */

import { z } from "zod";
import type { Sql } from "postgres";
import type { Config } from "../core/config.ts";
import { NotConfigured, OpsError } from "../core/errors.ts";

/** One Alertmanager matcher (v2). */
export interface Matcher {
  name: string;
  value: string;
  isRegex: boolean;
  isEqual: boolean;
}

/** What a silence is made of. */
export interface SilenceSpec {
  matchers: Matcher[];
  startsAt: Date;
  endsAt: Date;
  createdBy: string;
  comment: string;
}

/** How long an Alertmanager call may take (ms). */
const AM_TIMEOUT_MS = 10_000;

/**
 * The equality matchers that select exactly this alert: one per label (Alertmanager identifies an alert by
 * its label set, so all of them together match it and nothing broader).
 * @example
 * matchersOf({ alertname: "HighReplicationLag", instance: "db1:5432" });
 * // [{ name: "alertname", value: "HighReplicationLag", isRegex: false, isEqual: true }, { name: "instance", ... }]
 */
export function matchersOf(labels: Record<string, string>): Matcher[] {
  return Object.keys(labels).sort().map((name) => ({
    name,
    value: labels[name],
    isRegex: false,
    isEqual: true,
  }));
}

/**
 * A URL as the bot compares Alertmanager addresses: scheme, host and port, and the path without trailing
 * slashes (`http://am:9093/` and `http://AM:9093` are the same); undefined for anything but http(s).
 * @example
 * normalUrl("HTTP://Am.Local:9093/alertmanager/"); // "http://am.local:9093/alertmanager"
 */
export function normalUrl(url: string | null | undefined): string | undefined {
  if (!url) return undefined;
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return undefined;
  }
  if (u.protocol !== "http:" && u.protocol !== "https:") return undefined;
  if (u.username || u.password || u.search || u.hash) return undefined;
  return `${u.origin}${u.pathname.replace(/\/+$/, "")}`;
}

/**
 * The Alertmanager that silences an alert: the configured `alerts.alertmanager_url`, whatever URL the alert
 * names (an externalURL equal to it is the same server; any other is not trusted).
 * @throws {NotConfigured} when no Alertmanager is configured
 * @example
 * alertmanagerBase(configWith("http://am:9093"), "http://elsewhere.example"); // "http://am:9093"
 */
export function alertmanagerBase(config: Config, externalUrl: string | null | undefined): string {
  const configured = normalUrl(config.alerts.alertmanager_url);
  if (configured) return configured;
  throw new NotConfigured(
    normalUrl(externalUrl)
      ? "Cannot silence: no Alertmanager is configured (alerts.alertmanager_url). The alert names its own " +
        "externalURL, but anyone who can post to /alerts writes that, so the bot does not send silences there"
      : "Cannot silence: no Alertmanager is configured: set alerts.alertmanager_url",
  );
}

/** True when an alert's externalURL is the configured Alertmanager (for the audit record). */
export function fromConfiguredAlertmanager(config: Config, externalUrl: string | null | undefined): boolean {
  const configured = normalUrl(config.alerts.alertmanager_url);
  return configured !== undefined && normalUrl(externalUrl) === configured;
}

async function call(base: string, path: string, init: RequestInit): Promise<Response> {
  try {
    return await fetch(`${base}${path}`, { ...init, signal: AbortSignal.timeout(AM_TIMEOUT_MS) });
  } catch (err) {
    throw new OpsError(
      "unreachable",
      `Alertmanager at ${base} does not answer: ${err instanceof Error ? err.message.split("\n")[0] : err}`,
      { cause: err },
    );
  }
}

async function failure(res: Response, what: string): Promise<OpsError> {
  const text = (await res.text().catch(() => "")).replace(/\s+/g, " ").slice(0, 200);
  return new OpsError("step_failed", `Alertmanager refused to ${what}: HTTP ${res.status} ${text}`);
}

/**
 * Creates a silence. @returns its ID
 * @throws {OpsError} `unreachable` or `step_failed` with Alertmanager's answer
 */
export async function createSilence(base: string, s: SilenceSpec): Promise<string> {
  const res = await call(base, "/api/v2/silences", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({
      matchers: s.matchers,
      startsAt: s.startsAt.toISOString(),
      endsAt: s.endsAt.toISOString(),
      createdBy: s.createdBy,
      comment: s.comment,
    }),
  });
  if (!res.ok) throw await failure(res, "create the silence");
  const parsed = z.object({ silenceID: z.string().min(1).max(100) }).safeParse(await res.json());
  if (!parsed.success) throw new OpsError("step_failed", "Alertmanager answered without a silenceID");
  return parsed.data.silenceID;
}

/**
 * Expires a silence. A silence Alertmanager no longer knows (already expired, or garbage-collected) counts as
 * expired.
 * @throws {OpsError} `unreachable` or `step_failed`
 */
export async function expireSilence(base: string, id: string): Promise<void> {
  const res = await call(base, `/api/v2/silence/${encodeURIComponent(id)}`, { method: "DELETE" });
  if (res.ok || res.status === 404) {
    await res.body?.cancel();
    return;
  }
  // Alertmanager 0.25 answers 500 "silence ... already expired" for an expired one.
  const text = await res.text().catch(() => "");
  if (/already expired/i.test(text)) return;
  throw new OpsError(
    "step_failed",
    `Alertmanager refused to expire silence ${id}: HTTP ${res.status} ${text.slice(0, 200)}`,
  );
}

// --- the silence of an alert thread, as stored in bisman_ops.alert_state (sql/0006) ---

/** An alert as the thread buttons need it. */
export interface ThreadAlert {
  fingerprint: string;
  alertname: string;
  source: "alertmanager" | "lag_check";
  status: "firing" | "resolved";
  labels: Record<string, string>;
  channel: string;
  threadTs: string | null;
  stormId: number | null;
  externalUrl: string | null;
  owner: string | null;
  silenceId: string | null;
  silenceUntil: Date | null;
}

/** One alert of the threads, or undefined. */
export async function readThreadAlert(sql: Sql, fingerprint: string): Promise<ThreadAlert | undefined> {
  const [r] = await sql<
    {
      fingerprint: string;
      alertname: string;
      source: "alertmanager" | "lag_check";
      status: "firing" | "resolved";
      labels: Record<string, string>;
      channel: string;
      thread_ts: string | null;
      storm_id: number | null;
      external_url: string | null;
      owner: string | null;
      silence_id: string | null;
      silence_until: Date | null;
    }[]
  >`
    select fingerprint, alertname, source, status, labels, channel, thread_ts, storm_id::int as storm_id,
           external_url, owner, silence_id, silence_until
      from bisman_ops.alert_state where fingerprint = ${fingerprint}`;
  if (!r) return undefined;
  return {
    fingerprint: r.fingerprint,
    alertname: r.alertname,
    source: r.source,
    status: r.status,
    labels: r.labels,
    channel: r.channel,
    threadTs: r.thread_ts,
    stormId: r.storm_id,
    externalUrl: r.external_url,
    owner: r.owner,
    silenceId: r.silence_id,
    silenceUntil: r.silence_until,
  };
}

/**
 * Records the silence of an alert, unless one is recorded already (two clicks racing: the loser expires
 * its own). @returns whether this call recorded it
 */
export async function recordSilence(
  sql: Sql,
  fingerprint: string,
  s: { id: string; until: Date; by: string; now: Date },
): Promise<boolean> {
  const rows = await sql`
    update bisman_ops.alert_state set silence_id = ${s.id}, silence_until = ${s.until}, silenced_by = ${s.by}
     where fingerprint = ${fingerprint} and (silence_id is null or silence_until <= ${s.now})
    returning 1`;
  return rows.length > 0;
}

/** Forgets the silence `id` of an alert. @returns whether it was the recorded one */
export async function clearSilence(sql: Sql, fingerprint: string, id: string): Promise<boolean> {
  const rows = await sql`
    update bisman_ops.alert_state set silence_id = null, silence_until = null, silenced_by = null
     where fingerprint = ${fingerprint} and silence_id = ${id}
    returning 1`;
  return rows.length > 0;
}
