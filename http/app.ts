/**
 * The HTTP surface: `POST /slack/events`, `POST /alerts`, `GET /healthz`, `GET /readyz`, `GET /metrics`.
 * `Deno.serve` owns the socket and calls the handler {@link createHttpHandler} makes.
 *
 * Hono serves every route but one: its own middlewares do the generic work there (`requestId`: an id per
 * request, a sane `X-Request-Id` from a proxy kept; `secureHeaders`; `bodyLimit` on every route that reads a
 * body, which counts the bytes as they stream in, chunked bodies too, and answers 413 as soon as the limit is
 * passed, so an oversized body is never buffered whole).
 *
 * `POST /slack/events` is answered before Hono, with the same request id rule, body limit, log line and
 * counter: it is the path Slack's 3-second clock runs on, and under a burst of slash commands Hono's
 * dispatch (its context, middleware chain and the response rebuilt to add a header) was a fifth of the bot's
 * CPU per ack (`deno run -A bench/_cpu_split.ts`: 0.23-0.25 ms a request through Hono, 0.18-0.20 without it,
 * the same log line, counter and request id kept). Everything else is rare (probes, scrapes, alerts).
 *
 * @module
 */

import { Hono, type MiddlewareHandler } from "hono";
import { bodyLimit } from "hono/body-limit";
import { HTTPException } from "hono/http-exception";
import { requestId, type RequestIdVariables } from "hono/request-id";
import { secureHeaders } from "hono/secure-headers";
import type { Metrics } from "../core/metrics.ts";
import { type Logger, newRequestId, withLogContext } from "../core/log.ts";
import { afterResponse } from "../core/after_response.ts";
import { type BodyProblem, MAX_BODY_BYTES, type SlackEventsReceiver } from "../slack/receiver.ts";

/** What `/readyz` reports. Only the state database and Slack's `auth.test` decide the status code. */
export interface Readiness {
  stateReachable(): Promise<boolean>;
  slackReady(): boolean;
  /** Extra information for the body (targets, Vault); never affects the status. */
  details(): Record<string, unknown>;
}

/** The app's context variables (the request id set by Hono's requestId middleware). */
export type HttpEnv = { Variables: RequestIdVariables };

/** Routes registered by features beyond the core (the alert receiver). */
export type RouteRegistration = (app: Hono<HttpEnv>) => void;

/**
 * `bodyLimit` with the bot's refusal: `onTooLarge` answers (and counts, and audits) the 413.
 * @example
 * app.post("/alerts", limitBody(8 << 20, (c) => c.json({ error: "body_too_large" }, 413)), handler);
 */
export function limitBody(
  maxBytes: number,
  onTooLarge: Parameters<typeof bodyLimit>[0]["onError"],
): MiddlewareHandler {
  return bodyLimit({ maxSize: maxBytes, onError: onTooLarge });
}

/** Where Slack delivers slash commands, clicks, view submissions and events. */
export const SLACK_EVENTS_PATH = "/slack/events";

/** The header a request id is read from (a proxy's) and echoed in. */
const REQUEST_ID_HEADER = "X-Request-Id";
const REQUEST_ID_MAX = 64;

/** A `Deno.serve` handler for the whole surface. */
export type HttpHandler = (
  req: Request,
  info?: Deno.ServeHandlerInfo<Deno.NetAddr>,
) => Response | Promise<Response>;

export interface HttpOptions {
  receiver?: SlackEventsReceiver;
  readiness: Readiness;
  metrics: Metrics;
  log: Logger;
  routes?: RouteRegistration[];
  /** How long a Slack request's body may take to arrive (ms, default {@link SLACK_BODY_DEADLINE_MS}). */
  slackBodyDeadlineMs?: number;
}

/**
 * A Slack request's body arrives at once (Slack sends a few hundred bytes and gives up on its own answer after
 * 3 seconds); a client still sending after this long is holding a connection, not delivering an event.
 */
export const SLACK_BODY_DEADLINE_MS = 10_000;

/**
 * Counts and logs a request once its response is on its way: the request's line and counter need not hold
 * its answer (a Slack ack waits on nothing it does not need).
 */
