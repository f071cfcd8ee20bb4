// The Origin check is hand-written (crossSiteRefusal): Hono's csrf() lets a foreign JSON POST through.
/**
 * The sandbox console's server: serves the static page (sandbox/console/) and a small JSON API that acts
 * on the Slack stand-in as the selected user. Commands, clicks and modal submissions reach the bot the
 * way Slack's would (signed form posts from the stand-in); what the page shows is the stand-in's record of
 * what the bot posted, edited, answered ephemerally or opened as a modal. Nothing here calls the bot's
 * modules directly, except reading the registered subcommands for completion.
 *
 * @module
 */

import { Hono } from "hono";
import { fileURLToPath } from "node:url";
import type { SlackStandIn, StoredFile, StoredMessage } from "../standins/slack.ts";

/** A person the console can act as. */
export interface SandboxUser {
  id: string;
  name: string;
  /** What this person may do, as shown in the user switcher. */
  role: string;
  color: string;
}

/** What the completion box offers. */
export interface SubcommandInfo {
  name: string;
  usage: string;
  summary: string;
  examples: readonly string[];
  destructive?: boolean;
}

/** One "make trouble" button as the page shows it. */
export interface TroubleInfo {
  id: string;
  label: string;
  description: string;
  enabled: boolean;
  /** Why it is disabled ("coming with …"). */
  reason?: string;
}

/** The "make trouble" panel, implemented in sandbox/trouble.ts. */
export interface TroublePanel {
  list(): TroubleInfo[];
  run(id: string, user: string): Promise<string>;
}

export interface ConsoleOptions {
  slack: SlackStandIn;
  /** The bot's `POST /slack/events` URL. */
  eventsUrl: string;
  teamId: string;
  channel: { id: string; name: string };
  users: SandboxUser[];
  subcommands: () => SubcommandInfo[];
  trouble: TroublePanel;
  /** How long a feed request waits for a change (ms). */
  longPollMs?: number;
}

/** Where a clicked element lives, so the click can be delivered like Slack would. */
type Source =
  | { type: "message"; channel: string; ts: string }
  | { type: "ephemeral"; channel: string; ts: string }
  | { type: "local"; id: string };

/** A shared file as the page shows it; its bytes come from `GET /api/files/:id`. */
interface FileCard {
  id: string;
  name: string;
  title: string;
  /** Bytes, as announced to files.getUploadURLExternal and checked on upload. */
  size: number;
  channel: string;
  /** `#ops`, or `bisman-ops (direct message)`. */
  where: string;
}

/** One line of the feed as the page renders it. */
interface Entry {
  key: string;
  ts: string;
  thread_ts?: string;
  /** `bot` or the Slack user ID of the person. */
  author: string;
  kind: "message" | "ephemeral" | "command" | "file";
  file?: FileCard;
  text: string;
  blocks?: unknown[];
  edited: boolean;
  ephemeral: boolean;
  replies?: number;
  source: Source;
}

/**
 * What the console itself remembers: commands typed and their acknowledgements, which the stand-in
 * does not store (Slack shows a slash command's ack to its sender only).
 */
interface LocalItem {
  id: string;
  user: string;
  ts: string;
  command: string;
  ack?: { text?: string; blocks?: unknown[]; response_type?: string };
  /** response_urls handed to the bot for this item (the command's, and any click on its ack). */
  responseUrls: string[];
}

interface ModalState {
  closed: Set<string>;
  errors: Map<string, Record<string, string>>;
  overrides: Map<string, Record<string, unknown>>;
}

/** Slack's message ts for now: seconds with microseconds. */
function tsNow(): string {
  const us = Date.now() * 1000 + Math.floor(Math.random() * 1000);
  return `${Math.floor(us / 1_000_000)}.${String(us % 1_000_000).padStart(6, "0")}`;
}

/** The stand-in keeps opened views privately; the console reads them (id, trigger, current view). */
function storedViews(
  slack: SlackStandIn,
): { id: string; hash: string; view: Record<string, unknown>; trigger_id?: string }[] {
  const map = (slack as unknown as { storedViews?: Map<string, never> }).storedViews;
  return map ? [...map.values()] : [];
}

const CONTENT_TYPES: Record<string, string> = {
  html: "text/html; charset=utf-8",
  js: "text/javascript; charset=utf-8",
  css: "text/css; charset=utf-8",
  png: "image/png",
  json: "application/json; charset=utf-8",
};

