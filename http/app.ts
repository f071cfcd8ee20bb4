/**
 * The HTTP surface: `POST /slack/events`, `POST /alerts`, `GET /healthz`, `GET /readyz`, `GET /metrics`.
 * The app only registers routes; `Deno.serve` owns the socket, and tests call `app.request()`.
 *
 * Hono's own middlewares do the generic work: `requestId` (an id per request, a sane `X-Request-Id` from a
 * proxy kept), `secureHeaders`, and `bodyLimit` on every route that reads a body, which counts the bytes as
 * they stream in, chunked bodies too, and answers 413 as soon as the limit is passed, so an oversized body
 * is never buffered whole.
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
import { MAX_BODY_BYTES, type SlackEventsReceiver } from "../slack/receiver.ts";

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

/** Work queued by {@link afterResponse}, run together in one timer task. */
const afterResponseQueue: (() => void)[] = [];

function runAfterResponse(): void {
  for (const fn of afterResponseQueue.splice(0)) {
    try {
      fn();
    } catch {
      // A log line or a counter that fails must not take the others with it.
    }
  }
}

/**
 * Runs `fn` after the responses being produced now are handed to the socket: a timer task comes after the
 * microtasks in which `Deno.serve` takes a handler's Response. Several requests' work shares one timer.
 */
export function afterResponse(fn: () => void): void {
  if (afterResponseQueue.push(fn) === 1) setTimeout(runAfterResponse, 0);
}

export function createHttpApp(opts: {
  receiver?: SlackEventsReceiver;
  readiness: Readiness;
  metrics: Metrics;
  log: Logger;
  routes?: RouteRegistration[];
}): Hono<HttpEnv> {
  const app = new Hono<HttpEnv>();

  // Every request gets an id (a proxy's X-Request-Id of at most 64 word characters is kept) that every log
  // line written while it is handled carries, the listener's work after a Slack ack included; the response
  // echoes it.
  app.use("*", requestId({ headerName: "X-Request-Id", limitLength: 64, generator: () => newRequestId() }));
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
    const status = c.res.status;
    const method = c.req.method;
    const ms = Math.round((performance.now() - started) * 10) / 10;
    // Counted and logged once the response is on its way: the request's line and counter need not hold
    // its answer (a Slack ack waits on nothing it does not need).
    afterResponse(() => {
      opts.metrics.inc(
        "bisman_http_requests_total",
        { route, status: String(status) },
        1,
        "HTTP requests by route and status",
      );
      // One line per delivery (Slack requests, alerts); probes and scrapes would only be noise.
      if (method !== "GET") {
        opts.log.info("http request", { request_id: requestId, method, route, status, ms });
      }
    });
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

  if (opts.receiver) {
    const receiver = opts.receiver;
    app.post(
      "/slack/events",
      limitBody(MAX_BODY_BYTES, (c) => receiver.refuseTooLarge(c)),
      (c) => receiver.handle(c),
    );
  }

  for (const r of opts.routes ?? []) r(app);

  app.notFound((c) => c.json({ error: "not found" }, 404));
  return app;
}