function recordRequest(
  opts: Pick<HttpOptions, "metrics" | "log">,
  r: { requestId: string; method: string; route: string; status: number; started: number },
): void {
  const ms = Math.round((performance.now() - r.started) * 10) / 10;
  afterResponse(() => {
    opts.metrics.inc(
      "bisman_http_requests_total",
      { route: r.route, status: String(r.status) },
      1,
      "HTTP requests by route and status",
    );
    // One line per delivery (Slack requests, alerts); probes and scrapes would only be noise.
    if (r.method !== "GET") {
      opts.log.info("http request", {
        request_id: r.requestId,
        method: r.method,
        route: r.route,
        status: r.status,
        ms,
      });
    }
  });
}

/**
 * The handler `Deno.serve` calls: `POST /slack/events` straight to the receiver, everything else through
 * Hono (see the module's comment for why).
 */
export function createHttpHandler(opts: HttpOptions): HttpHandler {
  const app = createHttpApp(opts);
  const receiver = opts.receiver;
  if (!receiver) return app.fetch;
  return (req, info) =>
    req.method === "POST" && pathOf(req.url) === SLACK_EVENTS_PATH
      ? slackDelivery(req, receiver, opts)
      : app.fetch(req, info);
}

/** The path of a request URL (what Hono routes on), without parsing the whole URL. */
function pathOf(url: string): string {
  const start = url.indexOf("/", url.indexOf("://") + 3);
  if (start === -1) return "/";
  const query = url.indexOf("?", start);
  return query === -1 ? url.slice(start) : url.slice(start, query);
}

/** The proxy's request id if it is one Hono's `requestId` would keep (word characters, `-`, `=`), else a new one. */
function requestIdFor(header: string | null): string {
  return header && header.length <= REQUEST_ID_MAX && !/[^\w\-=]/.test(header) ? header : newRequestId();
}

/** One delivery to `POST /slack/events`, with what Hono's middlewares do on the other routes. */
async function slackDelivery(
  req: Request,
  receiver: SlackEventsReceiver,
  opts: HttpOptions,
): Promise<Response> {
  const started = performance.now();
  const requestId = requestIdFor(req.headers.get(REQUEST_ID_HEADER));
  let res: Response;
  try {
    res = await withLogContext({ request_id: requestId }, async () => {
      const body = await boundedText(req, MAX_BODY_BYTES, opts.slackBodyDeadlineMs ?? SLACK_BODY_DEADLINE_MS);
      return "problem" in body
        ? receiver.refuseBody(body.problem, req.headers.get("content-length"))
        : await receiver.handle(body.text, req.headers, started);
    });
  } catch (err) {
    opts.log.error("unhandled HTTP error", { error: err, path: SLACK_EVENTS_PATH, request_id: requestId });
    res = Response.json({ error: "internal" }, { status: 500 });
  }
  res.headers.set(REQUEST_ID_HEADER, requestId);
  recordRequest(opts, { requestId, method: "POST", route: SLACK_EVENTS_PATH, status: res.status, started });
  return res;
}

/**
 * The body as text, or the problem that stopped its read: `body_too_large` once it is longer than `max` bytes
 * (a declared length is judged before anything is read; a chunked body is counted as it streams in and
 * abandoned at the limit, as Hono's `bodyLimit` does, so an oversized body is never buffered whole),
 * `body_timeout` when it has not all arrived within `deadlineMs` (the read is cancelled then, so a client
 * trickling bytes holds no handler), `body_cut_off` when the client closed the connection before its end
 * (Deno's read fails then; as an unhandled error it was an error line and a 500 per connection, outside the
 * refusal budget).
 */
