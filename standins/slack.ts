/**
 * Slack stand-in for tests: a loopback HTTP server that speaks the parts of Slack's documented
 * Web API, response_url and request-signing protocols that bisman-ops uses, so the bot's production
 * clients (`@slack/web-api`'s WebClient with `slackApiUrl`, Bolt's HTTP receiver) can run against it.
 *
 * References (checked while building; keep behaviour in line with them):
 * - Web API basics: every answer is HTTP 200 with `{ok:false,error}` for method-level errors;
 *   token via `Authorization: Bearer` or a `token` form field (JSON bodies: header only).
 *   https://docs.slack.dev/apis/web-api/
 * - Per-method arguments, answers and error names: https://docs.slack.dev/reference/methods/<method>
 *   (chat.postMessage, chat.update, chat.postEphemeral, chat.getPermalink, users.info,
 *   usergroups.users.list, views.open, views.update, conversations.info, conversations.open, auth.test,
 *   files.getUploadURLExternal, files.completeUploadExternal).
 * - File uploads: https://docs.slack.dev/messaging/working-with-files#uploading_files —
 *   files.getUploadURLExternal(filename, length) answers `upload_url` and `file_id`; the bytes are POSTed
 *   to upload_url (raw body or one multipart file part; 200 "OK - <length>");
 *   files.completeUploadExternal(files: [{id, title}], channel_id?, initial_comment?, thread_ts?) shares them
 *   (without channel_id the file stays private). An upload whose byte count differs from `length`, or a completion before the upload, fails.
 *   Refused as Slack refuses: a `channel_id` that is not a conversation ID (a user ID `U…` answers
 *   invalid_arguments, "input must match regex pattern: ^[CGDZ][A-Z0-9]{8,}$ [json-pointer:/channel_id]",
 *   https://github.com/slackapi/bolt-js/issues/2115; the stand-in checks the first letter only, since its own
 *   IDs such as C0OPS are shorter than Slack's), a channel the bot is not in (not_in_channel: sharing needs
 *   membership even where chat:write.public lets a message through), and a second completion of the same
 *   file ("This method can only be called once", files.completeUploadExternal; Slack names no error for it,
 *   the stand-in answers invalid_arguments).
 * - Rate limits: HTTP 429 with `Retry-After: <seconds>`; chat.postMessage allows about one message
 *   per second per channel. https://docs.slack.dev/apis/web-api/rate-limits
 * - Block Kit: every rule, with the documentation page it comes from, is in ./slack_blockkit.ts
 *   (`validateMessage`, `validateView`, `blockKitErrors`, re-exported here as pure functions). `invalid_blocks`
 *   answers carry `errors` and `response_metadata.messages` such as "no more than 50 items allowed
 *   [json-pointer:/blocks]".
 * - Channels: a channel not known answers channel_not_found, one the bot is not in not_in_channel
 *   (chat.postMessage errors); chat.update edits only the bot's own messages (cant_update_message).
 * - Signing: https://api.slack.com/authentication/verifying-requests-from-slack —
 *   `v0=` + hex(HMAC-SHA256(signing_secret, "v0:" + timestamp + ":" + raw_body)).
 * - response_url: https://docs.slack.dev/interactivity/handling-user-interaction (JSON posts with
 *   text/blocks/response_type/replace_original/delete_original/thread_ts), at most 5 posts within 30 minutes
 *   (#message_responses), timed by the stand-in's clock, which tests move with `advanceClock()`.
 * - trigger_id: usable once, expires 3 s after it is issued
 *   (https://docs.slack.dev/interactivity/handling-user-interaction#modal_responses), same clock.
 * - Socket Mode: https://docs.slack.dev/apis/events-api/using-socket-mode — `apps.connections.open` with
 *   the app-level token (`xapp-…`; a bot token gets `not_allowed_token_type`) answers a single-use
 *   `wss://` URL; the server sends `{type:"hello"}`, then envelopes `{envelope_id, type, payload,
 *   accepts_response_payload}` (`slash_commands`, `interactive`, `events_api`); the app acknowledges each
 *   with `{envelope_id, payload?}`; `{type:"disconnect", reason}` asks the app to reconnect. An envelope
 *   whose socket closes before its ack is sent again on the next connection with the same envelope_id and
 *   `retry_attempt`/`retry_reason` (as Slack retries unacknowledged events), so an app must treat a
 *   repeated envelope_id as the same request.
 */

import { createHmac, randomBytes } from "node:crypto";
import { type LoopbackServer, serveLoopback, sleep, waitFor as pollFor } from "./http.ts";
import { WebSocketServer } from "ws";

export interface RecordedCall {
  /** Web API method name, or "response_url" for a post to a response URL. */
  method: string;
  /** Arguments as received (JSON-encoded form fields such as blocks are decoded); never the token. */
  args: Record<string, unknown>;
  token?: string;
  /** Arrival time (ms since epoch). */
  at: number;
  /** HTTP status answered; 0 while the answer is still pending (e.g. an injected delay). */
  status: number;
  /** The `error` of an `{ok:false}` answer. */
  error?: string;
}

/** A file uploaded with files.getUploadURLExternal + POST + files.completeUploadExternal. */
export interface StoredFile {
  id: string;
  filename: string;
  length: number;
  title?: string;
  /** The uploaded bytes, decoded as UTF-8 (undefined until the upload). */
  content?: string;
  /** Set by files.completeUploadExternal. */
  completed: boolean;
  channel?: string;
  initial_comment?: string;
  thread_ts?: string;
  /** When files.completeUploadExternal shared it (a message ts, as Slack's file `shares` carry). */
  shared_ts?: string;
}

export interface StoredMessage {
  channel: string;
  ts: string;
  thread_ts?: string;
  text?: string;
  blocks?: unknown[];
  user?: string;
  ephemeral_user?: string;
  edits: number;
  metadata?: unknown;
}

export interface SlackStandInOptions {
  botToken?: string;
  signingSecret?: string;
  teamId?: string;
  botUserId?: string;
  users?: Record<string, { name: string; real_name?: string; is_bot?: boolean }>;
  usergroups?: Record<string, string[]>;
  rateLimit?: { perChannelPerSecond?: number };
  /**
   * Channels that exist; "C0OPS" (#ops) always does. A channel the bot is not in (`is_member: false`) answers
   * chat.postMessage with `not_in_channel`; a channel not listed answers `channel_not_found`.
   */
  channels?: Record<string, ChannelInfo>;
  /** Workspace domain used in auth.test's url and permalinks (default "bisman-standin"). */
  teamDomain?: string;
  /** api_app_id sent in payloads (default "A0STANDIN"). */
  appId?: string;
  /** Legacy verification token sent as `token` in payloads (default "test-verification-token"). */
  verificationToken?: string;
  /** How long an issued trigger_id stays usable; Slack documents 3 s (default 3000). */
  triggerTtlMs?: number;
  /** App-level token accepted by apps.connections.open (default "xapp-1-A0STANDIN-test-app-token"). */
  appToken?: string;
}

/** A channel as the stand-in knows it. */
export interface ChannelInfo {
  name: string;
  is_private?: boolean;
  /** Whether the bot is a member (default true): the manifest asks for chat:write, not chat:write.public. */
  is_member?: boolean;
  /** For a direct message (conversations.open): the person the bot talks with. */
  im_user?: string;
}

