/**
 * Alert threads: one Slack thread per alert fingerprint, kept in the state database (sql/0005_alerts.sql).
 *
 * Two halves, joined by an outbox table:
 * - {@link AlertThreads.ingest} (the webhook, the lag check) writes each alert that changed into `alert_state`
 *   and an `alert_outbox` row in one transaction, and returns at once, so Alertmanager is acknowledged in
 *   milliseconds however busy Slack is. Alertmanager re-sends every alert of a group on each notification: an
 *   alert whose status, labels, annotations and start time did not change queues nothing.
 * - A poster per channel (alerts/poster.ts) drains the outbox in id order. Only one poster per channel runs across all bot
 *   replicas (a session advisory lock), so nothing is posted twice and a thread's messages keep their order.
 *   It paces itself to `alerts.slack_per_channel_per_second` and, on a 429, waits the Retry-After Slack asked
 *   for and tries the same call again: nothing is dropped.
 *
 * The first notification of a fingerprint posts the parent message (with its runbook buttons); later ones
 * edit it and, when it resolves, reply in the thread. An alert that fires again after it resolved is a new
 * episode: it opens a fresh thread at the bottom of the channel, where people look, and a reply in the old
 * thread says so (editing a parent far up the channel would go unseen, and the old owner and silence
 * belonged to the old episode). A notification whose alert name differs from what the fingerprint held is a
 * different alert and never writes into the old thread. A resolve Alertmanager never sends (it does not notify
 * the resolve of a silenced alert) is found by asking its API (alerts/am_sync.ts). In a storm (at least
 * `alerts.storm_group_at` new alerts of one Alertmanager group waiting at once, or any new alert of a group
 * that has an open storm) the alerts are listed in one parent message per group, edited as they change, with
 * each alert's detail in its thread, twenty alerts per reply: a storm of 500 alerts costs about a hundred
 * messages, not 500.
 *
 * A crash between a successful Slack call and marking its row done posts that one message again after the
 * restart; everything else is exactly once.
 *
 * @module
 */

import type { WebClient } from "@slack/web-api";
import type { AppDeps } from "../core/deps.ts";
import type { AlertSink, FiringAlert, IncomingAlert, IngestResult } from "../core/alert_sink.ts";

export type { FiringAlert, IncomingAlert, IngestResult };
import { canonicalJson } from "../core/audit.ts";
import type { AlertButtonRef } from "../views/actions.ts";
import type { AlertView } from "../views/alerts.ts";
import type { AlertLookup, AlertLookupResult } from "./buttons.ts";
import { type AlertEvent, AlertPoster, alertViewOf, type AlertViewRow } from "./poster.ts";

export type { AlertEvent };
import { transaction } from "../core/pg_tx.ts";
import { type AmSyncResult, syncWithAlertmanager } from "./am_sync.ts";

// The poster moved to alerts/poster.ts; what this module exported from it still comes from here.
export { STORM_DETAIL_PER_REPLY, threadExtras } from "./poster.ts";

/** Advisory-lock namespace ("alri"): one ingest at a time per channel. */
const INGEST_LOCK_NS = 0x616c7269;

/** Options of the alert threads service. */
export interface AlertThreadsOptions {
  /** The Slack client used for posting; give it `rejectRateLimitedCalls: true` and no retries of its own. */
  slack: WebClient;
  /** How often every channel with pending rows is drained again (ms; default 5000). */
  sweepMs?: number;
  /** How often firing threads are compared with what Alertmanager holds (ms; default 60000; 0: never). */
  alertmanagerSyncMs?: number;
}

async function sha256(text: string): Promise<string> {
  const d = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
  return Array.from(new Uint8Array(d), (b) => b.toString(16).padStart(2, "0")).join("");
}

/** What makes a notification new. endsAt never counts, nor startsAt of a resolved alert (Alertmanager moves it). */
export function contentHash(a: IncomingAlert): Promise<string> {
  return sha256(canonicalJson({
    status: a.status,
    labels: a.labels,
    annotations: a.annotations,
    startsAt: a.status === "firing" ? a.startsAt : null,
  }));
}