/** The console's app, and `close()` to end waiting feed requests at once (a server shutdown waits for them). */
export type ConsoleApp = Hono & { close(): void };

/** Creates the console's Hono app. */
export function createConsoleApp(opts: ConsoleOptions): ConsoleApp {
  const { slack } = opts;
  const staticDir = fileURLToPath(new URL("./console/", import.meta.url));
  const local: LocalItem[] = [];
  const triggers = new Map<string, string>(); // trigger_id → user
  const modals: ModalState = { closed: new Set(), errors: new Map(), overrides: new Map() };
  let localVersion = 0;
  let closed = false;
  let version = 0;
  let lastSignature = "";
  const longPollMs = opts.longPollMs ?? 20_000;

  const userIds = new Set(opts.users.map((u) => u.id));
  const checkUser = (u: unknown): string => {
    if (typeof u !== "string" || !userIds.has(u)) throw new HttpError(400, "unknown user");
    return u;
  };
  const trigger = (user: string) => {
    const id = slack.triggerId();
    triggers.set(id, user);
    return id;
  };

  /** Changes whenever anything the page could show changed. */
  const signature = () => {
    const edits = slack.messages.reduce((n, m) => n + m.edits, 0);
    const views = storedViews(slack).map((v) => v.hash).join(",");
    return [
      slack.messages.length,
      edits,
      slack.ephemerals.length,
      slack.ephemerals.reduce((n, m) => n + m.edits, 0),
      slack.responses.length,
      slack.files.filter((f) => f.completed).length,
      views,
      localVersion,
    ].join("|");
  };
  const currentVersion = () => {
    const sig = signature();
    if (sig !== lastSignature) {
      lastSignature = sig;
      version++;
    }
    return version;
  };

  const author = (m: StoredMessage) => (m.user === slack.botUserId || !m.user ? "bot" : m.user);

  /**
   * The files `user` may see: shared (completed with a channel) in a conversation they are in. A file in
   * alice's direct message with the bot is hers alone, as in Slack; one never shared is nobody's.
   */
  const visibleFile = (f: StoredFile, user: string): f is StoredFile & { channel: string } =>
    f.completed && f.content !== undefined && !!f.channel && slack.canSee(user, f.channel);

  const fileEntry = (f: StoredFile & { channel: string }): Entry => ({
    key: `f:${f.id}`,
    ts: f.shared_ts ?? "0",
    ...(f.thread_ts ? { thread_ts: f.thread_ts } : {}),
    author: "bot",
    kind: "file",
    text: f.initial_comment ?? "",
    file: {
      id: f.id,
      name: f.filename,
      title: f.title ?? f.filename,
      size: f.length,
      channel: f.channel,
      where: f.channel === opts.channel.id ? `#${opts.channel.name}` : "bisman-ops (direct message)",
    },
    edited: false,
    ephemeral: false,
    source: { type: "message", channel: f.channel, ts: f.shared_ts ?? "0" },
  });

  /** Messages, ephemerals and files of one conversation as `user` sees them. */
  function conversation(channel: string, user: string): Entry[] {
    const entries: Entry[] = [];
    for (const f of slack.files) {
      if (f.channel === channel && visibleFile(f, user)) entries.push(fileEntry(f));
    }
    for (const m of slack.messages) {
      if (m.channel !== channel) continue;
      entries.push({
        key: `m:${m.ts}`,
        ts: m.ts,
        thread_ts: m.thread_ts,
        author: author(m),
        kind: "message",
        text: m.text ?? "",
        blocks: m.blocks,
        edited: m.edits > 0,
        ephemeral: false,
        source: { type: "message", channel: m.channel, ts: m.ts },
      });
    }
    for (const m of slack.ephemerals) {
      if (m.channel !== channel || m.ephemeral_user !== user) continue;
      entries.push({
        key: `e:${m.ts}`,
        ts: m.ts,
        thread_ts: m.thread_ts,
        author: "bot",
        kind: "ephemeral",
        text: m.text ?? "",
        blocks: m.blocks,
        edited: m.edits > 0,
        ephemeral: true,
        source: { type: "ephemeral", channel: m.channel, ts: m.ts },
      });
    }
    return entries;
  }

  /** Sorts a conversation and counts each thread's replies. */
  function threaded(entries: Entry[]): Entry[] {
    entries.sort((a, b) => Number(a.ts) - Number(b.ts) || a.key.localeCompare(b.key));
    for (const e of entries) {
      if (e.thread_ts && e.thread_ts !== e.ts) continue;
      e.replies = entries.filter((r) => r.thread_ts === e.ts && r.ts !== e.ts).length;
    }
    return entries;
  }

  function feedFor(
    user: string,
  ): { entries: Entry[]; dm: { id?: string; entries: Entry[] }; modals: unknown[] } {
    const entries = conversation(opts.channel.id, user);
    for (const item of local) {
      const content = localContent(item);
      if (item.user === user) {
        entries.push({
          key: `c:${item.id}`,
          ts: item.ts,
          author: user,
          kind: "command",
          text: `\`/bisman${item.command ? ` ${item.command}` : ""}\``,
          edited: false,
          ephemeral: true,
          source: { type: "local", id: item.id },
        });
      }
      if (!content.visible) continue;
      if (content.inChannel || item.user === user) {
        entries.push({
          key: `a:${item.id}`,
          ts: bump(item.ts),
          author: "bot",
          kind: "ephemeral",
          text: content.text,
          blocks: content.blocks,
          edited: content.edited,
          ephemeral: !content.inChannel,
          source: { type: "local", id: item.id },
        });
      }
    }
    const dmId = slack.directMessageOf(user);
    const dm = { ...(dmId ? { id: dmId } : {}), entries: dmId ? threaded(conversation(dmId, user)) : [] };
    const open = storedViews(slack)
      .filter((v) => v.trigger_id && triggers.get(v.trigger_id) === user && !modals.closed.has(v.id))
      .map((v) => ({
        id: v.id,
        hash: v.hash,
        view: modals.overrides.get(v.id) ?? v.view,
        errors: modals.errors.get(v.id),
      }));
    return { entries: threaded(entries), dm, modals: open };
  }

  /** The ack of a command, as replaced or deleted through its response_url (Slack edits it in place). */
  function localContent(item: LocalItem) {
    let body: Record<string, unknown> | undefined = item.ack;
    for (const r of slack.responses) {
      if (!item.responseUrls.includes(r.url)) continue;
      if (r.body.delete_original === true) body = undefined;
      else if (r.body.replace_original === true) body = r.body;
    }
    const text = typeof body?.text === "string" ? body.text : "";
    const blocks = Array.isArray(body?.blocks) ? body.blocks : undefined;
    return {
      visible: !!body && (text.length > 0 || !!blocks?.length),
      inChannel: item.ack?.response_type === "in_channel",
      text,
      blocks,
      // Slack marks edits of messages, not replaced command answers.
      edited: false,
    };
  }

  const app = new Hono();

  app.onError((err, c) => {
    if (err instanceof HttpError) return c.json({ error: err.message }, err.status as 400);
    console.error(`console: ${err instanceof Error ? err.stack : err}`);
    return c.json({ error: err instanceof Error ? err.message : String(err) }, 500);
  });

  // Every POST acts as one of the sandbox's users (commands, approvals, trouble): only the console's own
  // page may send one. See crossSiteRefusal.
  app.use("*", async (c, next) => {
    const refusal = crossSiteRefusal(c.req.raw);
    if (refusal) return c.json({ error: refusal }, 403);
    return await next();
  });

  const serveStatic = async (name: string) => {
    const ext = name.split(".").pop() ?? "";
    const body = await Deno.readFile(`${staticDir}${name}`);
    return new Response(body, {
      headers: {
        "content-type": CONTENT_TYPES[ext] ?? "application/octet-stream",
        "cache-control": "no-store",
      },
    });
  };
  app.get("/", () => serveStatic("index.html"));
  app.get("/app.js", () => serveStatic("app.js"));
  app.get("/style.css", () => serveStatic("style.css"));
  app.get("/emoji.json", () => serveStatic("emoji.json"));
  app.get(
    "/favicon.ico",
    () =>
      new Response(FAVICON, {
        headers: { "content-type": "image/svg+xml", "cache-control": "max-age=3600" },
      }),
  );

  app.get("/api/meta", (c) => c.json(meta()));
  const meta = () => ({
    users: opts.users,
    channel: opts.channel,
    subcommands: opts.subcommands(),
    trouble: opts.trouble.list(),
  });

  app.get("/api/feed", async (c) => {
    const user = checkUser(c.req.query("user"));
    const since = Number(c.req.query("since") ?? "-1");
    const deadline = Date.now() + longPollMs;
    while (currentVersion() === since && Date.now() < deadline && !closed) {
      await new Promise((r) => setTimeout(r, 120));
    }
    return c.json({ version: currentVersion(), channel: opts.channel, ...feedFor(user) });
  });

  // A shared file's bytes, for a person who may see it; any other asker gets the same 404 as for a file that
  // does not exist, so a file's existence does not leak either.
  app.get("/api/files/:id", (c) => {
    const user = checkUser(c.req.query("user"));
    const f = slack.files.find((x) => x.id === c.req.param("id"));
    if (!f || !visibleFile(f, user)) throw new HttpError(404, "no such file");
    const name = f.filename.replace(/[^\w.-]/g, "_");
    return new Response(f.content, {
      headers: {
        "content-type": /\.csv$/i.test(name) ? "text/csv; charset=utf-8" : "text/plain; charset=utf-8",
        "content-disposition": `attachment; filename="${name}"`,
        "cache-control": "no-store",
        "x-content-type-options": "nosniff",
      },
    });
  });

  app.post("/api/command", async (c) => {
    const body = await c.req.json();
    const user = checkUser(body.user);
    const text = typeof body.text === "string" ? body.text.slice(0, 4000) : "";
    const item: LocalItem = { id: crypto.randomUUID(), user, ts: tsNow(), command: text, responseUrls: [] };
    const responseUrl = slack.responseUrl({ user, channel: opts.channel.id });
    item.responseUrls.push(responseUrl);
    local.push(item);
    localVersion++;
    const res = await slack.sendCommand(opts.eventsUrl, {
      text,
      user_id: user,
      team_id: opts.teamId,
      channel_id: opts.channel.id,
      response_url: responseUrl,
      trigger_id: trigger(user),
    });
    const raw = await res.text();
    item.ack = parseAck(raw, res.status);
    localVersion++;
    return c.json({ ok: res.ok, status: res.status });
  });

  app.post("/api/action", async (c) => {
    const body = await c.req.json();
    const user = checkUser(body.user);
    const source = body.source as Source | undefined;
    const action = {
      user_id: user,
      action_id: String(body.action_id ?? ""),
      value: String(body.value ?? ""),
      ...(typeof body.block_id === "string" ? { block_id: body.block_id } : {}),
      trigger_id: trigger(user),
    };
    let res: Response;
    if (source?.type === "message" || source?.type === "ephemeral") {
      res = await slack.sendBlockAction(opts.eventsUrl, {
        ...action,
        channel_id: source.channel,
        message_ts: source.ts,
        ...(typeof body.thread_ts === "string" ? { thread_ts: body.thread_ts } : {}),
      });
    } else if (source?.type === "local") {
      const item = local.find((i) => i.id === source.id);
      if (!item) throw new HttpError(404, "no such message");
      // The stand-in does not store acks; give the bot a response_url bound to this item.
      const url = slack.responseUrl({ user, channel: opts.channel.id });
      item.responseUrls.push(url);
      res = await slack.sendBlockAction(opts.eventsUrl, {
        ...action,
        channel_id: opts.channel.id,
        message_ts: bump(item.ts),
        response_url: url,
      });
    } else {
      throw new HttpError(400, "buttons inside modals are not supported by the sandbox console");
    }
    await res.body?.cancel();
    localVersion++;
    return c.json({ ok: res.ok, status: res.status });
  });

  app.post("/api/view", async (c) => {
    const body = await c.req.json();
    const user = checkUser(body.user);
    const stored = storedViews(slack).find((v) => v.id === body.id);
    if (!stored || stored.trigger_id === undefined || triggers.get(stored.trigger_id) !== user) {
      throw new HttpError(404, "no such modal for this user");
    }
    const view = modals.overrides.get(stored.id) ?? stored.view;
    const res = await slack.sendViewSubmission(opts.eventsUrl, {
      user_id: user,
      team_id: opts.teamId,
      view_id: stored.id,
      callback_id: String(view.callback_id ?? ""),
      private_metadata: String(view.private_metadata ?? ""),
      values: (body.values ?? {}) as never,
    });
    const raw = await res.text();
    let answer: Record<string, unknown> = {};
    try {
      answer = raw ? JSON.parse(raw) : {};
    } catch {
      answer = {};
    }
    if (answer.response_action === "errors" && answer.errors && typeof answer.errors === "object") {
      modals.errors.set(stored.id, answer.errors as Record<string, string>);
    } else if (answer.response_action === "update" && answer.view && typeof answer.view === "object") {
      modals.overrides.set(stored.id, answer.view as Record<string, unknown>);
      modals.errors.delete(stored.id);
    } else if (res.ok) {
      modals.closed.add(stored.id);
      if (answer.response_action === "clear") {
        for (const v of storedViews(slack)) {
          if (v.trigger_id && triggers.get(v.trigger_id) === user) modals.closed.add(v.id);
        }
      }
    }
    localVersion++;
    return c.json({ ok: res.ok, status: res.status });
  });

  app.post("/api/view/close", async (c) => {
    const body = await c.req.json();
    checkUser(body.user);
    if (typeof body.id === "string") modals.closed.add(body.id);
    localVersion++;
    return c.json({ ok: true });
  });

  app.post("/api/trouble/:id", async (c) => {
    const body = await c.req.json().catch(() => ({}));
    const user = checkUser(body.user);
    const id = c.req.param("id");
    const item = opts.trouble.list().find((t) => t.id === id);
    if (!item) throw new HttpError(404, `no trouble called ${id}`);
    if (!item.enabled) throw new HttpError(409, item.reason ?? "not available");
    try {
      const message = await opts.trouble.run(id, user);
      return c.json({ message, meta: meta() });
    } catch (err) {
      throw new HttpError(500, err instanceof Error ? err.message : String(err));
    }
  });

  app.notFound((c) => c.json({ error: "not found" }, 404));
  return Object.assign(app, { close: () => void (closed = true) });
}