export interface SocketDeliveryOptions {
  /** Reject when no ack arrives within this time (default 10,000 ms). */
  timeoutMs?: number;
  /**
   * When the socket an envelope went out on closes before its ack, send it again (same envelope_id,
   * `retry_attempt` + 1) on the next connection (default true); false rejects instead.
   */
  redeliver?: boolean;
  /**
   * Lose the first `n` acks of this envelope together with their socket: on receiving one, the stand-in
   * drops that socket as if the network broke before the ack got through, and sends the envelope again
   * once the bot has reconnected (default 0).
   */
  loseAcks?: number;
}

/** The bot's acknowledgement of one envelope. */
export interface SocketAck {
  envelope_id: string;
  /** The ack's `payload` (`{}` when the bot acknowledged without one). */
  payload: Record<string, unknown>;
  /** From the first send to the ack (ms). */
  ms: number;
  /** How many times the envelope was sent (more than 1 after a dropped socket). */
  deliveries: number;
}

interface PendingEnvelope {
  envelope: Record<string, unknown>;
  /** The socket it is out on, awaiting its ack; undefined while waiting for a connection. */
  sentOn?: unknown;
  deliveries: number;
  started: number;
  redeliver: boolean;
  loseAcks: number;
  resolve(a: SocketAck): void;
  reject(e: Error): void;
  timer: ReturnType<typeof setTimeout>;
}

export interface Failure {
  status?: number;
  error?: string;
  retryAfter?: number;
  delayMs?: number;
}

export interface DeliveryOptions {
  /** Unix seconds to sign with (default: now). */
  timestamp?: number;
  /** Sign with this secret instead of the configured signing secret. */
  secret?: string;
  /** Alter the body after signing (to test signature checks). */
  tamper?: (body: string) => string;
  /** Send without the X-Slack-Signature / X-Slack-Request-Timestamp headers. */
  omitHeaders?: boolean;
}

export interface CommandPayload {
  text: string;
  user_id: string;
  user_name?: string;
  channel_id?: string;
  team_id?: string;
  enterprise_id?: string;
  command?: string;
  trigger_id?: string;
  response_url?: string;
}

export interface BlockActionPayload {
  user_id: string;
  user_name?: string;
  team_id?: string;
  action_id: string;
  value: string;
  block_id?: string;
  channel_id: string;
  message_ts: string;
  thread_ts?: string;
  trigger_id?: string;
  response_url?: string;
}

export interface ViewSubmissionPayload {
  user_id: string;
  team_id?: string;
  callback_id: string;
  private_metadata: string;
  values: Record<string, Record<string, { type: string; value: string }>>;
  view_id?: string;
}

// --- Block Kit validation (standins/slack_blockkit.ts, re-exported for tests) ---------------------

import { validateMessage, validateView } from "./slack_blockkit.ts";
export {
  blockKitErrors,
  invalidBlocks,
  type MessageContent,
  type SlackRefusal,
  type Surface,
  validateMessage,
  validateView,
} from "./slack_blockkit.ts";

type Json = Record<string, unknown>;

function isObj(v: unknown): v is Json {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

// --- helpers ------------------------------------------------------------------------------------

/** How long a response_url works, and how many posts it takes (see handleResponseUrl). */
export const RESPONSE_URL_TTL_MS = 30 * 60_000;
export const RESPONSE_URL_MAX_USES = 5;

function json(body: unknown, status = 200, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { "content-type": "application/json; charset=utf-8", ...headers },
  });
}

/** Fields that Slack takes as JSON-encoded strings inside form posts. */
const JSON_FIELDS = new Set(["blocks", "attachments", "metadata", "view", "unfurls", "files"]);

class ArgError extends Error {
  constructor(readonly slackError: string) {
    super(slackError);
  }
}

interface Answer {
  status?: number;
  body: Json;
  headers?: Record<string, string>;
}

interface ResponseUrlBinding {
  user?: string;
  channel?: string;
  /** The message the interaction came from (for replace_original/delete_original). */
  originTs?: string;
  originEphemeral?: boolean;
  uses: number;
  created: number;
}

interface StoredView {
  id: string;
  hash: string;
  view: Json;
  trigger_id?: string;
}

function randomDigits(n: number): string {
  let s = "";
  for (const b of randomBytes(n)) s += String(b % 10);
  return s;
}

function randomId(prefix: string, n = 10): string {
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
  let s = prefix;
  for (const b of randomBytes(n)) s += alphabet[b % alphabet.length];
  return s;
}

// --- the stand-in -------------------------------------------------------------------------------

export class SlackStandIn {
  readonly apiUrl: string;
  readonly botToken: string;
  readonly signingSecret: string;
  readonly teamId: string;
  readonly botUserId: string;
  readonly botId = "B0STANDIN";
  readonly teamDomain: string;
  readonly appId: string;
  readonly verificationToken: string;
  readonly appToken: string;

  calls: RecordedCall[] = [];
  messages: StoredMessage[] = [];
  ephemerals: StoredMessage[] = [];
  /** Posts to response_urls that Slack accepted, in order (refused ones are only in `calls`, with their error). */
  responses: { url: string; body: Record<string, unknown>; at: number }[] = [];
  views: { trigger_id: string; view: unknown }[] = [];
  /** Files uploaded through the external upload flow, with their bytes as text and where they were shared. */
  files: StoredFile[] = [];

  private readonly base: string;
  private readonly users: Record<string, { name: string; real_name?: string; is_bot?: boolean }>;
  private readonly usergroups: Record<string, string[]>;
  private readonly channels: Record<string, ChannelInfo>;
  private readonly triggerTtlMs: number;
  private perChannelPerSecond: number | undefined;
  private readonly sent = new Map<string, number[]>(); // channel → accepted post/update times
  private readonly faults = new Map<string, { failure: Failure; remaining: number }[]>();
  private readonly responseUrls = new Map<string, ResponseUrlBinding>();
  private readonly triggers = new Map<string, { issued: number; used: boolean }>();
  private readonly storedViews = new Map<string, StoredView>();
  private lastTs = 0; // microseconds
  /** How far tests moved the stand-in's clock ({@link advanceClock}); it times response_urls and trigger_ids. */
  private clockOffsetMs = 0;
  private readonly stopping = new AbortController();

  // Socket Mode (started on the first apps.connections.open)
  /** Every envelope sent over a socket, redeliveries included, in order. */
  socketEnvelopes: Record<string, unknown>[] = [];
  /** Every acknowledgement the bot sent over a socket, in order. */
  socketAcks: { envelope_id: string; payload: Record<string, unknown>; at: number }[] = [];
  /** WebSocket connections the bot has opened so far. */
  socketConnectionsOpened = 0;
  private wss?: any;
  private wssStarting?: Promise<string>;
  private readonly sockets = new Set<any>(); // open connections that got their hello
  private readonly tickets = new Set<string>();
  private readonly pendingEnvelopes = new Map<string, PendingEnvelope>();
  private socketTurn = 0;