/** The event a changed alert makes, from its previous status (none when new). */
function eventOf(previous: "firing" | "resolved" | undefined, next: "firing" | "resolved"): AlertEvent {
  if (next === "resolved") return "resolved";
  if (previous === "resolved") return "refiring";
  return previous === undefined ? "firing" : "updated";
}

/** Alert threads of one bot process: ingest, the per-channel poster, and lookups for buttons. */
export class AlertThreads implements AlertLookup, AlertSink {
  #poster: AlertPoster;
  #sweep?: ReturnType<typeof setInterval>;
  #amSync?: ReturnType<typeof setInterval>;
  #syncing?: Promise<AmSyncResult>;

  constructor(private readonly deps: AppDeps, private readonly opts: AlertThreadsOptions) {
    this.#poster = new AlertPoster(deps, opts.slack);
  }

  /** Slack calls made by the poster, by outcome (for tests, the benchmark and /metrics). */
  get calls(): AlertPoster["calls"] {
    return this.#poster.calls;
  }

  /** The channel alerts go to. */
  get channel(): string {
    return this.deps.config.slack.ops_channel;
  }

  /** Starts the periodic sweep and drains whatever a previous process left in the outbox. */
  start(): void {
    const ms = this.opts.sweepMs ?? 5000;
    this.#sweep = setInterval(() => void this.sweep(), ms);
    Deno.unrefTimer(this.#sweep);
    void this.sweep();
    const syncMs = this.opts.alertmanagerSyncMs ?? 60_000;
    if (syncMs > 0) {
      this.#amSync = setInterval(() => {
        this.syncWithAlertmanager().catch((err) =>
          this.deps.log.warn("alertmanager sync failed", { error: err })
        );
      }, syncMs);
      Deno.unrefTimer(this.#amSync);
    }
  }