async function boundedText(
  req: Request,
  max: number,
  deadlineMs: number,
): Promise<{ text: string } | { problem: BodyProblem }> {
  if (!req.body) return { text: "" };
  const length = req.headers.get("content-length");
  if (length !== null && !req.headers.has("transfer-encoding") && Number.parseInt(length, 10) > max) {
    return { problem: "body_too_large" };
  }
  const reader = req.body.getReader();
  let late = false;
  const timer = setTimeout(() => {
    late = true;
    reader.cancel().catch(() => undefined);
  }, deadlineMs);
  try {
    const chunks: Uint8Array[] = [];
    let size = 0;
    for (;;) {
      // A cancelled read ends as `done`: `late` tells it from the body's real end.
      const { done, value } = await reader.read();
      if (late) return { problem: "body_timeout" };
      if (done) break;
      size += value.length;
      if (size > max) {
        reader.cancel().catch(() => undefined);
        return { problem: "body_too_large" };
      }
      chunks.push(value);
    }
    return { text: decodeChunks(chunks, size) };
  } catch (err) {
    if (late) return { problem: "body_timeout" };
    if (err instanceof Deno.errors.BadResource || err instanceof Deno.errors.ConnectionReset) {
      return { problem: "body_cut_off" };
    }
    throw err;
  } finally {
    clearTimeout(timer);
  }
}

/** The UTF-8 text of a body's chunks (most Slack bodies are one chunk: no copy then). */
function decodeChunks(chunks: Uint8Array[], size: number): string {
  const decoder = new TextDecoder();
  if (chunks.length === 1) return decoder.decode(chunks[0]);
  const body = new Uint8Array(size);
  let offset = 0;
  for (const c of chunks) {
    body.set(c, offset);
    offset += c.length;
  }
  return decoder.decode(body);
}

/** The Hono app of every route but `POST /slack/events` (tests of those routes call `app.request()`). */
export function createHttpApp(opts: HttpOptions): Hono<HttpEnv> {
  const app = new Hono<HttpEnv>();

  // Every request gets an id (a proxy's X-Request-Id of at most 64 word characters is kept) that every log
  // line written while it is handled carries, the listener's work after a Slack ack included; the response
  // echoes it.
  app.use(
    "*",
    requestId({
      headerName: REQUEST_ID_HEADER,
      limitLength: REQUEST_ID_MAX,
      generator: () => newRequestId(),
    }),
  );
  // Browser-protection headers on what a browser can open (the GET routes). The POST routes answer machines
  // (Slack, Alertmanager) with JSON, and setting a dozen headers on every Slack ack was a measurable part of
  // its cost (bench/_ack_profile.ts).
  const browserHeaders = secureHeaders();
  app.use(
    "*",
    (c, next) => (c.req.method === "GET" || c.req.method === "HEAD" ? browserHeaders(c, next) : next()),
  );
  app.use("*", async (c, next) => {
    const started = performance.now();
    const requestId = c.get("requestId");
    await withLogContext({ request_id: requestId }, next);
    const route = c.req.routePath === "/*" ? "other" : c.req.routePath;
    recordRequest(opts, { requestId, method: c.req.method, route, status: c.res.status, started });
  });

  app.onError((err, c) => {
    // A middleware's answer (bodyLimit's 413, bearerAuth's 401) is thrown as an HTTPException.
    if (err instanceof HTTPException) return err.getResponse();
    opts.log.error("unhandled HTTP error", { error: err, path: c.req.path });
    return c.json({ error: "internal" }, 500);
  });

  app.get("/healthz", (c) => c.json({ status: "ok" }));

  app.get("/readyz", async (c) => {
    const state = await opts.readiness.stateReachable();
    const slack = opts.readiness.slackReady();
    const ok = state && slack;
    return c.json(
      {
        status: ok ? "ready" : "not ready",
        state: state ? "ok" : "unreachable",
        slack: slack ? "ok" : "auth.test pending",
        ...opts.readiness.details(),
      },
      ok ? 200 : 503,
    );
  });

  // Values read from the state database at scrape time are bounded by a timeout (core/metrics.ts onScrape).
  app.get(
    "/metrics",
    async (c) => c.text(await opts.metrics.render(), 200, { "content-type": opts.metrics.contentType }),
  );

  for (const r of opts.routes ?? []) r(app);

  app.notFound((c) => c.json({ error: "not found" }, 404));
  return app;
}