  private constructor(private readonly server: LoopbackServer, opts: SlackStandInOptions) {
    this.base = server.url;
    this.apiUrl = `${server.url}/api/`;
    this.botToken = opts.botToken ?? "xoxb-test-token";
    this.signingSecret = opts.signingSecret ?? "test-signing-secret";
    this.teamId = opts.teamId ?? "T0TEST";
    this.botUserId = opts.botUserId ?? "U0BOT";
    this.teamDomain = opts.teamDomain ?? "bisman-standin";
    this.appId = opts.appId ?? "A0STANDIN";
    this.verificationToken = opts.verificationToken ?? "test-verification-token";
    this.triggerTtlMs = opts.triggerTtlMs ?? 3000;
    this.appToken = opts.appToken ?? "xapp-1-A0STANDIN-test-app-token";
    this.users = {
      [this.botUserId]: { name: "bisman", real_name: "bisman-ops", is_bot: true },
      ...opts.users,
    };
    this.usergroups = { ...opts.usergroups };
    this.channels = { C0OPS: { name: "ops" }, ...opts.channels };
    this.perChannelPerSecond = opts.rateLimit?.perChannelPerSecond;
  }

  static async start(opts: SlackStandInOptions = {}): Promise<SlackStandIn> {
    const ref: { inst?: SlackStandIn } = {};
    const server = await serveLoopback((req) => {
      if (!ref.inst) return new Response("starting", { status: 503 });
      return ref.inst.handle(req);
    });
    ref.inst = new SlackStandIn(server, opts);
    return ref.inst;
  }

  async stop(): Promise<void> {
    this.stopping.abort();
    for (const p of this.pendingEnvelopes.values()) {
      clearTimeout(p.timer);
      p.reject(
        new Error(`Slack stand-in stopped before envelope ${p.envelope.envelope_id} was acknowledged`),
      );
    }
    this.pendingEnvelopes.clear();
    if (this.wss) {
      for (const ws of this.wss.clients) ws.terminate();
      await new Promise<void>((resolve) => this.wss.close(() => resolve()));
    }
    await this.server.close();
  }

  // --- test controls ---

  failNext(method: string, failure: Failure, times = 1): void {
    const q = this.faults.get(method) ?? [];
    q.push({ failure, remaining: times });
    this.faults.set(method, q);
  }

  /** The stand-in's clock (ms since epoch): real time plus what {@link advanceClock} added. */
  now(): number {
    return Date.now() + this.clockOffsetMs;
  }

  /**
   * Moves the stand-in's clock forward, so a test can let a response_url (30 minutes) or a trigger_id (3 s)
   * expire without waiting. Message timestamps keep real time.
   */
  advanceClock(ms: number): void {
    if (!(ms >= 0)) throw new RangeError(`advanceClock takes a non-negative duration, got ${ms}`);
    this.clockOffsetMs += ms;
  }

  /**
   * Stores a message as a person posted it (for tests of what the bot may not do to it: chat.update answers
   * cant_update_message). Returns its ts.
   */
  postAsUser(channel: string, user: string, text: string, threadTs?: string): string {
    const ts = this.nextTs();
    this.messages.push({ channel, ts, text, user, edits: 0, ...(threadTs ? { thread_ts: threadTs } : {}) });
    return ts;
  }

  /**
   * The bot's direct-message channel with `user`, once conversations.open made one (the sandbox console
   * shows each person their own).
   */
  directMessageOf(user: string): string | undefined {
    return Object.entries(this.channels).find(([, c]) => c.im_user === user)?.[0];
  }

  /**
   * Whether `user` may see what is shared in `channel`: the person of a direct message, anyone in a channel
   * the stand-in knows (every known user is taken to be in every channel, as chat.postEphemeral assumes).
   */
  canSee(user: string, channel: string): boolean {
    const c = this.channels[channel];
    if (!c || !this.users[user]) return false;
    return c.im_user ? c.im_user === user : true;
  }

  setRateLimit(perChannelPerSecond: number | undefined): void {
    this.perChannelPerSecond = perChannelPerSecond;
    this.sent.clear();
  }

  waitFor<T>(pred: () => T | undefined | false, timeoutMs = 5000, what = "Slack stand-in state"): Promise<T> {
    return pollFor(pred, timeoutMs, what);
  }

  /** A fresh response_url served by this stand-in. */
  responseUrl(binding: Partial<Omit<ResponseUrlBinding, "uses" | "created">> = {}): string {
    const id = `${randomDigits(10)}/${randomBytes(12).toString("hex")}`;
    this.responseUrls.set(id, { ...binding, uses: 0, created: this.now() });
    return `${this.base}/response/${id}`;
  }

  /** Issues a trigger_id in Slack's documented format ("132456.7890123.abcdef…"). */
  triggerId(): string {
    const id = `${randomDigits(10)}.${randomDigits(10)}.${randomBytes(16).toString("hex")}`;
    this.triggers.set(id, { issued: this.now(), used: false });
    return id;
  }

  sign(body: string, timestamp?: number, secret?: string) {
    const ts = String(timestamp ?? Math.floor(Date.now() / 1000));
    const mac = createHmac("sha256", secret ?? this.signingSecret).update(`v0:${ts}:${body}`).digest("hex");
    return { "x-slack-signature": `v0=${mac}`, "x-slack-request-timestamp": ts };
  }

  // --- delivery to the bot ---

  sendCommand(botEventsUrl: string, p: CommandPayload, opts: DeliveryOptions = {}): Promise<Response> {
    return this.deliver(botEventsUrl, new URLSearchParams(this.commandFields(p)).toString(), opts);
  }

  /** The fields of a slash command, as Slack sends them (form fields over HTTP, a JSON object over a socket). */
  private commandFields(p: CommandPayload): Record<string, string> {
    const channel = p.channel_id ?? "C0OPS";
    const teamId = p.team_id ?? this.teamId;
    const fields: Record<string, string> = {
      token: this.verificationToken,
      team_id: teamId,
      team_domain: this.teamDomain,
      channel_id: channel,
      channel_name: this.channels[channel]?.name ?? "privategroup",
      user_id: p.user_id,
      user_name: p.user_name ?? this.users[p.user_id]?.name ?? p.user_id.toLowerCase(),
      command: p.command ?? "/bisman",
      text: p.text,
      api_app_id: this.appId,
      is_enterprise_install: "false",
      response_url: p.response_url ?? this.responseUrl({ user: p.user_id, channel }),
      trigger_id: p.trigger_id ?? this.triggerId(),
    };
    if (p.enterprise_id) {
      fields.enterprise_id = p.enterprise_id;
      fields.enterprise_name = "Standin Enterprise";
    }
    return fields;
  }

  sendBlockAction(
    botEventsUrl: string,
    p: BlockActionPayload,
    opts: DeliveryOptions = {},
  ): Promise<Response> {
    return this.deliver(
      botEventsUrl,
      new URLSearchParams({ payload: JSON.stringify(this.blockActionPayload(p)) }).toString(),
      opts,
    );
  }

