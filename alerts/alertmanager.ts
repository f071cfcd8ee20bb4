/**
 * `POST /alerts`: Alertmanager's webhook (payload version 4), authenticated by the bearer token `ALERTS_TOKEN`.
 *
 * Without the token configured the route answers 503 "not configured"; a wrong or missing token gets 401 and a
 * malformed body 400, and neither reaches the alert store. A valid delivery is written to the outbox
 * (alerts/threads.ts) and acknowledged at once: Slack's pace never slows Alertmanager down, and a delivery
 * Alertmanager retries after a timeout changes nothing the second time.
 *
 * Payload reference: https://prometheus.io/docs/alerting/latest/configuration/#webhook_config
 *
 * @module
 */

import { z } from "zod";
import type { Context, MiddlewareHandler } from "hono";
import { bearerAuth } from "hono/bearer-auth";
import type { AppDeps } from "../core/deps.ts";
import { limitBody, type RouteRegistration } from "../http/app.ts";
import type { AlertThreads, IncomingAlert } from "./threads.ts";
import { RefusalBudget } from "../core/refusal_budget.ts";

/** Largest delivery accepted. Alertmanager sends every alert of a group in one body (max_alerts 0: all). */
export const MAX_ALERT_BODY_BYTES = 8 * 1024 * 1024;

/**
 * Label (and annotation) names and values as Alertmanager may send them. Since 0.27 a label name is any
 * valid UTF-8 string, not only the classic `[a-zA-Z_][a-zA-Z0-9_]*` (0.27.0 release notes, "UTF-8 Support";
 * matchers/compat/parse.go `isValidUTF8LabelName`: `utf8.ValidString(name)`, later also non-empty); nor does
 * it bound names or values. Refusing a delivery would lose every alert in it, so any name and value is
 * taken: JSON strings are valid UTF-8 once hasUnstorableText() has refused lone surrogates (and NUL, which
 * PostgreSQL cannot store), the body's size bounds them, and rendering truncates them.
 */
const labels = z.record(z.string(), z.string());
/** Alertmanager's timestamps: RFC 3339 with up to nanoseconds; `0001-01-01T00:00:00Z` means unset. */
const timestamp = z.iso.datetime({ offset: true });

/** One alert of a notification. */
export const alertSchema = z.object({
  status: z.enum(["firing", "resolved"]),
  labels: labels.refine(
    (l) => typeof l.alertname === "string" && l.alertname.length > 0,
    "alertname is required",
  ),
  annotations: labels.default({}),
  startsAt: timestamp,
  endsAt: timestamp.optional(),
  generatorURL: z.string().max(4000).default(""),
  fingerprint: z.string().regex(/^[0-9a-f]{1,64}$/, "a hex fingerprint"),
});

/** A webhook delivery, version 4. Unknown top-level fields are allowed: Alertmanager may add some. */
export const webhookSchema = z.object({
  version: z.literal("4"),
  groupKey: z.string().min(1).max(4000),
  truncatedAlerts: z.number().int().min(0).default(0),
  status: z.enum(["firing", "resolved"]),
  receiver: z.string().max(400),
  groupLabels: labels.default({}),
  commonLabels: labels.default({}),
  commonAnnotations: labels.default({}),
  externalURL: z.string().max(4000).default(""),
  alerts: z.array(alertSchema).max(10_000),
});
export type WebhookPayload = z.infer<typeof webhookSchema>;

/** True when a string anywhere in `v` (keys included) is not storable text (NUL, lone surrogates). */
function hasUnstorableText(v: unknown, depth = 0): boolean {
  if (typeof v === "string") return v.includes("\u0000") || !v.isWellFormed();
  if (depth > 64 || v === null || typeof v !== "object") return false;
  for (const [k, x] of Object.entries(v)) {
    if (hasUnstorableText(k, depth + 1) || hasUnstorableText(x, depth + 1)) return true;
  }
  return false;
}

/** Alertmanager's zero time (Go's time.Time{}) as it appears in endsAt of a firing alert. */
function realTime(t: string | undefined): string | null {
  return !t || t.startsWith("0001-01-01") ? null : t;
}

