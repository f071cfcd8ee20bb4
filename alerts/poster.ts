/**
 * The alert outbox poster (see alerts/threads.ts for the whole design): one poster per channel drains
 * `alert_outbox` in id order under a session advisory lock, so only one replica posts a channel and a thread's
 * messages keep their order. It paces itself to `alerts.slack_per_channel_per_second` and, on a 429, waits
 * the Retry-After Slack asked for and tries the same call again: nothing is dropped. In a storm the alerts of
 * one group are listed in one parent message, with their detail in its thread.
 *
 * @module
 */

import type { WebClient } from "@slack/web-api";
import type { AppDeps } from "../core/deps.ts";
import {
  type AlertView,
  type ButtonView,
  renderAlertEvent,
  renderAlertParent,
  renderContinuedBelow,
  renderStormDetail,
  renderStormParent,
} from "../views/alerts.ts";
import { buttonLabel, BUTTONS, buttonsFor } from "./buttons.ts";
// Type only: threads.ts imports this module for the poster itself.
import { transaction } from "../core/pg_tx.ts";
import { own } from "../core/lookup.ts";

/** What changed for one alert, and so what the thread will show. */
export type AlertEvent = "firing" | "refiring" | "updated" | "resolved";

/** Alerts listed in one storm detail reply. */
export const STORM_DETAIL_PER_REPLY = 20;
/** Outbox rows the poster takes at a time. */
const BATCH = 200;
/** Advisory-lock namespace ("alrt"): one poster per channel across all replicas. */
const POSTER_LOCK_NS = 0x616c7274;

/** An alert's stored state, as the poster and {@link threadExtras} read it. */
export interface StateRow {
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
    own(urls, a.alertname) ?? own(urls, "default");
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

/** The `alert_state` columns an {@link AlertView} is drawn from, as a query returns them. */
export interface AlertViewRow {
  fingerprint: string;
  alertname: string;
  status: "firing" | "resolved";
  labels: Record<string, string>;
  annotations: Record<string, string>;
  starts_at: Date | null;
  ends_at: Date | null;
  /** Only where the query selected it. */
  generator_url?: string | null;
  source: "alertmanager" | "lag_check";
}

/** An alert as the renderers take it, from its stored row. */
export function alertViewOf(r: AlertViewRow): AlertView {
  return {
    fingerprint: r.fingerprint,
    alertname: r.alertname,
    status: r.status,
    labels: r.labels,
    annotations: r.annotations,
    startsAt: r.starts_at ? new Date(r.starts_at).toISOString() : null,
    endsAt: r.ends_at ? new Date(r.ends_at).toISOString() : null,
    ...(r.generator_url !== undefined ? { generatorURL: r.generator_url ?? "" } : {}),
    source: r.source,
  };
}

/** Posts the alert outbox to Slack: one poster per channel, started by {@link AlertPoster.kick}. */
export class AlertPoster {
  #controller = new AbortController();
  #running = new Map<string, Promise<void>>();
  #again = new Set<string>();
  #nextAt = new Map<string, number>();
  /** Slack calls made by the poster, by outcome (for tests, the benchmark and /metrics). */
  readonly calls = { ok: 0, rateLimited: 0, failed: 0, retried: 0 };

  constructor(private readonly deps: AppDeps, private readonly slack: WebClient) {}