  /** The `block_actions` payload of a click on a stored message's button. */
  private blockActionPayload(p: BlockActionPayload): Json {
    const teamId = p.team_id ?? this.teamId;
    const stored = this.messages.find((m) => m.channel === p.channel_id && m.ts === p.message_ts);
    const eph = stored
      ? undefined
      : this.ephemerals.find((m) => m.channel === p.channel_id && m.ts === p.message_ts);
    const msg = stored ?? eph;
    const found = msg?.blocks ? findAction(msg.blocks, p.action_id) : undefined;
    const userName = p.user_name ?? this.users[p.user_id]?.name ?? p.user_id.toLowerCase();
    const container: Json = {
      type: "message",
      message_ts: p.message_ts,
      channel_id: p.channel_id,
      is_ephemeral: Boolean(eph),
    };
    const threadTs = p.thread_ts ?? msg?.thread_ts;
    if (threadTs) container.thread_ts = threadTs;
    const payload: Json = {
      type: "block_actions",
      user: { id: p.user_id, username: userName, name: userName, team_id: teamId },
      api_app_id: this.appId,
      token: this.verificationToken,
      container,
      trigger_id: p.trigger_id ?? this.triggerId(),
      team: { id: teamId, domain: this.teamDomain },
      enterprise: null,
      is_enterprise_install: false,
      channel: { id: p.channel_id, name: this.channels[p.channel_id]?.name ?? "privategroup" },
      state: { values: {} },
      response_url: p.response_url ?? this.responseUrl({
        user: p.user_id,
        channel: p.channel_id,
        originTs: p.message_ts,
        originEphemeral: Boolean(eph),
      }),
      actions: [{
        action_id: p.action_id,
        block_id: p.block_id ?? found?.block_id ?? randomId("", 5),
        ...(found?.text ? { text: found.text } : {}),
        value: p.value,
        type: "button",
        action_ts: this.nextTs(),
      }],
    };
    if (stored) {
      payload.message = {
        type: "message",
        user: stored.user,
        ts: stored.ts,
        bot_id: this.botId,
        app_id: this.appId,
        text: stored.text ?? "",
        team: this.teamId,
        ...(stored.blocks ? { blocks: stored.blocks } : {}),
        ...(stored.thread_ts ? { thread_ts: stored.thread_ts } : {}),
      };
    }
    return payload;
  }

  sendViewSubmission(
    botEventsUrl: string,
    p: ViewSubmissionPayload,
    opts: DeliveryOptions = {},
  ): Promise<Response> {
    const teamId = p.team_id ?? this.teamId;
    const stored = p.view_id
      ? this.storedViews.get(p.view_id)
      : [...this.storedViews.values()].reverse().find((v) => v.view.callback_id === p.callback_id);
    const userName = this.users[p.user_id]?.name ?? p.user_id.toLowerCase();
    const view: Json = {
      ...(stored?.view ?? { type: "modal", blocks: [] }),
      id: stored?.id ?? p.view_id ?? randomId("V"),
      team_id: teamId,
      callback_id: p.callback_id,
      private_metadata: p.private_metadata,
      state: { values: p.values },
      hash: stored?.hash ?? `${Math.floor(Date.now() / 1000)}.${randomId("", 8)}`,
      app_id: this.appId,
      bot_id: this.botId,
    };
    const payload: Json = {
      type: "view_submission",
      team: { id: teamId, domain: this.teamDomain },
      user: { id: p.user_id, username: userName, name: userName, team_id: teamId },
      api_app_id: this.appId,
      token: this.verificationToken,
      trigger_id: this.triggerId(),
      view,
      response_urls: [],
      is_enterprise_install: false,
      enterprise: null,
    };
    return this.deliver(
      botEventsUrl,
      new URLSearchParams({ payload: JSON.stringify(payload) }).toString(),
      opts,
    );
  }

  // --- delivery over Socket Mode ---

  /**
   * Delivers `/bisman …` as a `slash_commands` envelope over the bot's socket and resolves with its ack.
   * Waits for a connection when none is open (a bot that is reconnecting gets it once it is back).
   */
  sendCommandSocket(p: CommandPayload, opts: SocketDeliveryOptions = {}): Promise<SocketAck> {
    return this.sendEnvelope("slash_commands", this.commandFields(p), true, opts);
  }

  /** Delivers a button click as an `interactive` envelope (a `block_actions` payload). */
  sendBlockActionSocket(p: BlockActionPayload, opts: SocketDeliveryOptions = {}): Promise<SocketAck> {
    return this.sendEnvelope("interactive", this.blockActionPayload(p), false, opts);
  }

  /** Delivers any payload as an envelope of `type` (for fuzzing and events). */
  sendEnvelope(
    type: string,
    payload: unknown,
    acceptsResponsePayload = false,
    opts: SocketDeliveryOptions = {},
  ): Promise<SocketAck> {
    const envelopeId = crypto.randomUUID();
    const envelope = {
      envelope_id: envelopeId,
      type,
      payload,
      accepts_response_payload: acceptsResponsePayload,
    };
    const timeoutMs = opts.timeoutMs ?? 10_000;
    return new Promise<SocketAck>((resolve, reject) => {
      const pending: PendingEnvelope = {
        envelope,
        deliveries: 0,
        started: performance.now(),
        redeliver: opts.redeliver ?? true,
        loseAcks: opts.loseAcks ?? 0,
        resolve,
        reject,
        timer: setTimeout(() => {
          this.pendingEnvelopes.delete(envelopeId);
          reject(new Error(`No ack for ${type} envelope ${envelopeId} within ${timeoutMs} ms`));
        }, timeoutMs),
      };
      this.pendingEnvelopes.set(envelopeId, pending);
      this.transmit(pending);
    });
  }

  /** Open sockets (after their hello). */
  socketCount(): number {
    return this.sockets.size;
  }

  /** Waits until at least `n` sockets are open. */
  waitForSockets(n = 1, timeoutMs = 15_000): Promise<number> {
    return pollFor(
      () => this.sockets.size >= n && this.sockets.size,
      timeoutMs,
      `${n} open Socket Mode connection(s)`,
    );
  }

  /**
   * Drops every socket without a close frame, as a broken network would. Unacknowledged envelopes are sent
   * again once the bot reconnects. Returns how many sockets were dropped.
   */
  dropSockets(): number {
    const open = [...this.sockets];
    // Forget them all first, so nothing is re-sent on a socket that is about to be dropped too.
    for (const ws of open) this.sockets.delete(ws);
    for (const ws of open) ws.terminate();
    for (const ws of open) this.requeueFrom(ws);
    return open.length;
  }

  /** Sends Slack's `disconnect` message (e.g. `refresh_requested`, `warning`) on every open socket. */
  disconnectSockets(reason = "refresh_requested"): number {
    const open = [...this.sockets];
    for (const ws of open) {
      ws.send(JSON.stringify({ type: "disconnect", reason, debug_info: { host: "applink-standin" } }));
    }
    return open.length;
  }

  private ensureSocketServer(): Promise<string> {
    this.wssStarting ??= new Promise<string>((resolve, reject) => {
      const wss = new WebSocketServer({ host: "127.0.0.1", port: 0 });
      wss.once("error", reject);
      wss.once("listening", () => {
        this.wss = wss;
        wss.on("connection", (ws: any, req: any) => this.onSocket(ws, req));
        resolve(`ws://127.0.0.1:${wss.address().port}`);
      });
    });
    return this.wssStarting;
  }

