/**
 * Alert threads: one Slack thread per alert fingerprint, kept in the state database (sql/0005_alerts.sql).
 *
 * Two halves, joined by an outbox table:
 * - {@link AlertThreads.ingest} (the webhook, the lag check) writes each alert that changed into `alert_state`
 *   and an `alert_outbox` row in one transaction, and returns at once, so Alertmanager is acknowledged in
 *   milliseconds however busy Slack is. Alertmanager re-sends every alert of a group on each notification: an
 *   alert whose status, labels, annotations and start time did not change queues nothing.
 * - A poster per channel drains the outbox in id order. Only one poster per channel runs across all bot
 *   replicas (a session advisory lock), so nothing is posted twice and a thread's messages keep their order.
 *   It paces itself to `alerts.slack_per_channel_per_second` and, on a 429, waits the Retry-After Slack asked
 *   for and tries the same call again: nothing is dropped.
 *
 * The first notification of a fingerprint posts the parent message (with its runbook buttons); later ones
 * edit it and, when it resolves or fires again, reply in the thread. In a storm (at least
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
import { canonicalJson } from "../core/audit.ts";
import type { AlertButtonRef } from "../slack/actions.ts";
import {
  type AlertView,
  type ButtonView,
  renderAlertEvent,
  renderAlertParent,
  renderStormDetail,
  renderStormParent,
} from "../slack/render/alerts.ts";
import { buttonLabel, BUTTONS, buttonsFor } from "./buttons.ts";
import type { AlertLookup, AlertLookupResult } from "./buttons.ts";

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

/** What changed for one alert, and so what the thread will show. */
export type AlertEvent = "firing" | "refiring" | "updated" | "resolved";

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

/** Alerts listed in one storm detail reply. */
export const STORM_DETAIL_PER_REPLY = 20;
/** Outbox rows the poster takes at a time. */
const BATCH = 200;
/** Advisory-lock namespaces ("alrt", "alri"): one poster per channel, one ingest at a time per channel. */
const POSTER_LOCK_NS = 0x616c7274;
const INGEST_LOCK_NS = 0x616c7269;

/** Options of the alert threads service. */
export interface AlertThreadsOptions {
  /** The Slack client used for posting; give it `rejectRateLimitedCalls: true` and no retries of its own. */
  slack: WebClient;
  /** How often every channel with pending rows is drained again (ms; default 5000). */
  sweepMs?: number;
}

interface StateRow {
  fingerprint: string;
  channel: string;
  alertname: string;
  group_key: string;
  status: "firing" | "resolved";
  thread_ts: string | null;
  message_ts: string | null;
  storm_id: number | null;
  owner: string | null;
  owned_at: Date | null;
  silence_id: string | null;
  silence_until: Date | null;
  silenced_by: string | null;
}

interface OutboxRow {
  id: number;
  fingerprint: string;
  event: AlertEvent;
  snapshot: AlertView;
  attempts: number;
}

interface StormRow {
  id: number;
  group_key: string;
  alertname: string;
  parent_ts: string | null;
}

/** Thrown inside the poster when the service stops mid-wait. */
class Stopped extends Error {}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(new Stopped());
    const t = setTimeout(() => {
      signal.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(t);
      reject(new Stopped());
    };
    signal.addEventListener("abort", onAbort, { once: true });
  });
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

/**
 * What an alert's parent shows besides the alert (issue 11): its runbook link (the `runbook_url` annotation,
 * else `alerts.runbook_urls`), who took it, its silence, and whether it can be silenced (Alertmanager's own
 * alerts only: the bot's lag check is not in Alertmanager).
 */
export function threadExtras(
  config: AppDeps["config"],
  a: AlertView,
  s: Pick<StateRow, "owner" | "owned_at" | "silence_id" | "silence_until" | "silenced_by">,
) {
  const urls = config.alerts.runbook_urls;
  const runbook = a.annotations.runbook_url ??
    (Object.hasOwn(urls, a.alertname) ? urls[a.alertname] : undefined) ?? urls.default;
  return {
    runbookUrl: runbook,
    owner: s.owner
      ? { id: s.owner, at: s.owned_at ? new Date(s.owned_at).toISOString() : undefined }
      : undefined,
    silence: s.silence_id && s.silence_until
      ? { id: s.silence_id, until: new Date(s.silence_until).toISOString(), by: s.silenced_by ?? undefined }
      : undefined,
    threadButtons: { silenceable: a.source === "alertmanager" },
  };
}