  /**
   * Resolves firing threads whose alert Alertmanager no longer holds: it sends no resolve for a silenced
   * alert (alerts/am_sync.ts). One sync at a time per process; the periodic one uses the default uptime guard.
   */
  syncWithAlertmanager(opts: { minUptimeMs?: number } = {}): Promise<AmSyncResult> {
    this.#syncing ??= syncWithAlertmanager(this.deps, (alerts, source) => this.ingest(alerts, source), opts)
      .finally(() => (this.#syncing = undefined));
    return this.#syncing;
  }

  /** Stops posting (a wait for Slack is cut short) and waits for the posters to let go of their locks. */
  async stop(): Promise<void> {
    clearInterval(this.#sweep);
    clearInterval(this.#amSync);
    await this.#syncing?.catch(() => undefined);
    await this.#poster.stop();
  }

  /** Waits until no poster of this process is running (tests and the benchmark). */
  async idle(): Promise<void> {
    await this.#poster.idle();
  }

  /** Outbox rows not yet shown in Slack, in every channel. */
  async pending(): Promise<number> {
    const [r] = await this.deps.state<{ n: number }[]>`
      select count(*)::int as n from bisman_ops.alert_outbox where done_at is null`;
    return r.n;
  }

  /**
   * Records alerts and queues the changed ones for Slack; returns at once (the poster runs in the background).
   * Several alerts of one fingerprint in one call: the last one counts.
   */
  async ingest(alerts: IncomingAlert[], source: "alertmanager" | "lag_check"): Promise<IngestResult> {
    const { state, metrics } = this.deps;
    const channel = this.channel;
    const latest = new Map<string, IncomingAlert>();
    for (const a of alerts) latest.set(a.fingerprint, a);
    const list = [...latest.values()];
    const hashes = await Promise.all(list.map(contentHash));
    const now = this.deps.now();
    const queued = await transaction(state, async (tx) => {
      // Ingests of one channel queue one after the other, so two deliveries of the same new alert cannot both
      // decide it is new.
      await tx`select pg_advisory_xact_lock(${INGEST_LOCK_NS}::int, hashtext(${channel}))`;
      const fps = list.map((a) => a.fingerprint);
      const known = fps.length
        ? await tx<
          { fingerprint: string; status: "firing" | "resolved"; content_hash: string; alertname: string }[]
        >`
            select fingerprint, status, content_hash, alertname from bisman_ops.alert_state
             where fingerprint = any(${fps}::text[])`
        : [];
      const before = new Map(known.map((k) => [k.fingerprint, k]));
      const changed: { a: IncomingAlert; hash: string; event: AlertEvent }[] = [];
      // Fingerprints that now carry another alert name: a different alert, so a thread of its own.
      const renamed: string[] = [];
      list.forEach((a, i) => {
        const prev = before.get(a.fingerprint);
        if (prev && prev.content_hash === hashes[i]) return;
        if (prev && prev.alertname !== (a.labels.alertname ?? "unnamed")) {
          renamed.push(a.fingerprint);
          changed.push({ a, hash: hashes[i], event: a.status === "firing" ? "firing" : "resolved" });
          return;
        }
        // A resolved alert we never saw firing is still shown (as resolved): nothing is dropped.
        if (prev?.status === "resolved" && a.status === "resolved") return;
        changed.push({ a, hash: hashes[i], event: eventOf(prev?.status, a.status) });
      });
      if (!changed.length) return 0;
      const rows = changed.map(({ a, hash }) => ({
        fingerprint: a.fingerprint,
        source,
        channel,
        alertname: a.labels.alertname ?? "unnamed",
        group_key: a.groupKey,
        status: a.status,
        labels: a.labels,
        annotations: a.annotations,
        starts_at: a.startsAt,
        ends_at: a.endsAt,
        generator_url: a.generatorURL ?? null,
        external_url: a.externalURL || null,
        content_hash: hash,
        first_seen_at: now,
        received_at: now,
      }));
      await tx`
        insert into bisman_ops.alert_state ${
        tx(
          rows as never,
          "fingerprint",
          "source",
          "channel",
          "alertname",
          "group_key",
          "status",
          "labels",
          "annotations",
          "starts_at",
          "ends_at",
          "generator_url",
          "external_url",
          "content_hash",
          "first_seen_at",
          "received_at",
        )
      }
        on conflict (fingerprint) do update set
          status = excluded.status, labels = excluded.labels, annotations = excluded.annotations,
          starts_at = excluded.starts_at, ends_at = excluded.ends_at, generator_url = excluded.generator_url,
          external_url = coalesce(excluded.external_url, bisman_ops.alert_state.external_url),
          content_hash = excluded.content_hash, received_at = excluded.received_at,
          group_key = excluded.group_key, alertname = excluded.alertname`;
      if (renamed.length) {
        await tx`
          update bisman_ops.alert_state
             set thread_ts = null, message_ts = null, storm_id = null, posted_status = null, owner = null,
                 owned_at = null, silence_id = null, silence_until = null, silenced_by = null, first_seen_at = ${now}
           where fingerprint = any(${renamed}::text[])`;
      }
      const outbox = changed.map(({ a, event }) => ({
        channel,
        fingerprint: a.fingerprint,
        event,
        snapshot: {
          fingerprint: a.fingerprint,
          alertname: a.labels.alertname ?? "unnamed",
          status: a.status,
          labels: a.labels,
          annotations: a.annotations,
          startsAt: a.startsAt,
          endsAt: a.endsAt,
          generatorURL: a.generatorURL ?? "",
          source,
        } satisfies AlertView,
        enqueued_at: now,
      }));
      await tx`
        insert into bisman_ops.alert_outbox ${
        tx(outbox as never, "channel", "fingerprint", "event", "snapshot", "enqueued_at")
      }`;
      return changed.length;
    });
    for (const a of list) {
      metrics.inc(
        "bisman_alerts_received_total",
        { source, status: a.status },
        1,
        "Alerts received, by source and status",
      );
    }
    if (queued) this.kick(channel);
    return { received: alerts.length, queued };
  }

  /** Makes sure a poster drains `channel` (now, or right after the one running). */
  kick(channel = this.channel): void {
    this.#poster.kick(channel);
  }

  /** Drains every channel that has rows waiting (rows another replica queued, or left by a dead process). */
  sweep(): Promise<void> {
    return this.#poster.sweep();
  }

  /**
   * The alerts a button points at and their thread (see {@link AlertLookup}). The thread is unknown for the
   * moment between Slack accepting a parent message and the poster recording its ts; the caller then uses the
   * clicked message, which is that parent.
   */
  async lookup(ref: AlertButtonRef): Promise<AlertLookupResult | undefined> {
    const sql = this.deps.state;
    if ("fingerprint" in ref) {
      const [a] = await sql<
        { channel: string; thread_ts: string | null; alertname: string; labels: Record<string, string> }[]
      >`
        select channel, thread_ts, alertname, labels from bisman_ops.alert_state
         where fingerprint = ${ref.fingerprint}`;
      if (!a) return undefined;
      return {
        channel: a.channel,
        threadTs: a.thread_ts ?? undefined,
        alerts: [{ alertname: a.alertname, labels: a.labels }],
      };
    }
    const [s] = await sql<{ channel: string; parent_ts: string | null }[]>`
      select channel, parent_ts from bisman_ops.alert_storms where id = ${ref.storm}`;
    if (!s) return undefined;
    const alerts = await sql<{ alertname: string; labels: Record<string, string> }[]>`
      select alertname, labels from bisman_ops.alert_state where storm_id = ${ref.storm}
       order by first_seen_at, fingerprint limit 100`;
    return {
      channel: s.channel,
      threadTs: s.parent_ts ?? undefined,
      alerts: alerts.map((a) => ({ alertname: a.alertname, labels: a.labels })),
    };
  }

  /**
   * Redraws an alert's parent message from its stored state (after "I'm on it" or a silence changed it):
   * queued as an `updated` notification, so it goes through the channel's one poster, in order with the
   * alert's own notifications. Alerts listed in a storm have no parent of their own and are left alone.
   */
  async refreshParent(fingerprint: string): Promise<void> {
    const [a] = await this.deps.state<(AlertViewRow & { channel: string; storm_id: number | null })[]>`
      select fingerprint, channel, alertname, status, labels, annotations, starts_at, ends_at, generator_url,
             source, storm_id::int as storm_id
        from bisman_ops.alert_state where fingerprint = ${fingerprint}`;
    if (!a || a.storm_id !== null) return;
    const snapshot = alertViewOf({ ...a, generator_url: a.generator_url ?? null });
    await this.deps.state`
      insert into bisman_ops.alert_outbox (channel, fingerprint, event, snapshot, enqueued_at)
      values (${a.channel}, ${fingerprint}, 'updated', ${
      this.deps.state.json(snapshot as never)
    }, ${this.deps.now()})`;
    this.kick(a.channel);
  }

  /** The thread of one fingerprint, as stored (tests, the lag check). */
  async thread(
    fingerprint: string,
  ): Promise<{ status: string; threadTs: string | null; stormId: number | null } | undefined> {
    const [a] = await this.deps.state<
      { status: string; thread_ts: string | null; storm_id: number | null }[]
    >`
      select status, thread_ts, storm_id::int as storm_id from bisman_ops.alert_state where fingerprint = ${fingerprint}`;
    return a ? { status: a.status, threadTs: a.thread_ts, stormId: a.storm_id } : undefined;
  }

  /** Firing alerts of a source (the lag check reads its own open conditions). */
  async firing(source: "alertmanager" | "lag_check"): Promise<FiringAlert[]> {
    const rows = await this.deps.state<
      {
        fingerprint: string;
        labels: Record<string, string>;
        annotations: Record<string, string>;
        starts_at: Date | null;
      }[]
    >`
      select fingerprint, labels, annotations, starts_at from bisman_ops.alert_state
       where source = ${source} and status = 'firing'`;
    return rows.map((r) => ({
      fingerprint: r.fingerprint,
      labels: r.labels,
      annotations: r.annotations,
      startsAt: r.starts_at ? new Date(r.starts_at).toISOString() : null,
    }));
  }
}