  private async openConnection(token: string | undefined): Promise<Answer> {
    if (!token) return fail("not_authed");
    if (token === this.botToken || token.startsWith("xoxb-") || token.startsWith("xoxp-")) {
      return fail("not_allowed_token_type");
    }
    if (token !== this.appToken) return fail("invalid_auth");
    const base = await this.ensureSocketServer();
    const ticket = randomBytes(16).toString("hex");
    this.tickets.add(ticket);
    return { body: { ok: true, url: `${base}/link/?ticket=${ticket}&app_id=${this.appId}` } };
  }

  private onSocket(ws: any, req: { url?: string }): void {
    const ticket = new URL(req.url ?? "/", "ws://127.0.0.1").searchParams.get("ticket");
    // A URL from apps.connections.open is good for one connection.
    if (!ticket || !this.tickets.delete(ticket)) {
      ws.close(1008, "invalid or used ticket");
      return;
    }
    this.socketConnectionsOpened++;
    // A terminated socket reports ECONNRESET; that is the point of dropSockets().
    ws.on("error", () => {});
    ws.on("close", () => this.forgetSocket(ws));
    ws.on("message", (data: unknown) => this.onSocketMessage(ws, String(data)));
    this.sockets.add(ws);
    ws.send(JSON.stringify({
      type: "hello",
      num_connections: this.sockets.size,
      debug_info: { host: "applink-standin", build_number: 1, approximate_connection_time: 18060 },
      connection_info: { app_id: this.appId },
    }));
    for (const p of this.pendingEnvelopes.values()) if (!p.sentOn) this.transmit(p);
  }

  private forgetSocket(ws: unknown): void {
    if (this.sockets.delete(ws)) this.requeueFrom(ws);
  }

  /** Envelopes out on a closed socket without an ack go out again (or fail, without `redeliver`). */
  private requeueFrom(ws: unknown): void {
    for (const p of [...this.pendingEnvelopes.values()]) {
      if (p.sentOn !== ws) continue;
      p.sentOn = undefined;
      if (!p.redeliver) {
        clearTimeout(p.timer);
        this.pendingEnvelopes.delete(String(p.envelope.envelope_id));
        p.reject(new Error(`The socket closed before envelope ${p.envelope.envelope_id} was acknowledged`));
      } else {
        this.transmit(p);
      }
    }
  }

  private onSocketMessage(ws: any, text: string): void {
    let msg: unknown;
    try {
      msg = JSON.parse(text);
    } catch {
      return;
    }
    if (!isObj(msg) || typeof msg.envelope_id !== "string") return;
    const payload = isObj(msg.payload) ? msg.payload : {};
    const p = this.pendingEnvelopes.get(msg.envelope_id);
    if (p && p.loseAcks > 0) {
      p.loseAcks--;
      this.forgetSocket(ws);
      ws.terminate();
      return;
    }
    this.socketAcks.push({ envelope_id: msg.envelope_id, payload, at: Date.now() });
    if (!p) return;
    this.pendingEnvelopes.delete(msg.envelope_id);
    clearTimeout(p.timer);
    p.resolve({
      envelope_id: msg.envelope_id,
      payload,
      ms: performance.now() - p.started,
      deliveries: p.deliveries,
    });
  }

  /** Sends a pending envelope on the next open socket (round robin), or leaves it for the next connection. */
  private transmit(p: PendingEnvelope): void {
    const open = [...this.sockets].filter((ws) => ws.readyState === 1);
    if (!open.length) return;
    const ws = open[this.socketTurn++ % open.length];
    p.deliveries++;
    const envelope = p.deliveries > 1
      ? { ...p.envelope, retry_attempt: p.deliveries - 1, retry_reason: "timeout" }
      : p.envelope;
    p.sentOn = ws;
    this.socketEnvelopes.push(envelope);
    ws.send(JSON.stringify(envelope));
  }

  /** POSTs a signed form body to the bot. The caller must consume or cancel the Response body. */
  private deliver(url: string, body: string, opts: DeliveryOptions): Promise<Response> {
    const headers: Record<string, string> = { "content-type": "application/x-www-form-urlencoded" };
    if (!opts.omitHeaders) Object.assign(headers, this.sign(body, opts.timestamp, opts.secret));
    const sentBody = opts.tamper ? opts.tamper(body) : body;
    return fetch(url, { method: "POST", headers, body: sentBody });
  }

  // --- HTTP side ---

  private async handle(req: Request): Promise<Response> {
    const url = new URL(req.url);
    if (url.pathname.startsWith("/api/")) return await this.handleApi(req, url.pathname.slice(5));
    if (url.pathname.startsWith("/response/") && req.method === "POST") {
      return await this.handleResponseUrl(req, url.pathname.slice("/response/".length));
    }
    if (url.pathname.startsWith("/upload/") && req.method === "POST") {
      return await this.handleUpload(req, url.pathname.slice("/upload/".length));
    }
    return new Response("Not Found", { status: 404 });
  }

  private nextTs(): string {
    const now = Date.now() * 1000;
    this.lastTs = Math.max(now, this.lastTs + 1);
    const sec = Math.floor(this.lastTs / 1_000_000);
    const micro = this.lastTs % 1_000_000;
    return `${sec}.${String(micro).padStart(6, "0")}`;
  }

  private takeFault(method: string): Failure | undefined {
    const q = this.faults.get(method);
    if (!q?.length) return undefined;
    const f = q[0];
    f.remaining--;
    if (f.remaining <= 0) q.shift();
    return f.failure;
  }

  /** Applies an injected fault; returns an Answer if the call must fail, undefined to proceed. */
  private async applyFault(f: Failure | undefined): Promise<Answer | undefined> {
    if (!f) return undefined;
    if (f.delayMs) await sleep(f.delayMs, this.stopping.signal);
    if (f.status === 429) {
      return {
        status: 429,
        body: { ok: false, error: f.error ?? "ratelimited" },
        headers: { "retry-after": String(f.retryAfter ?? 1) },
      };
    }
    if (f.status !== undefined && f.status !== 200) {
      return { status: f.status, body: { ok: false, error: f.error ?? "internal_error" } };
    }
    if (f.error) return { body: { ok: false, error: f.error } };
    return undefined;
  }

  private async parseArgs(req: Request, url: URL): Promise<{ args: Json; bodyToken?: string }> {
    const args: Json = {};
    for (const [k, v] of url.searchParams) args[k] = v;
    if (req.method !== "POST") return { args: this.decodeJsonFields(args) };
    const type = req.headers.get("content-type") ?? "";
    if (type.includes("application/json")) {
      const text = await req.text();
      if (text.trim()) {
        let parsed: unknown;
        try {
          parsed = JSON.parse(text);
        } catch {
          throw new ArgError("invalid_json");
        }
        if (!isObj(parsed)) throw new ArgError("invalid_json");
        Object.assign(args, parsed);
      }
      // A token inside a JSON body is not accepted by Slack; only the Authorization header is.
      delete args.token;
      return { args };
    }
    if (type.includes("multipart/form-data")) {
      for (const [k, v] of await req.formData()) if (typeof v === "string") args[k] = v;
    } else {
      for (const [k, v] of new URLSearchParams(await req.text())) args[k] = v;
    }
    const bodyToken = typeof args.token === "string" ? args.token : undefined;
    delete args.token;
    return { args: this.decodeJsonFields(args), bodyToken };
  }

