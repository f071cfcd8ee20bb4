/**
 * Socket Mode: with `SLACK_APP_TOKEN` set, the bot opens a WebSocket to Slack (`apps.connections.open`,
 * then the `wss://` URL it answers) instead of receiving HTTP, so it runs where no inbound traffic can
 * reach it. Envelopes go to the same Bolt app, listeners and approval gate as `POST /slack/events`.
 *
 * The WebSocket itself is `@slack/socket-mode`'s client (Bolt 5's dependency). This receiver adds what the
 * bot needs around it:
 * - reconnecting on its own loop, with backoff, forever: the library's own reconnect rejects an
 *   unhandled promise when `apps.connections.open` fails during a reconnect, which would end the process;
 * - an envelope delivered again (Slack resends what was not acknowledged when a socket drops) is the same
 *   request: it is answered with the first delivery's ack and never runs twice;
 * - an ack that could not be sent because the socket went away is not an error for the listener: its work
 *   goes on (replies travel over HTTP), and the ack is sent again when the envelope comes back;
 * - in-flight listener work is tracked so shutdown can wait for it, as with the HTTP receiver.
 *
 * @module
 */

import { LogLevel, SocketModeClient } from "@slack/socket-mode";
import type { App, Receiver, ReceiverEvent } from "@slack/bolt";
import { type Logger, withLogContext } from "../core/log.ts";
import type { Metrics } from "../core/metrics.ts";
import { drainSet, within } from "../core/within.ts";

/** How long an envelope id is remembered to recognise a redelivery (Slack retries within minutes). */
const SEEN_TTL_MS = 15 * 60_000;
const SEEN_MAX = 10_000;
/** A connection that has not said hello by then is given up and tried again. */
const HELLO_TIMEOUT_MS = 30_000;

export interface SocketModeOptions {
  /** The app-level token (`xapp-...`) with `connections:write`. */
  appToken: string;
  /** Web API base URL (`SLACK_API_URL`): `apps.connections.open` is called there. */
  slackApiUrl: string;
  log: Logger;
  metrics: Metrics;
  /**
   * How long to wait for a pong before the socket counts as dead (default 5000 ms, the library's).
   * Tests shorten it.
   */
  clientPingTimeoutMs?: number;
  /** First reconnect delay after a failed attempt; doubles up to 60 s (default 1000 ms). */
  retryBaseMs?: number;
}

/** What the library hands each envelope listener. */
interface EnvelopeArgs {
  ack: (response?: Record<string, unknown>) => Promise<void>;
  envelope_id?: string;
  type?: string;
  body?: unknown;
  retry_num?: number;
  retry_reason?: string;
}

/** Adapts our JSON logger to the Logger interface of `@slack/socket-mode`. */
function libraryLogger(log: Logger) {
  const l = log.child({ component: "socket-mode" });
  let level = LogLevel.WARN;
  const text = (msgs: unknown[]) => msgs.map((m) => (typeof m === "string" ? m : String(m))).join(" ");
  return {
    debug: (...m: unknown[]) => void (level === LogLevel.DEBUG && l.debug(text(m))),
    info: (...m: unknown[]) =>
      void ((level === LogLevel.DEBUG || level === LogLevel.INFO) && l.info(text(m))),
    // A dropped socket is reported as an "error" by the library although it is routine: it reconnects.
    warn: (...m: unknown[]) => l.warn(text(m)),
    error: (...m: unknown[]) => l.warn(text(m)),
    setLevel: (lv: LogLevel) => void (level = lv),
    getLevel: () => level,
    setName: () => {},
  };
}

/** A Bolt receiver fed by a Socket Mode connection. Call {@link SocketModeEventsReceiver.connect} once. */
export class SocketModeEventsReceiver implements Receiver {
  #app?: App;
  readonly #client: SocketModeClient;
  readonly #opts: SocketModeOptions;
  #inFlight = new Set<Promise<unknown>>();
  /** Envelopes received and not yet acknowledged: shutdown sends their acks before closing the socket. */
  #unacked = new Set<string>();
  #seen = new Map<string, { acked: Promise<Record<string, unknown> | undefined>; at: number }>();
  #connected = false;
  #everConnected = false;
  #stopping = false;
  #loop?: Promise<void>;
  #wake = new AbortController();

