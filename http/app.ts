/**
 * The HTTP surface: `POST /slack/events`, `POST /alerts`, `GET /healthz`, `GET /readyz`, `GET /metrics`.
 * The app only registers routes; `Deno.serve` owns the socket, and tests call `app.request()`.
 *
 * @module
 */

import { Hono } from "hono";
import type { Metrics } from "../core/metrics.ts";
import type { Logger } from "../core/log.ts";
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

  app.use("*", async (c, next) => {
    await next();
    const route = c.req.routePath === "/*" ? "other" : c.req.routePath;
    opts.metrics.inc(
      "bisman_http_requests_total",
      { route, status: String(c.res.status) },
      1,
      "HTTP requests by route and status",
    );
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

  app.get(
    "/metrics",
    (c) => c.text(opts.metrics.render(), 200, { "content-type": "text/plain; version=0.0.4" }),
  );

  if (opts.receiver) {
    const receiver = opts.receiver;
    app.post("/slack/events", (c) => receiver.handle(c));
  }

  for (const r of opts.routes ?? []) r(app);

  app.notFound((c) => c.json({ error: "not found" }, 404));
  return app;
}