  private decodeJsonFields(args: Json): Json {
    for (const k of JSON_FIELDS) {
      const v = args[k];
      if (typeof v !== "string") continue;
      try {
        args[k] = JSON.parse(v);
      } catch {
        if (k === "blocks") throw new ArgError("invalid_blocks_format");
        if (k === "metadata") throw new ArgError("invalid_metadata_format");
        throw new ArgError("invalid_arguments");
      }
    }
    return args;
  }

  private async handleApi(req: Request, method: string): Promise<Response> {
    const url = new URL(req.url);
    const rec: RecordedCall = { method, args: {}, at: Date.now(), status: 0 };
    this.calls.push(rec);
    const finish = (a: Answer): Response => {
      rec.status = a.status ?? 200;
      if (a.body.ok === false && typeof a.body.error === "string") rec.error = a.body.error;
      return json(a.body, a.status ?? 200, a.headers);
    };

    let token: string | undefined;
    try {
      const parsed = await this.parseArgs(req, url);
      rec.args = parsed.args;
      const auth = req.headers.get("authorization");
      token = auth?.startsWith("Bearer ") ? auth.slice(7).trim() : parsed.bodyToken;
      if (token) rec.token = token;
    } catch (e) {
      if (e instanceof ArgError) return finish({ body: { ok: false, error: e.slackError } });
      throw e;
    }

    const fault = await this.applyFault(this.takeFault(method));
    if (fault) return finish(fault);

    // Socket Mode's method takes the app-level token, not the bot token.
    if (method === "apps.connections.open") return finish(await this.openConnection(token));

    const handler = this.methods[method];
    if (!handler) return finish({ body: { ok: false, error: "unknown_method", req_method: method } });
    if (!token) return finish({ body: { ok: false, error: "not_authed" } });
    if (token !== this.botToken) return finish({ body: { ok: false, error: "invalid_auth" } });

    try {
      return finish(handler(rec.args));
    } catch (e) {
      if (e instanceof ArgError) return finish({ body: { ok: false, error: e.slackError } });
      throw e;
    }
  }

  /**
   * A channel the bot can write to, or the refusal (https://docs.slack.dev/reference/methods/chat.postMessage
   * errors: channel_not_found "Value passed for channel was invalid", not_in_channel "Cannot post user messages
   * to a channel they are not in"; the manifest has chat:write without chat:write.public).
   */
  private checkChannel(channel: string | undefined): Answer | undefined {
    const c = channel ? this.channels[channel] : undefined;
    if (!c) return fail("channel_not_found");
    if (c.is_member === false) return fail("not_in_channel");
    return undefined;
  }

  /** Per-channel limit for chat.postMessage/chat.update; returns a 429 Answer when exceeded. */
  private rateLimit(channel: string): Answer | undefined {
    const limit = this.perChannelPerSecond;
    if (!limit) return undefined;
    const now = Date.now();
    const recent = (this.sent.get(channel) ?? []).filter((t) => now - t < 1000);
    this.sent.set(channel, recent);
    if (recent.length >= limit) {
      const waitMs = 1000 - (now - recent[0]);
      return {
        status: 429,
        body: { ok: false, error: "ratelimited" },
        headers: { "retry-after": String(Math.max(1, Math.ceil(waitMs / 1000))) },
      };
    }
    recent.push(now);
    return undefined;
  }

  /** Validates text/blocks like Slack (standins/slack_blockkit.ts); returns the error Answer for invalid content. */
  private checkContent(args: Json, opts: { requireContent: boolean }): Answer | undefined {
    const refusal = validateMessage(args, opts);
    return refusal ? { body: refusal as unknown as Json } : undefined;
  }