  constructor(opts: SocketModeOptions) {
    this.#opts = opts;
    this.#client = new SocketModeClient({
      appToken: opts.appToken,
      logger: libraryLogger(opts.log) as never,
      clientPingTimeout: opts.clientPingTimeoutMs ?? 5000,
      // Reconnects are this receiver's loop (see the module doc).
      autoReconnectEnabled: false,
      clientOptions: { slackApiUrl: opts.slackApiUrl },
    });
    this.#client.on("connected", () => {
      this.#connected = true;
      this.#everConnected = true;
      opts.metrics.set("bisman_slack_socket_connected", {}, 1, "1 while the Socket Mode connection is open");
      opts.metrics.inc("bisman_slack_socket_connections_total", {}, 1, "Socket Mode connections opened");
      opts.log.info("socket mode connected");
    });
    this.#client.on("disconnected", () => {
      const was = this.#connected;
      this.#connected = false;
      opts.metrics.set("bisman_slack_socket_connected", {}, 0, "1 while the Socket Mode connection is open");
      if (this.#stopping) return;
      if (was) opts.log.warn("socket mode connection closed; reconnecting");
      // After the current macrotask, so a connect loop that has just finished has also cleared itself.
      setTimeout(() => this.#ensureLoop(), 0);
    });
    this.#client.on("slack_event", (args: EnvelopeArgs) => this.#onEnvelope(args));
    this.#guardMessages();
  }

  /**
   * The library parses each message in an async handler that throws on envelopes it does not expect
   * (an `events_api` envelope without `payload.event`), and that rejection would end the process. Its
   * handler is wrapped so a bad envelope is logged and acknowledged empty, never fatal.
   */
  #guardMessages(): void {
    const client = this.#client as unknown as {
      onWebSocketMessage(data: unknown, isBinary: boolean): Promise<void>;
      removeAllListeners(event: string): void;
      on(event: string, fn: (data: unknown, isBinary: boolean) => void): void;
      send(id: string, body: Record<string, unknown>): Promise<void>;
    };
    client.removeAllListeners("ws_message");
    client.on("ws_message", (data, isBinary) => {
      client.onWebSocketMessage(data, isBinary).catch((err) => {
        this.#opts.metrics.inc(
          "bisman_slack_rejected_total",
          { reason: "malformed_envelope" },
          1,
          "Slack requests refused before processing",
        );
        const id = envelopeIdOf(data);
        this.#opts.log.warn("socket mode: ignored an envelope the client could not read", {
          error: err,
          request_id: id,
        });
        if (id) {
          client.send(id, {}).catch((e: unknown) =>
            this.#opts.log.warn("socket mode: could not acknowledge a bad envelope", {
              error: e,
              request_id: id,
            })
          );
        }
      });
    });
  }

  init(app: App): void {
    this.#app = app;
  }

  /** Bolt's `start()`: same as {@link connect}. */
  start(): Promise<void> {
    this.connect();
    return Promise.resolve();
  }

  /**
   * Starts connecting in the background and keeps the connection up until {@link stop}; never throws.
   * An invalid app token or an unreachable Slack is logged and retried with backoff.
   */
  connect(): void {
    this.#stopping = false;
    this.#ensureLoop();
  }

  /** True while the socket is open and Slack has said hello. */
  get connected(): boolean {
    return this.#connected;
  }

  /** True once a connection has been made (readiness detail). */
  get everConnected(): boolean {
    return this.#everConnected;
  }

  /**
   * Stops reconnecting, lets envelopes already received be acknowledged (at most `ackWaitMs`; acks come
   * within milliseconds), then closes the connection, waiting at most `timeoutMs` for the close handshake.
   * Slack sends later envelopes to the other replicas' connections. Listener work that continues after
   * its ack is not waited for here: see {@link drain}.
   */
  async stop(timeoutMs = 2000, ackWaitMs = 3000): Promise<void> {
    this.#stopping = true;
    this.#wake.abort();
    const deadline = Date.now() + ackWaitMs;
    while (this.#unacked.size && this.#connected && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 10));
    }
    await within(
      this.#client.disconnect().catch((err) =>
        this.#opts.log.warn("socket mode disconnect failed", { error: err })
      ),
      timeoutMs,
    );
    await this.#loop;
  }

  /** Waits (at most `timeoutMs`) for listener work that continues after acks; returns how many were left. */
  async drain(timeoutMs = 10_000): Promise<number> {
    return await drainSet(this.#inFlight, timeoutMs);
  }

  #ensureLoop(): void {
    if (this.#loop || this.#stopping) return;
    this.#loop = this.#connectLoop().finally(() => (this.#loop = undefined));
  }

  async #connectLoop(): Promise<void> {
    let failures = 0;
    while (!this.#stopping && !this.#connected) {
      let timer: ReturnType<typeof setTimeout> | undefined;
      try {
        await Promise.race([
          this.#client.start(),
          new Promise((_, reject) => {
            timer = setTimeout(
              () => reject(new Error(`no hello within ${HELLO_TIMEOUT_MS / 1000} s`)),
              HELLO_TIMEOUT_MS,
            );
          }),
        ]);
        return;
      } catch (err) {
        if (this.#stopping) return;
        failures++;
        const base = this.#opts.retryBaseMs ?? 1000;
        const wait = Math.min(base * 2 ** (failures - 1), 60_000) * (0.8 + Math.random() * 0.4);
        this.#opts.log.warn("socket mode connection failed; retrying", {
          error: err,
          attempt: failures,
          retry_in_ms: Math.round(wait),
        });
        // A half-open attempt (no hello) is closed before the next one.
        if (!this.#connected) await this.#client.disconnect().catch(() => undefined);
        if (this.#wake.signal.aborted) this.#wake = new AbortController();
        await abortableSleep(wait, this.#wake.signal);
      } finally {
        clearTimeout(timer);
      }
    }
  }

  #onEnvelope(args: EnvelopeArgs): void {
    const received = performance.now();
    const id = args.envelope_id;
    const body = args.body;
    const log = this.#opts.log;
    const metrics = this.#opts.metrics;
    if (!id || !body || typeof body !== "object" || Array.isArray(body)) {
      metrics.inc(
        "bisman_slack_rejected_total",
        { reason: "malformed_envelope" },
        1,
        "Slack requests refused before processing",
      );
      log.warn("socket mode: ignored an envelope without an id or payload", { type: args.type });
      if (id) void this.#send(args, id, undefined);
      return;
    }
    const seen = this.#seen.get(id);
    if (seen) {
      metrics.inc(
        "bisman_slack_socket_redeliveries_total",
        {},
        1,
        "Envelopes Slack delivered again (answered with the first ack, not run again)",
      );
      log.info("socket mode: envelope delivered again; answering with its first ack", {
        request_id: id,
        retry_num: args.retry_num,
      });
      void seen.acked.then((payload) => this.#send(args, id, payload));
      return;
    }
    const app = this.#app;
    if (!app) return;

    const { promise: acked, resolve } = Promise.withResolvers<Record<string, unknown> | undefined>();
    this.#remember(id, acked);
    this.#unacked.add(id);
    const kind = kindOf(args.type, body as Record<string, unknown>);
    let ackCalled = false;
    const event: ReceiverEvent = {
      body: body as Record<string, unknown>,
      retryNum: args.retry_num,
      retryReason: args.retry_reason,
      customProperties: { requestId: id },
      ack: (response?: unknown) => {
        if (ackCalled) return Promise.reject(new Error("ack() was called twice for one Slack envelope"));
        ackCalled = true;
        const ms = performance.now() - received;
        metrics.observe(
          "bisman_slack_ack_seconds",
          { kind },
          ms / 1000,
          "Time from receiving a Slack request to acknowledging it",
        );
        log.info("slack request", {
          request_id: id,
          transport: "socket",
          kind,
          ack_ms: Math.round(ms * 10) / 10,
        });
        const payload = ackPayload(response);
        resolve(payload);
        return this.#send(args, id, payload);
      },
    };
    // The envelope id is the request id: every log line of this envelope's work carries it.
    const running = withLogContext({ request_id: id }, () => app.processEvent(event))
      .catch((err) => log.error("slack listener failed", { error: err, kind, request_id: id }))
      .finally(() => {
        this.#inFlight.delete(running);
        // An envelope no listener acknowledged is still acknowledged, so Slack does not resend it.
        if (!ackCalled) {
          ackCalled = true;
          resolve(undefined);
          void this.#send(args, id, undefined);
        }
      });
    this.#inFlight.add(running);
  }

  /** Sends an ack; a socket that went away is logged, not thrown: the redelivery gets the ack again. */
  async #send(args: EnvelopeArgs, id: string, payload: Record<string, unknown> | undefined): Promise<void> {
    try {
      await args.ack(payload);
      this.#unacked.delete(id);
    } catch (err) {
      this.#unacked.delete(id);
      this.#opts.log.warn(
        "socket mode: could not send an ack; it is sent again if Slack resends the envelope",
        {
          request_id: id,
          error: err,
        },
      );
    }
  }

  #remember(id: string, acked: Promise<Record<string, unknown> | undefined>): void {
    const now = Date.now();
    this.#seen.set(id, { acked, at: now });
    if (this.#seen.size <= SEEN_MAX / 10) return;
    for (const [k, v] of this.#seen) {
      if (now - v.at < SEEN_TTL_MS && this.#seen.size <= SEEN_MAX) break;
      this.#seen.delete(k);
    }
  }
}

/** The envelope_id of a raw socket message, when it has one. */
function envelopeIdOf(data: unknown): string | undefined {
  try {
    const text = typeof data === "string" ? data : new TextDecoder().decode(data as Uint8Array);
    const id = JSON.parse(text)?.envelope_id;
    return typeof id === "string" ? id : undefined;
  } catch {
    return undefined;
  }
}

/** The envelope kind for metrics and logs, named as the HTTP receiver names them. */
function kindOf(type: string | undefined, body: Record<string, unknown>): string {
  if (typeof body.command === "string") return "command";
  if (typeof body.type === "string") return body.type;
  return type ?? "other";
}

/** The ack's payload as Slack expects it over a socket: an object, `{text}` for a string, none when empty. */
function ackPayload(response: unknown): Record<string, unknown> | undefined {
  if (response === undefined || response === null || response === "") return undefined;
  if (typeof response === "string") return { text: response };
  if (typeof response === "object" && !Array.isArray(response)) return response as Record<string, unknown>;
  return undefined;
}

function abortableSleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    }
    signal.addEventListener("abort", done, { once: true });
  });
}
