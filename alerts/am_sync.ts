/**
 * Resolves alert threads whose alert Alertmanager no longer holds.
 *
 * Alertmanager does not notify the resolve of a silenced alert: its notification pipeline mutes an alert whose
 * labels a silence matches, resolved or not, so a thread silenced from Slack stayed FIRING (and so did the
 * digest) after the alert had resolved. The webhook alone cannot fix that, so the bot asks: `GET
 * /api/v2/alerts` lists every alert Alertmanager holds that has not resolved, silenced and inhibited ones
 * included (api/v2/api.go `alertFilter` drops an alert whose endsAt has passed). A firing thread of
 * Alertmanager's whose fingerprint is not in that list has resolved; it is ingested as resolved, like a
 * webhook's resolve, so its thread and the digest follow.
 *
 * Absence proves nothing while Alertmanager's memory is incomplete: right after it started (without its data
 * directory) it holds only what Prometheus re-sent since. Each Alertmanager is therefore asked only once its
 * `/api/v2/status` uptime passes `minUptimeMs`.
 *
 * API: https://github.com/prometheus/alertmanager/blob/main/api/v2/openapi.yaml
 *
 * @module
 */

import { z } from "zod";
import type { AppDeps } from "../core/deps.ts";
import type { IncomingAlert, IngestResult } from "../core/alert_sink.ts";
import { alertmanagerBase } from "./silences.ts";

/** How long an Alertmanager call may take (ms). */
const AM_TIMEOUT_MS = 10_000;

/** Alertmanager must have been up this long before an absence counts (default; tests pass 0). */
export const DEFAULT_MIN_UPTIME_MS = 5 * 60_000;

/** What one sync found. */
export interface AmSyncResult {
  /** Firing Alertmanager threads compared. */
  checked: number;
  /** Fingerprints resolved because Alertmanager no longer holds them. */
  resolved: string[];
  /** Alertmanagers not asked, and why (unreachable, just started, no URL). */
  skipped: string[];
}

const alertsSchema = z.array(z.object({ fingerprint: z.string() }).passthrough());
const statusSchema = z.object({ uptime: z.string() }).passthrough();

async function getJson(url: string): Promise<unknown> {
  const res = await fetch(url, { signal: AbortSignal.timeout(AM_TIMEOUT_MS) });
  if (!res.ok) {
    await res.body?.cancel();
    throw new Error(`HTTP ${res.status}`);
  }
  return await res.json();
}

/**
 * Compares every firing Alertmanager thread with the alerts Alertmanager holds and ingests a resolve for each
 * one it no longer holds. Never throws: an Alertmanager that cannot be asked is skipped (and named).
 */
export async function syncWithAlertmanager(
  deps: Pick<AppDeps, "state" | "config" | "log" | "now" | "audit">,
  ingest: (alerts: IncomingAlert[], source: "alertmanager") => Promise<IngestResult>,
  opts: { minUptimeMs?: number } = {},
): Promise<AmSyncResult> {
  const rows = await deps.state<
    {
      fingerprint: string;
      labels: Record<string, string>;
      annotations: Record<string, string>;
      starts_at: Date | null;
      group_key: string;
      external_url: string | null;
      generator_url: string | null;
    }[]
  >`
    select fingerprint, labels, annotations, starts_at, group_key, external_url, generator_url
      from bisman_ops.alert_state where source = 'alertmanager' and status = 'firing'`;
  const result: AmSyncResult = { checked: rows.length, resolved: [], skipped: [] };
  if (!rows.length) return result;
  const byBase = new Map<string, (typeof rows)[number][]>();
  for (const r of rows) {
    let base: string;
    try {
      base = alertmanagerBase(deps.config, r.external_url);
    } catch {
      result.skipped.push(`${r.fingerprint}: no Alertmanager URL`);
      continue;
    }
    byBase.set(base, [...(byBase.get(base) ?? []), r]);
  }
  const minUptime = opts.minUptimeMs ?? DEFAULT_MIN_UPTIME_MS;
  const now = deps.now();
  const resolved: IncomingAlert[] = [];
  for (const [base, mine] of byBase) {
    let held: Set<string>;
    try {
      const status = statusSchema.parse(await getJson(`${base}/api/v2/status`));
      const upMs = now.getTime() - Date.parse(status.uptime);
      if (!(upMs >= minUptime)) {
        result.skipped.push(`${base}: up ${Math.round(upMs / 1000)} s only, its alerts may be incomplete`);
        continue;
      }
      // Defaults: active, silenced, inhibited and unprocessed alerts alike; resolved ones are never listed.
      const alerts = alertsSchema.parse(await getJson(`${base}/api/v2/alerts`));
      held = new Set(alerts.map((a) => a.fingerprint));
    } catch (err) {
      deps.log.warn("could not compare alert threads with Alertmanager", { alertmanager: base, error: err });
      result.skipped.push(`${base}: ${err instanceof Error ? err.message : String(err)}`);
      continue;
    }
    for (const r of mine) {
      if (held.has(r.fingerprint)) continue;
      resolved.push({
        fingerprint: r.fingerprint,
        status: "resolved",
        labels: r.labels,
        annotations: r.annotations,
        startsAt: r.starts_at ? new Date(r.starts_at).toISOString() : now.toISOString(),
        endsAt: now.toISOString(),
        generatorURL: r.generator_url ?? undefined,
        externalURL: base,
        groupKey: r.group_key,
      });
      result.resolved.push(r.fingerprint);
    }
  }
  if (resolved.length) {
    await ingest(resolved, "alertmanager");
    await deps.audit.append({
      actor: "bisman-ops",
      action: "alerts.resolved_from_api",
      outcome: "ok",
      details: {
        fingerprints: result.resolved,
        why: "Alertmanager no longer holds these alerts and sent no resolve (silenced or inhibited)",
      },
    }).catch((err) => deps.log.error("audit append failed", { error: err }));
  }
  return result;
}