  private readonly methods: Record<string, (args: Json) => Answer> = {
    "auth.test": () => ({
      body: {
        ok: true,
        url: `https://${this.teamDomain}.slack.com/`,
        team: "Bisman Stand-in",
        user: this.users[this.botUserId]?.name ?? "bisman",
        team_id: this.teamId,
        user_id: this.botUserId,
        bot_id: this.botId,
        is_enterprise_install: false,
      },
    }),

    "chat.postMessage": (args) => {
      const channel = str(args.channel);
      const where = this.checkChannel(channel);
      if (where || !channel) return where ?? fail("channel_not_found");
      const bad = this.checkContent(args, { requireContent: true });
      if (bad) return bad;
      const limited = this.rateLimit(channel);
      if (limited) return limited;
      const ts = this.nextTs();
      const threadTs = str(args.thread_ts);
      const m: StoredMessage = {
        channel,
        ts,
        ...(threadTs ? { thread_ts: threadTs } : {}),
        text: typeof args.text === "string" ? args.text : "",
        ...(Array.isArray(args.blocks) ? { blocks: args.blocks } : {}),
        user: this.botUserId,
        edits: 0,
        ...(args.metadata !== undefined ? { metadata: args.metadata } : {}),
      };
      this.messages.push(m);
      return { body: { ok: true, channel, ts, message: this.messageJson(m) } };
    },

    "chat.update": (args) => {
      const channel = str(args.channel);
      const where = this.checkChannel(channel);
      if (where || !channel) return where ?? fail("channel_not_found");
      const ts = str(args.ts);
      // Ephemeral messages are not stored messages: chat.update cannot find them (their response_url edits them).
      const m = ts ? this.messages.find((x) => x.channel === channel && x.ts === ts) : undefined;
      if (!m) return fail("message_not_found");
      // https://docs.slack.dev/reference/methods/chat.update: cant_update_message, "Authenticated user does not
      // have permission to update this message" — a bot token edits only the bot's own messages.
      if (m.user !== this.botUserId) return fail("cant_update_message");
      if (args.text === undefined && args.blocks === undefined && args.attachments === undefined) {
        return fail("no_text");
      }
      const bad = this.checkContent(args, { requireContent: false });
      if (bad) return bad;
      const limited = this.rateLimit(channel);
      if (limited) return limited;
      // Fields left out keep their previous value (blocks: [] removes them), per the method reference.
      if (typeof args.text === "string") m.text = args.text;
      if (Array.isArray(args.blocks)) {
        if (args.blocks.length) m.blocks = args.blocks;
        else delete m.blocks;
      }
      if (args.metadata !== undefined) m.metadata = args.metadata;
      m.edits++;
      return { body: { ok: true, channel, ts: m.ts, text: m.text ?? "", message: this.messageJson(m) } };
    },

    "chat.postEphemeral": (args) => {
      const channel = str(args.channel);
      const where = this.checkChannel(channel);
      if (where || !channel) return where ?? fail("channel_not_found");
      // https://docs.slack.dev/reference/methods/chat.postEphemeral: user_not_in_channel, "Intended recipient
      // is not in the specified channel" (every known user is taken to be in every known channel).
      const user = str(args.user);
      if (!user || !this.users[user]) return fail("user_not_in_channel");
      const bad = this.checkContent(args, { requireContent: true });
      if (bad) return bad;
      const ts = this.nextTs();
      const threadTs = str(args.thread_ts);
      this.ephemerals.push({
        channel,
        ts,
        ...(threadTs ? { thread_ts: threadTs } : {}),
        text: typeof args.text === "string" ? args.text : "",
        ...(Array.isArray(args.blocks) ? { blocks: args.blocks } : {}),
        user: this.botUserId,
        ephemeral_user: user,
        edits: 0,
      });
      return { body: { ok: true, message_ts: ts } };
    },

    "chat.getPermalink": (args) => {
      const channel = str(args.channel);
      if (!channel) return fail("channel_not_found");
      const ts = str(args.message_ts);
      const m = ts ? this.messages.find((x) => x.channel === channel && x.ts === ts) : undefined;
      if (!m) return fail("message_not_found");
      let permalink = `https://${this.teamDomain}.slack.com/archives/${channel}/p${m.ts.replace(".", "")}`;
      if (m.thread_ts && m.thread_ts !== m.ts) permalink += `?thread_ts=${m.thread_ts}&cid=${channel}`;
      return { body: { ok: true, channel, permalink } };
    },

    "users.info": (args) => {
      const id = str(args.user);
      const u = id ? this.users[id] : undefined;
      if (!id || !u) return fail("user_not_found");
      const realName = u.real_name ?? u.name;
      return {
        body: {
          ok: true,
          user: {
            id,
            team_id: this.teamId,
            name: u.name,
            deleted: false,
            real_name: realName,
            tz: "Europe/Amsterdam",
            tz_label: "Central European Time",
            tz_offset: 3600,
            is_admin: false,
            is_owner: false,
            is_bot: Boolean(u.is_bot),
            is_app_user: false,
            updated: 1700000000,
            profile: {
              real_name: realName,
              real_name_normalized: realName,
              display_name: u.name,
              display_name_normalized: u.name,
              team: this.teamId,
            },
          },
        },
      };
    },

    "usergroups.users.list": (args) => {
      const id = str(args.usergroup);
      const members = id ? this.usergroups[id] : undefined;
      if (!members) return fail("no_such_subteam");
      return { body: { ok: true, users: [...members] } };
    },

    "conversations.info": (args) => {
      const id = str(args.channel);
      const c = id ? this.channels[id] : undefined;
      if (!id || !c) return fail("channel_not_found");
      return {
        body: {
          ok: true,
          channel: {
            id,
            name: c.name,
            name_normalized: c.name,
            is_channel: !c.is_private,
            is_group: Boolean(c.is_private),
            is_im: false,
            is_mpim: false,
            is_private: Boolean(c.is_private),
            is_archived: false,
            is_general: false,
            is_member: true,
            is_shared: false,
            is_ext_shared: false,
            is_org_shared: false,
            context_team_id: this.teamId,
            created: 1700000000,
            creator: this.botUserId,
            topic: { value: "", creator: "", last_set: 0 },
            purpose: { value: "", creator: "", last_set: 0 },
          },
        },
      };
    },

    "conversations.open": (args) => {
      const users = str(args.users)?.split(",").map((u) => u.trim()).filter(Boolean) ?? [];
      if (!users.length) return fail("users_list_not_supplied");
      if (users.length > 1) return fail("not_implemented"); // multi-person DMs are not needed here
      if (!this.users[users[0]]) return fail("user_not_found");
      const id = `D${users[0].slice(1)}`;
      this.channels[id] ??= { name: `dm-${users[0]}`, is_private: true, im_user: users[0] };
      return { body: { ok: true, channel: { id, is_im: true, user: users[0] } } };
    },

    "files.getUploadURLExternal": (args) => {
      const filename = str(args.filename);
      const length = Number(args.length);
      if (!filename) return fail("invalid_arguments");
      if (!Number.isInteger(length) || length < 0) return fail("invalid_arguments");
      const id = randomId("F");
      this.files.push({ id, filename, length, completed: false });
      return { body: { ok: true, upload_url: `${this.base}/upload/${id}`, file_id: id } };
    },

    "files.completeUploadExternal": (args) => {
      const list = args.files;
      if (!Array.isArray(list) || !list.length) return fail("invalid_arguments");
      const channel = str(args.channel_id);
      if (channel !== undefined && !/^[CGDZ][A-Z0-9]+$/.test(channel)) return fail("invalid_arguments");
      if (channel) {
        const where = this.checkChannel(channel);
        if (where) return where;
      }
      // Check every file before sharing any, so a refused call shares nothing.
      const found: StoredFile[] = [];
      for (const item of list) {
        const f = isObj(item) ? this.files.find((x) => x.id === item.id) : undefined;
        if (!f) return fail("file_not_found");
        if (f.content === undefined) return fail("file_upload_not_complete");
        if (f.completed) return fail("invalid_arguments"); // "can only be called once"
        found.push(f);
      }
      const sharedTs = channel ? this.nextTs() : undefined;
      const done: Json[] = [];
      list.forEach((item, i) => {
        const f = found[i];
        f.completed = true;
        if (isObj(item) && typeof item.title === "string") f.title = item.title;
        if (channel) f.channel = channel;
        if (sharedTs) f.shared_ts = sharedTs;
        if (typeof args.initial_comment === "string") f.initial_comment = args.initial_comment;
        if (typeof args.thread_ts === "string") f.thread_ts = args.thread_ts;
        done.push({ id: f.id, title: f.title ?? f.filename, name: f.filename, size: f.length });
      });
      return { body: { ok: true, files: done } };
    },

    "views.open": (args) => {
      const trigger = str(args.trigger_id);
      const t = trigger ? this.triggers.get(trigger) : undefined;
      if (!trigger || !t) return fail("invalid_trigger_id");
      if (t.used) return fail("exchanged_trigger_id");
      // https://docs.slack.dev/interactivity/handling-user-interaction#modal_responses: a trigger_id
      // "expires in 3 seconds" and is exchanged once (views.open errors expired_trigger_id, exchanged_trigger_id).
      if (this.now() - t.issued > this.triggerTtlMs) return fail("expired_trigger_id");
      const bad = this.checkView(args.view);
      if (bad) return bad;
      t.used = true;
      const view = args.view as Json;
      this.views.push({ trigger_id: trigger, view });
      const stored: StoredView = { id: randomId("V"), hash: this.newHash(), view, trigger_id: trigger };
      this.storedViews.set(stored.id, stored);
      return { body: { ok: true, view: this.viewJson(stored) } };
    },

    "views.update": (args) => {
      const id = str(args.view_id);
      const external = str(args.external_id);
      const stored = id
        ? this.storedViews.get(id)
        : [...this.storedViews.values()].find((v) => external && v.view.external_id === external);
      if (!stored) return fail("not_found");
      if (typeof args.hash === "string" && args.hash !== stored.hash) return fail("hash_conflict");
      const bad = this.checkView(args.view);
      if (bad) return bad;
      stored.view = args.view as Json;
      stored.hash = this.newHash();
      return { body: { ok: true, view: this.viewJson(stored) } };
    },
  };

  private checkView(view: unknown): Answer | undefined {
    const refusal = validateView(view);
    return refusal ? { body: refusal as unknown as Json } : undefined;
  }

