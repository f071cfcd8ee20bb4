/**
 * The HTTP surface: `POST /slack/events`, `POST /alerts`, `GET /healthz`, `GET /readyz`, `GET /metrics`.
 * The app only registers routes; `Deno.serve` owns the socket, and tests call `app.request()`.
 *
 * @module
 */

import { Hono } from "hono";
import type { Metrics } from "../core/metrics.ts";
import { type Logger, newRequestId, withLogContext } from "../core/log.ts";
import type { SlackEventsReceiver } from "../slack/receiver.ts";

/** What `/readyz` reports. Only the state database and Slack's `auth.test` decide the status code. */
export interface Readiness {
  stateReachable(): Promise<boolean>;
  slackReady(): boolean;
  /** Extra information for the body (targets, Vault); never affects the status. */
  details(): Record<string, unknown>;
}

/** Routes registered by features beyond the core (the alert receiver). */
export type RouteRegistration = (app: Hono) => void;

export function createHttpApp(opts: {
  receiver?: SlackEventsReceiver;
  readiness: Readiness;
  metrics: Metrics;
  log: Logger;
  routes?: RouteRegistration[];
}): Hono {
  const app = new Hono();

  // Every request gets an id (a sane X-Request-ID from a proxy is kept) that every log line written while
  // it is handled carries, the listener's work after a Slack ack included; the response echoes it.
  app.use("*", async (c, next) => {
    const started = performance.now();
    const given = c.req.header("x-request-id");
    const requestId = given && /^[A-Za-z0-9._:-]{1,64}$/.test(given) ? given : newRequestId();
    await withLogContext({ request_id: requestId }, next);
    c.header("x-request-id", requestId);
    const route = c.req.routePath === "/*" ? "other" : c.req.routePath;
    const status = c.res.status;
    opts.metrics.inc(
      "bisman_http_requests_total",
      { route, status: String(status) },
      1,
      "HTTP requests by route and status",
    );
    // One line per delivery (Slack requests, alerts); probes and scrapes would only be noise.
    if (c.req.method !== "GET") {
      opts.log.info("http request", {
        request_id: requestId,
        method: c.req.method,
        route,
        status,
        ms: Math.round((performance.now() - started) * 10) / 10,
      });
    }
  });

  app.onError((err, c) => {
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
    app.post("/slack/events", (c) => receiver.handle(c));
  }

  for (const r of opts.routes ?? []) r(app);

  app.notFound((c) => c.json({ error: "not found" }, 404));
  return app;
}