  /** Stops posting (a wait for Slack is cut short) and waits for the posters to let go of their locks. */
  async stop(): Promise<void> {
    this.#controller.abort();
    await Promise.allSettled([...this.#running.values()]);
  }

  /** Waits until no poster of this process is running (tests and the benchmark). */
  async idle(): Promise<void> {
    while (this.#running.size) await Promise.allSettled([...this.#running.values()]);
  }

  /** Makes sure a poster drains `channel` (now, or right after the one running). */
  kick(channel: string): void {
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
        () => this.slack.chat.postMessage({ channel, thread_ts: storm.parent_ts!, ...body } as never),
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

  /**
   * An alert in its own thread: post the parent, or edit it (and reply when it resolves). Firing again after
   * a resolve starts a fresh thread at the bottom of the channel (see alerts/threads.ts for why).
   */
  async #postOwn(channel: string, s: StateRow, r: OutboxRow): Promise<void> {
    const sql = this.deps.state;
    let noteError: string | undefined;
    if (s.message_ts && r.event === "refiring") {
      noteError = await this.#leaveOldThread(channel, s, r);
    }
    const parent = renderAlertParent(r.snapshot, this.#buttons(r.snapshot.alertname), {
      alertmanagerUrl: this.deps.config.alerts.alertmanager_url,
      ...threadExtras(this.deps.config, r.snapshot, s),
    });
    if (s.message_ts) {
      const edit = await this.#call(
        channel,
        "chat.update",
        () => this.slack.chat.update({ channel, ts: s.message_ts!, ...parent } as never),
      );
      if (edit.error !== "message_not_found") {
        if (r.event === "resolved") {
          const reply = renderAlertEvent(r.event, r.snapshot);
          const res = await this.#call(
            channel,
            "chat.postMessage",
            () => this.slack.chat.postMessage({ channel, thread_ts: s.thread_ts!, ...reply } as never),
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
      () => this.slack.chat.postMessage({ channel, ...parent } as never),
    );
    if (res.ts) {
      await sql`update bisman_ops.alert_state
                   set thread_ts = ${res.ts}, message_ts = ${res.ts}, posted_status = ${r.snapshot.status}
                 where fingerprint = ${s.fingerprint}`;
      s.thread_ts = res.ts;
      s.message_ts = res.ts;
    }
    await this.#done([r.id], res.error ?? noteError);
  }

  /**
   * Ends an alert's old episode when it fires again: a reply in the old thread says a new thread follows at
   * the bottom of the channel, and the old thread, its owner and any expired silence are let go, so the new
   * parent starts clean. An active silence stays (Alertmanager still applies it). @returns Slack's error, if any
   */
  async #leaveOldThread(channel: string, s: StateRow, r: OutboxRow): Promise<string | undefined> {
    const note = renderContinuedBelow(r.snapshot);
    const res = await this.#call(
      channel,
      "chat.postMessage",
      () => this.slack.chat.postMessage({ channel, thread_ts: s.thread_ts!, ...note } as never),
    );
    const now = this.deps.now();
    const expired = !s.silence_until || new Date(s.silence_until) <= now;
    await this.deps.state`
      update bisman_ops.alert_state
         set thread_ts = null, message_ts = null, posted_status = null, owner = null, owned_at = null,
             silence_id = case when ${expired} then null else silence_id end,
             silence_until = case when ${expired} then null else silence_until end,
             silenced_by = case when ${expired} then null else silenced_by end
       where fingerprint = ${s.fingerprint}`;
    s.thread_ts = null;
    s.message_ts = null;
    s.owner = null;
    s.owned_at = null;
    if (expired) {
      s.silence_id = null;
      s.silence_until = null;
      s.silenced_by = null;
    }
    return res.error;
  }

  async #stormView(storm: StormRow) {
    const sql = this.deps.state;
    const [counts] = await sql<{ firing: number; resolved: number }[]>`
      select count(*) filter (where status = 'firing')::int as firing,
             count(*) filter (where status = 'resolved')::int as resolved
        from bisman_ops.alert_state where storm_id = ${storm.id}`;
    const sample = await sql<AlertViewRow[]>`
      select fingerprint, alertname, status, labels, annotations, starts_at, ends_at, source
        from bisman_ops.alert_state where storm_id = ${storm.id}
       order by first_seen_at, fingerprint limit 15`;
    return {
      id: storm.id,
      alertname: storm.alertname,
      groupKey: storm.group_key,
      firing: counts.firing,
      resolved: counts.resolved,
      sample: sample.map(alertViewOf),
    };
  }

  async #postStormParent(channel: string, storm: StormRow): Promise<void> {
    const body = renderStormParent(await this.#stormView(storm), this.#buttons(storm.alertname));
    const res = await this.#call(
      channel,
      "chat.postMessage",
      () => this.slack.chat.postMessage({ channel, ...body } as never),
    );
    if (!res.ts) {
      // Without a parent there is no thread: its alerts go back to being posted one by one.
      this.deps.log.error("could not post a storm's parent message", { storm: storm.id, error: res.error });
      throw new Error(`Storm ${storm.id} parent not posted: ${res.error}`);
    }
    storm.parent_ts = res.ts;
    await transaction(this.deps.state, async (tx) => {
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
      () => this.slack.chat.update({ channel, ts: storm.parent_ts!, ...body } as never),
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
}