  private newHash(): string {
    return `${Math.floor(Date.now() / 1000)}.${randomBytes(6).toString("hex")}`;
  }

  private viewJson(v: StoredView): Json {
    return {
      ...v.view,
      id: v.id,
      team_id: this.teamId,
      type: v.view.type ?? "modal",
      private_metadata: v.view.private_metadata ?? "",
      callback_id: v.view.callback_id ?? "",
      state: { values: {} },
      hash: v.hash,
      clear_on_close: false,
      notify_on_close: false,
      root_view_id: v.id,
      previous_view_id: null,
      app_id: this.appId,
      external_id: v.view.external_id ?? "",
      bot_id: this.botId,
    };
  }

  private messageJson(m: StoredMessage): Json {
    return {
      type: "message",
      user: m.user,
      bot_id: this.botId,
      app_id: this.appId,
      text: m.text ?? "",
      ts: m.ts,
      team: this.teamId,
      ...(m.thread_ts ? { thread_ts: m.thread_ts } : {}),
      ...(m.blocks ? { blocks: m.blocks } : {}),
      ...(m.metadata !== undefined ? { metadata: m.metadata } : {}),
      ...(m.edits ? { edited: { user: this.botUserId, ts: this.nextTs() } } : {}),
    };
  }

  // --- file uploads (the upload URL of files.getUploadURLExternal) ---

  private async handleUpload(req: Request, id: string): Promise<Response> {
    const f = this.files.find((x) => x.id === id);
    if (!f) return new Response("file not found", { status: 404 });
    const type = req.headers.get("content-type") ?? "";
    let bytes: Uint8Array;
    if (type.includes("multipart/form-data")) {
      // "Files can be sent as raw bytes or can be multipart form encoded" (files.getUploadURLExternal), with
      // no field name required: curl's examples use `-F filename=@…`, @slack/web-api's files.uploadV2 a
      // part named `body`. The one file part is the file.
      const parts = [...(await req.formData()).values()].filter((v): v is File => typeof v !== "string");
      if (parts.length !== 1) return new Response("expected one file part", { status: 400 });
      const part = parts[0];
      bytes = new Uint8Array(await part.arrayBuffer());
    } else {
      bytes = new Uint8Array(await req.arrayBuffer());
    }
    if (bytes.length !== f.length) {
      return new Response(`length mismatch: announced ${f.length}, got ${bytes.length}`, { status: 400 });
    }
    f.content = new TextDecoder().decode(bytes);
    return new Response(`OK - ${bytes.length}`, { status: 200 });
  }

  // --- response_url ---

  private async handleResponseUrl(req: Request, id: string): Promise<Response> {
    const at = Date.now();
    const rec: RecordedCall = { method: "response_url", args: {}, at, status: 0 };
    this.calls.push(rec);
    const answer = (status: number, body: Json): Response => {
      rec.status = status;
      if (body.ok === false && typeof body.error === "string") rec.error = body.error;
      if (status === 200 && body.ok === true) {
        this.responses.push({ url: `${this.base}/response/${id}`, body: rec.args, at });
      }
      return json(body, status);
    };
    const binding = this.responseUrls.get(id);
    const text = await req.text();
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      body = undefined;
    }
    if (!isObj(body)) return answer(400, { ok: false, error: "invalid_payload" });
    rec.args = body;
    if (!binding) return answer(404, { ok: false, error: "invalid_url" });

    const fault = await this.applyFault(this.takeFault("response_url"));
    if (fault) return answer(fault.status ?? 200, fault.body);

    // https://docs.slack.dev/interactivity/handling-user-interaction#message_responses: a response_url can be
    // used "up to 5 times within 30 minutes". The page does not say how a later post is answered: the stand-in
    // answers HTTP 404 with `expired_url` (past 30 minutes) or `used_url` (a sixth post), names of its own;
    // what the bot meets is that the post fails (Bolt's respond() rejects). Every post counts, whatever it carried.
    if (this.now() - binding.created > RESPONSE_URL_TTL_MS) {
      return answer(404, { ok: false, error: "expired_url" });
    }
    if (binding.uses >= RESPONSE_URL_MAX_USES) return answer(404, { ok: false, error: "used_url" });
    binding.uses++;
    const origin = binding.originTs ? this.findOrigin(binding) : undefined;
    // A slash command's response_url edits the message the command produced: its immediate answer, which
    // went back over HTTP and is not stored here. Slack accepts the edit; `responses` records it.
    const commandEdit = !binding.originTs &&
      (body.delete_original === true || body.replace_original === true);
    if (commandEdit) {
      const bad = body.delete_original === true
        ? undefined
        : this.checkContent(body, { requireContent: true });
      return bad ? answer(400, bad.body) : answer(200, { ok: true });
    }
    if (body.delete_original === true) {
      if (!origin) return answer(404, { ok: false, error: "message_not_found" });
      origin.list.splice(origin.list.indexOf(origin.msg), 1);
      return answer(200, { ok: true });
    }
    const bad = this.checkContent(body, { requireContent: true });
    if (bad) return answer(400, bad.body);
    if (body.replace_original === true) {
      if (!origin) return answer(404, { ok: false, error: "message_not_found" });
      origin.msg.text = typeof body.text === "string" ? body.text : "";
      if (Array.isArray(body.blocks)) origin.msg.blocks = body.blocks;
      else delete origin.msg.blocks;
      origin.msg.edits++;
      return answer(200, { ok: true });
    }
    const channel = binding.channel ?? "C0OPS";
    const threadTs = str(body.thread_ts);
    const m: StoredMessage = {
      channel,
      ts: this.nextTs(),
      ...(threadTs ? { thread_ts: threadTs } : {}),
      text: typeof body.text === "string" ? body.text : "",
      ...(Array.isArray(body.blocks) ? { blocks: body.blocks } : {}),
      user: this.botUserId,
      edits: 0,
    };
    if (body.response_type === "in_channel") {
      this.messages.push(m);
    } else {
      if (binding.user) m.ephemeral_user = binding.user;
      this.ephemerals.push(m);
    }
    return answer(200, { ok: true });
  }

  private findOrigin(b: ResponseUrlBinding): { list: StoredMessage[]; msg: StoredMessage } | undefined {
    const list = b.originEphemeral ? this.ephemerals : this.messages;
    const msg = list.find((m) => m.ts === b.originTs && (!b.channel || m.channel === b.channel));
    return msg ? { list, msg } : undefined;
  }
}

function str(v: unknown): string | undefined {
  return typeof v === "string" && v.length > 0 ? v : undefined;
}

function fail(error: string): Answer {
  return { body: { ok: false, error } };
}

/** Finds the block_id and button text of an interactive element by action_id. */
function findAction(blocks: unknown[], actionId: string): { block_id?: string; text?: unknown } | undefined {
  for (const b of blocks) {
    if (!isObj(b)) continue;
    const candidates = [
      ...(Array.isArray(b.elements) ? b.elements : []),
      ...(b.accessory ? [b.accessory] : []),
    ];
    for (const e of candidates) {
      if (isObj(e) && e.action_id === actionId) {
        return { block_id: typeof b.block_id === "string" ? b.block_id : undefined, text: e.text };
      }
    }
  }
  return undefined;
}