/** Alert threads of one bot process: ingest, the per-channel poster, and lookups for buttons. */
export class AlertThreads implements AlertLookup {
  #controller = new AbortController();
  #running = new Map<string, Promise<void>>();
  #again = new Set<string>();
  #nextAt = new Map<string, number>();
  #sweep?: ReturnType<typeof setInterval>;
  /** Slack calls made by the poster, by outcome (for tests, the benchmark and /metrics). */
  readonly calls = { ok: 0, rateLimited: 0, failed: 0, retried: 0 };

  constructor(private readonly deps: AppDeps, private readonly opts: AlertThreadsOptions) {}

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
  }

  /** Stops posting (a wait for Slack is cut short) and waits for the posters to let go of their locks. */
  async stop(): Promise<void> {
    clearInterval(this.#sweep);
    this.#controller.abort();
    await Promise.allSettled([...this.#running.values()]);
  }

  /** Waits until no poster of this process is running (tests and the benchmark). */
  async idle(): Promise<void> {
    while (this.#running.size) await Promise.allSettled([...this.#running.values()]);
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
    const queued = await state.begin(async (tx) => {
      // Ingests of one channel queue one after the other, so two deliveries of the same new alert cannot both
      // decide it is new.
      await tx`select pg_advisory_xact_lock(${INGEST_LOCK_NS}::int, hashtext(${channel}))`;
      const fps = list.map((a) => a.fingerprint);
      const known = fps.length
        ? await tx<{ fingerprint: string; status: "firing" | "resolved"; content_hash: string }[]>`
            select fingerprint, status, content_hash from bisman_ops.alert_state
             where fingerprint = any(${fps}::text[])`
        : [];
      const before = new Map(known.map((k) => [k.fingerprint, k]));
      const changed: { a: IncomingAlert; hash: string; event: AlertEvent }[] = [];
      list.forEach((a, i) => {
        const prev = before.get(a.fingerprint);
        if (prev && prev.content_hash === hashes[i]) return;
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
    if (this.#controller.signal.aborted) return;
    if (this.#running.has(channel)) {
      this.#again.add(channel);
      return;
    }
    const run = (async () => {
      do {
        this.#again.delete(channel);
        await this.#drain(channel);
      } while (this.#again.has(channel) && !this.#controller.signal.aborted);
    })()
      .catch((err) => {
        if (!(err instanceof Stopped)) this.deps.log.error("alert poster failed", { channel, error: err });
      })
      .finally(() => this.#running.delete(channel));
    this.#running.set(channel, run);
  }

  /** Drains every channel that has rows waiting (rows another replica queued, or left by a dead process). */
  async sweep(): Promise<void> {
    try {
      const rows = await this.deps.state<{ channel: string }[]>`
        select distinct channel from bisman_ops.alert_outbox where done_at is null`;
      for (const r of rows) this.kick(r.channel);
    } catch (err) {
      this.deps.log.warn("alert outbox sweep failed", { error: err });
    }
  }

  /** One poster run: take the channel's lock, post batches until the outbox is empty, let go. */
  async #drain(channel: string): Promise<void> {
    const conn = await this.deps.state.reserve();
    try {
      const [{ locked }] = await conn<{ locked: boolean }[]>`
        select pg_try_advisory_lock(${POSTER_LOCK_NS}::int, hashtext(${channel})) as locked`;
      // Another replica is posting this channel; it will see our rows too.
      if (!locked) return;
      try {
        for (;;) {
          const rows = await conn<OutboxRow[]>`
            select id::int as id, fingerprint, event, snapshot, attempts from bisman_ops.alert_outbox
             where channel = ${channel} and done_at is null
             order by id
             limit ${BATCH}`;
          if (!rows.length) break;
          await this.#postBatch(channel, rows);
        }
      } finally {
        await conn`select pg_advisory_unlock(${POSTER_LOCK_NS}::int, hashtext(${channel}))`;
      }
      const [left] = await conn<{ n: number }[]>`
        select count(*)::int as n from bisman_ops.alert_outbox where channel = ${channel} and done_at is null`;
      // Rows queued by another replica while we held the lock (its kick found the lock taken).
      if (left.n) this.#again.add(channel);
      this.deps.metrics.set(
        "bisman_alert_outbox_pending",
        { channel },
        left.n,
        "Alert notifications not yet in Slack",
      );
    } finally {
      conn.release();
    }
  }

  /** Posts one batch of outbox rows, grouping storms, in order. */
  async #postBatch(channel: string, rows: OutboxRow[]): Promise<void> {
    const sql = this.deps.state;
    const fps = [...new Set(rows.map((r) => r.fingerprint))];
    const states = new Map(
      (await sql<StateRow[]>`
        select fingerprint, channel, alertname, group_key, status, thread_ts, message_ts, storm_id::int as storm_id,
               owner, owned_at, silence_id, silence_until, silenced_by
          from bisman_ops.alert_state where fingerprint = any(${fps}::text[])`).map((
        s,
      ) => [s.fingerprint, s]),
    );
    const storms = new Map(
      (await sql<StormRow[]>`
        select id::int as id, group_key, alertname, parent_ts from bisman_ops.alert_storms
         where channel = ${channel} and closed_at is null`).map((s) => [s.group_key, s]),
    );
    const stormsById = new Map([...storms.values()].map((s) => [s.id, s]));

    // Which alerts without a thread join a storm: their group has an open storm, or enough of them wait now.
    const newByGroup = new Map<string, Set<string>>();
    for (const r of rows) {
      const s = states.get(r.fingerprint)!;
      if (s.thread_ts || s.storm_id) continue;
      const set = newByGroup.get(s.group_key) ?? new Set();
      set.add(s.fingerprint);
      newByGroup.set(s.group_key, set);
    }
    for (const [groupKey, members] of newByGroup) {
      let storm = storms.get(groupKey);
      if (!storm && members.size < this.deps.config.alerts.storm_group_at) continue;
      if (!storm) {
        const alertname = states.get([...members][0])!.alertname;
        const [created] = await sql<{ id: number }[]>`
          insert into bisman_ops.alert_storms (channel, group_key, alertname, created_at)
          values (${channel}, ${groupKey}, ${alertname}, ${this.deps.now()}) returning id::int as id`;
        storm = { id: created.id, group_key: groupKey, alertname, parent_ts: null };
        storms.set(groupKey, storm);
        stormsById.set(storm.id, storm);
      }
      const ids = [...members];
      await sql`
        update bisman_ops.alert_state set storm_id = ${storm.id}, thread_ts = ${storm.parent_ts}
         where fingerprint = any(${ids}::text[])`;
      for (const fp of ids) {
        const s = states.get(fp)!;
        s.storm_id = storm.id;
        s.thread_ts = storm.parent_ts;
      }
    }

    const detail = new Map<number, OutboxRow[]>();
    const dirty = new Set<number>();
    const flush = async (stormId: number) => {
      const entries = detail.get(stormId) ?? [];
      if (!entries.length) return;
      const storm = stormsById.get(stormId)!;
      const body = renderStormDetail(entries.map((e) => ({ event: e.event, alert: e.snapshot })));
      const res = await this.#call(
        channel,
        "chat.postMessage",
        () => this.opts.slack.chat.postMessage({ channel, thread_ts: storm.parent_ts!, ...body } as never),
      );
      await this.#done(entries.map((e) => e.id), res.error);
      detail.set(stormId, []);
      dirty.add(stormId);
    };

    for (const r of rows) {
      if (this.#controller.signal.aborted) throw new Stopped();
      const s = states.get(r.fingerprint)!;
      if (s.storm_id) {
        const storm = stormsById.get(s.storm_id) ?? await this.#loadStorm(s.storm_id);
        stormsById.set(storm.id, storm);
        if (!storm.parent_ts) await this.#postStormParent(channel, storm);
        const list = detail.get(storm.id) ?? [];
        list.push(r);
        detail.set(storm.id, list);
        if (list.length >= STORM_DETAIL_PER_REPLY) await flush(storm.id);
        continue;
      }
      await this.#postOwn(channel, s, r);
    }
    for (const id of detail.keys()) await flush(id);
    for (const id of dirty) await this.#updateStormParent(channel, stormsById.get(id)!);
  }

  async #loadStorm(id: number): Promise<StormRow> {
    const [s] = await this.deps.state<StormRow[]>`
      select id::int as id, group_key, alertname, parent_ts from bisman_ops.alert_storms where id = ${id}`;
    return s;
  }

  #buttons(alertname: string): ButtonView[] {
    return buttonsFor(this.deps.config, alertname).map((key) => ({
      key,
      label: buttonLabel(this.deps.config, key),
      gated: BUTTONS[key].kind === "gated",
    }));
  }

  /** An alert in its own thread: post the parent, or edit it (and reply when it resolves or fires again). */
  async #postOwn(channel: string, s: StateRow, r: OutboxRow): Promise<void> {
    const sql = this.deps.state;
    const parent = renderAlertParent(r.snapshot, this.#buttons(r.snapshot.alertname), {
      alertmanagerUrl: this.deps.config.alerts.alertmanager_url,
      ...threadExtras(this.deps.config, r.snapshot, s),
    });
    if (s.message_ts) {
      const edit = await this.#call(
        channel,
        "chat.update",
        () => this.opts.slack.chat.update({ channel, ts: s.message_ts!, ...parent } as never),
      );
      if (edit.error !== "message_not_found") {
        if (r.event === "resolved" || r.event === "refiring") {
          const reply = renderAlertEvent(r.event, r.snapshot);
          const res = await this.#call(
            channel,
            "chat.postMessage",
            () => this.opts.slack.chat.postMessage({ channel, thread_ts: s.thread_ts!, ...reply } as never),
          );
          await this.#done([r.id], edit.error ?? res.error);
        } else {
          await this.#done([r.id], edit.error);
        }
        await sql`update bisman_ops.alert_state set posted_status = ${r.snapshot.status}
                   where fingerprint = ${s.fingerprint}`;
        return;
      }
      // Someone deleted the parent: start the thread again below.
    }
    const res = await this.#call(
      channel,
      "chat.postMessage",
      () => this.opts.slack.chat.postMessage({ channel, ...parent } as never),
    );
    if (res.ts) {
      await sql`update bisman_ops.alert_state
                   set thread_ts = ${res.ts}, message_ts = ${res.ts}, posted_status = ${r.snapshot.status}
                 where fingerprint = ${s.fingerprint}`;
      s.thread_ts = res.ts;
      s.message_ts = res.ts;
    }
    await this.#done([r.id], res.error);
  }

  async #stormView(storm: StormRow) {
    const sql = this.deps.state;
    const [counts] = await sql<{ firing: number; resolved: number }[]>`
      select count(*) filter (where status = 'firing')::int as firing,
             count(*) filter (where status = 'resolved')::int as resolved
        from bisman_ops.alert_state where storm_id = ${storm.id}`;
    const sample = await sql<
      {
        fingerprint: string;
        alertname: string;
        status: "firing" | "resolved";
        labels: Record<string, string>;
        annotations: Record<string, string>;
        starts_at: Date | null;
        ends_at: Date | null;
        source: "alertmanager" | "lag_check";
      }[]
    >`
      select fingerprint, alertname, status, labels, annotations, starts_at, ends_at, source
        from bisman_ops.alert_state where storm_id = ${storm.id}
       order by first_seen_at, fingerprint limit 15`;
    return {
      id: storm.id,
      alertname: storm.alertname,
      groupKey: storm.group_key,
      firing: counts.firing,
      resolved: counts.resolved,
      sample: sample.map((a) => ({
        fingerprint: a.fingerprint,
        alertname: a.alertname,
        status: a.status,
        labels: a.labels,
        annotations: a.annotations,
        startsAt: a.starts_at ? new Date(a.starts_at).toISOString() : null,
        endsAt: a.ends_at ? new Date(a.ends_at).toISOString() : null,
        source: a.source,
      })),
    };
  }

  async #postStormParent(channel: string, storm: StormRow): Promise<void> {
    const body = renderStormParent(await this.#stormView(storm), this.#buttons(storm.alertname));
    const res = await this.#call(
      channel,
      "chat.postMessage",
      () => this.opts.slack.chat.postMessage({ channel, ...body } as never),
    );
    if (!res.ts) {
      // Without a parent there is no thread: its alerts go back to being posted one by one.
      this.deps.log.error("could not post a storm's parent message", { storm: storm.id, error: res.error });
      throw new Error(`Storm ${storm.id} parent not posted: ${res.error}`);
    }
    storm.parent_ts = res.ts;
    await this.deps.state.begin(async (tx) => {
      await tx`update bisman_ops.alert_storms set parent_ts = ${res.ts!} where id = ${storm.id}`;
      await tx`update bisman_ops.alert_state set thread_ts = ${res.ts!}, message_ts = ${res.ts!}
                where storm_id = ${storm.id}`;
    });
  }

  async #updateStormParent(channel: string, storm: StormRow): Promise<void> {
    const view = await this.#stormView(storm);
    const body = renderStormParent(view, this.#buttons(storm.alertname));
    await this.#call(
      channel,
      "chat.update",
      () => this.opts.slack.chat.update({ channel, ts: storm.parent_ts!, ...body } as never),
    );
    if (view.firing === 0) {
      // Every alert of the storm resolved: the next alerts of this group start afresh.
      await this.deps.state`update bisman_ops.alert_storms set closed_at = ${this.deps.now()}
                             where id = ${storm.id} and closed_at is null`;
    }
  }

  async #done(ids: number[], error?: string): Promise<void> {
    await this.deps.state`
      update bisman_ops.alert_outbox
         set done_at = ${this.deps.now()}, attempts = attempts + 1, last_error = ${error ?? null}
       where id = any(${ids}::int[])`;
  }

  /**
   * One Slack call, paced per channel and retried until it succeeds: after a 429 as long as Retry-After says,
   * after a network or 5xx error with backoff. An error Slack answers with `ok: false` is returned, not
   * retried (sending the same content again would fail again).
   */
  async #call(
    channel: string,
    method: string,
    fn: () => Promise<{ ts?: string }>,
  ): Promise<{ ts?: string; error?: string }> {
    const signal = this.#controller.signal;
    const { metrics, log } = this.deps;
    for (let attempt = 0;; attempt++) {
      await this.#pace(channel, signal);
      try {
        const res = await fn();
        this.calls.ok++;
        metrics.inc(
          "bisman_alert_slack_calls_total",
          { method, outcome: "ok" },
          1,
          "Slack calls of the alert poster",
        );
        return { ts: res.ts };
      } catch (err) {
        const e = err as { code?: string; retryAfter?: number; data?: { error?: string } };
        if (e.code === "slack_webapi_rate_limited_error") {
          this.calls.rateLimited++;
          metrics.inc(
            "bisman_alert_slack_calls_total",
            { method, outcome: "rate_limited" },
            1,
            "Slack calls of the alert poster",
          );
          // Slack says when: nothing else goes to this channel before then.
          this.#nextAt.set(channel, Date.now() + Math.max(1, e.retryAfter ?? 1) * 1000);
          this.calls.retried++;
          continue;
        }
        if (e.code === "slack_webapi_platform_error") {
          this.calls.failed++;
          metrics.inc(
            "bisman_alert_slack_calls_total",
            { method, outcome: "error" },
            1,
            "Slack calls of the alert poster",
          );
          const error = e.data?.error ?? "unknown_error";
          log.error("slack refused an alert message", { channel, method, error });
          if (error === "ratelimited") {
            this.#nextAt.set(channel, Date.now() + 1000);
            this.calls.retried++;
            continue;
          }
          return { error };
        }
        this.calls.retried++;
        const backoff = Math.min(30_000, 500 * 2 ** Math.min(attempt, 6));
        log.warn("slack call failed; retrying", { channel, method, error: err, retry_in_ms: backoff });
        await sleep(backoff, signal);
      }
    }
  }

  async #pace(channel: string, signal: AbortSignal): Promise<void> {
    if (signal.aborted) throw new Stopped();
    // 10% under the configured pace: a call that arrives a few milliseconds early counts against the next
    // second at Slack, and a 429 costs a whole Retry-After second.
    const gap = 1100 / this.deps.config.alerts.slack_per_channel_per_second;
    const now = Date.now();
    const at = Math.max(now, this.#nextAt.get(channel) ?? 0);
    this.#nextAt.set(channel, at + gap);
    if (at > now) await sleep(at - now, signal);
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
    const [a] = await this.deps.state<
      {
        channel: string;
        alertname: string;
        status: "firing" | "resolved";
        labels: Record<string, string>;
        annotations: Record<string, string>;
        starts_at: Date | null;
        ends_at: Date | null;
        generator_url: string | null;
        source: "alertmanager" | "lag_check";
        storm_id: number | null;
      }[]
    >`
      select channel, alertname, status, labels, annotations, starts_at, ends_at, generator_url, source,
             storm_id::int as storm_id
        from bisman_ops.alert_state where fingerprint = ${fingerprint}`;
    if (!a || a.storm_id !== null) return;
    const snapshot: AlertView = {
      fingerprint,
      alertname: a.alertname,
      status: a.status,
      labels: a.labels,
      annotations: a.annotations,
      startsAt: a.starts_at ? new Date(a.starts_at).toISOString() : null,
      endsAt: a.ends_at ? new Date(a.ends_at).toISOString() : null,
      generatorURL: a.generator_url ?? "",
      source: a.source,
    };
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