const LOOPBACK_HOST = /^(127\.\d{1,3}\.\d{1,3}\.\d{1,3}|localhost|\[::1\])$/;

/**
 * Why a state-changing request is refused, or undefined when it may go on. Safe methods always may.
 *
 * A web page on any site can make the browser POST to http://127.0.0.1:<port>/api/… (a form, or a fetch in
 * `no-cors` mode with a text/plain body, which `c.req.json()` parses all the same): that would approve a
 * rotation as bob. So the `Origin` a browser sends must be the console's own origin, and `Sec-Fetch-Site`,
 * when sent, `same-origin`. The console's origin is judged from the request's own URL (its Host header), and
 * must be a loopback address, since a page could otherwise point a name of its own at 127.0.0.1 (DNS
 * rebinding) and be same-origin by its own lights. A request without Origin or Sec-Fetch-Site is not a
 * browser's cross-site request (curl, a test) and may go on. Hono's `csrf` middleware checks only form-like
 * content types, and leaves a foreign Origin on a JSON request to the browser's CORS preflight; a foreign
 * Origin is refused here whatever the content type.
 */
export function crossSiteRefusal(req: Request): string | undefined {
  if (/^(GET|HEAD|OPTIONS)$/.test(req.method)) return undefined;
  const self = new URL(req.url);
  if (!LOOPBACK_HOST.test(self.hostname)) {
    return `the sandbox console answers state-changing requests only on a loopback address, not ${self.hostname}`;
  }
  const origin = req.headers.get("origin");
  if (origin !== null && origin !== self.origin) {
    return `a request from another origin (${origin.slice(0, 100)})`;
  }
  const site = req.headers.get("sec-fetch-site");
  if (site !== null && site !== "same-origin") return `a ${site.slice(0, 20)} request`;
  return undefined;
}

/** An answer with a status and a message for the page. */
class HttpError extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
  }
}

const FAVICON =
  '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32"><rect width="32" height="32" rx="7" ' +
  'fill="#4a154b"/><text x="16" y="23" font-family="sans-serif" font-size="20" font-weight="700" fill="#fff" ' +
  'text-anchor="middle">B</text></svg>';

/** Sorts a command's ack just after the command itself. */
function bump(ts: string): string {
  const [s, us] = ts.split(".");
  const n = Number(us) + 1;
  return n >= 1_000_000 ? `${Number(s) + 1}.000000` : `${s}.${String(n).padStart(6, "0")}`;
}

/** A slash command's HTTP answer: JSON (text, blocks, response_type), plain text, or empty. */
function parseAck(raw: string, status: number): LocalItem["ack"] {
  if (status !== 200) {
    return { text: `:x: The bot answered HTTP ${status}${raw ? `: ${raw.slice(0, 300)}` : ""}` };
  }
  if (!raw.trim()) return undefined;
  try {
    const body = JSON.parse(raw);
    if (body && typeof body === "object") return body;
  } catch {
    // Slack shows a plain-text ack as the message text.
  }
  return { text: raw };
}