/** The alerts of a delivery as the store takes them. */
export function alertsOf(p: WebhookPayload): IncomingAlert[] {
  return p.alerts.map((a) => ({
    fingerprint: a.fingerprint,
    status: a.status,
    labels: a.labels,
    annotations: a.annotations,
    startsAt: realTime(a.startsAt),
    endsAt: realTime(a.endsAt),
    generatorURL: a.generatorURL,
    groupKey: p.groupKey,
    externalURL: p.externalURL || undefined,
  }));
}

/** The `POST /alerts` route. */
export function alertmanagerRoute(threads: AlertThreads, deps: AppDeps): RouteRegistration {
  // Anyone who can reach /alerts can send refused deliveries: every one is counted, at most 60 a minute
  // are audited one by one (the rest as one `suppressed` entry a minute).
  const refusals = new RefusalBudget((reason, detail) =>
    deps.audit.append({
      actor: "alertmanager",
      action: "alerts.refused",
      outcome: "refused",
      details: { reason, ...detail },
    }).catch((err) => deps.log.error("audit append failed", { error: err }))
  );
  const refusal = (c: Context, status: 400 | 401 | 413 | 503, reason: string, message: string): Response => {
    deps.metrics.inc("bisman_alerts_rejected_total", { reason }, 1, "Alertmanager deliveries refused");
    refusals.report(reason, { from: c.req.header("x-forwarded-for") ?? "direct" });
    const headers: Record<string, string> = { "content-type": "application/json" };
    if (status === 401) headers["www-authenticate"] = 'Bearer realm="bisman-ops"';
    return new Response(JSON.stringify({ status: "error", error: reason, message }), { status, headers });
  };
  const badToken = (c: Context) => refusal(c, 401, "bad_token", "Missing or wrong bearer token");

  // Without ALERTS_TOKEN the route answers 503 before anything else.
  const configured: MiddlewareHandler = async (c, next) => {
    if (!deps.env.alertsToken) {
      return refusal(c, 503, "not_configured", "POST /alerts is not configured: set ALERTS_TOKEN");
    }
    return await next();
  };
  // Hono's bearerAuth parses the header and compares the token without an early exit (SHA-256 of both, then
  // the strings); a missing, malformed or wrong token is one refusal (401), counted and audited within the
  // budget. Without ALERTS_TOKEN `configured` answered already.
  const auth = bearerAuth({
    realm: "bisman-ops",
    token: deps.env.alertsToken ?? "",
    noAuthenticationHeader: { message: badToken },
    invalidAuthenticationHeader: { message: badToken },
    invalidToken: { message: badToken },
  });
  // Counted as the bytes stream in (chunked bodies too): 413 as soon as the limit is passed.
  const limit = limitBody(
    MAX_ALERT_BODY_BYTES,
    (c) => refusal(c, 413, "body_too_large", "Body too large"),
  );

  return (app) => {
    app.post("/alerts", configured, auth, limit, async (c) => {
      const raw = await c.req.text();
      let json: unknown;
      try {
        json = JSON.parse(raw);
      } catch {
        return refusal(c, 400, "malformed_body", "The body is not JSON");
      }
      // PostgreSQL refuses NUL and broken surrogate pairs in text and jsonb: such a body is malformed, not a 500.
      if (hasUnstorableText(json)) {
        return refusal(c, 400, "malformed_body", "The body holds NUL characters or broken Unicode");
      }
      const parsed = webhookSchema.safeParse(json);
      if (!parsed.success) {
        const issue = parsed.error.issues[0];
        return refusal(
          c,
          400,
          "malformed_body",
          `Not an Alertmanager version 4 payload: ${issue.path.join(".") || "(body)"}: ${issue.message}`,
        );
      }
      const p = parsed.data;
      const result = await threads.ingest(alertsOf(p), "alertmanager");
      await deps.audit.append({
        actor: "alertmanager",
        action: "alerts.received",
        outcome: "ok",
        details: {
          receiver: p.receiver,
          group_key: p.groupKey.slice(0, 500),
          status: p.status,
          alerts: p.alerts.length,
          queued: result.queued,
          truncated: p.truncatedAlerts,
          alertnames: [...new Set(p.alerts.map((a) => a.labels.alertname))].slice(0, 20),
        },
      }).catch((err) => deps.log.error("audit append failed", { error: err }));
      return c.json({ status: "ok", received: result.received, queued: result.queued });
    });
  };
}
