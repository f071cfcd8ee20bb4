/**
 * Fuzz cases for the bot's entry points, shared by the test suite (a few hundred) and `deno task bench
 * fuzz` (10,000): random and mutated Slack payloads and Alertmanager bodies, valid signatures on invalid
 * content, invalid signatures on valid content, huge bodies, wrong content types. A seeded generator makes
 * every run reproducible: a failure names its seed and case number.
 */

import { createHmac } from "node:crypto";
import { ACTIONS, ALERT_ACTIONS, encodeRequestButton, VIEWS } from "../../views/actions.ts";

/** A seeded PRNG (mulberry32): the same seed gives the same cases. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

type Rng = () => number;
const pick = <T>(r: Rng, xs: readonly T[]): T => xs[Math.floor(r() * xs.length)];
const int = (r: Rng, n: number) => Math.floor(r() * n);

/** Strings that have broken parsers, renderers and shells before. */
const NASTY = [
  "",
  " ",
  "'; drop table bisman_ops.audit_log; --",
  '" or 1=1 --',
  "$(id)",
  "`rm -rf /`",
  "../../../../etc/passwd",
  "<!channel> <!here> @everyone",
  "<script>alert(1)</script>",
  "${jndi:ldap://x/a}",
  "%00%0d%0a",
  "\u0000\u0001\u001f",
  "\u202e\u200b\ufeff",
  "🦀🧨💥".repeat(20),
  "bisman_app; alter role postgres password 'x'",
  "__proto__",
  "constructor",
  "prod\nstatus",
  "a".repeat(3001),
  "x".repeat(40_001),
  "1e309",
  "-1",
  "NaN",
  "null",
  "{}",
  "[]",
];

function randomString(r: Rng): string {
  switch (int(r, 4)) {
    case 0:
      return pick(r, NASTY);
    case 1:
      return Array.from({ length: int(r, 40) }, () => String.fromCharCode(32 + int(r, 95))).join("");
    case 2:
      return Array.from({ length: int(r, 20) }, () => String.fromCodePoint(int(r, 0x2ffff))).join("")
        .replace(/[\ud800-\udfff]/g, "?");
    default:
      return pick(r, ["help", "status", "main", "U0ALICE", "C0OPS", "T0TEST", "bisman_app", "replica1"]);
  }
}

/** A random JSON value, `depth` levels deep at most. */
export function randomValue(r: Rng, depth = 3): unknown {
  const k = int(r, depth > 0 ? 10 : 7);
  switch (k) {
    case 0:
      return null;
    case 1:
      return r() < 0.5;
    case 2:
      return pick(r, [0, -1, 1e308, 2 ** 53 + 1, 3.14, -0]);
    case 3:
    case 4:
    case 5:
      return randomString(r);
    case 6:
      // Own "__proto__" keys, as JSON.parse makes them from a hostile body.
      return pick<unknown>(r, [
        [],
        {},
        JSON.parse('{"__proto__":{"polluted":true}}'),
        JSON.parse('{"constructor":{"prototype":{"x":1}}}'),
      ]);
    case 7:
      return Array.from({ length: int(r, 5) }, () => randomValue(r, depth - 1));
    default: {
      const o: Record<string, unknown> = {};
      for (let i = int(r, 6); i > 0; i--) put(o, randomString(r).slice(0, 30), randomValue(r, depth - 1));
      return o;
    }
  }
}

/** Sets an own property, even one named `__proto__` (plain assignment would hit the accessor). */
function put(o: any, k: string, v: unknown): void {
  Object.defineProperty(o, k, { value: v, enumerable: true, writable: true, configurable: true });
}

/** Changes one thing in a JSON object tree: drops, retypes or adds a field somewhere. */
export function mutate(r: Rng, value: unknown, depth = 0): unknown {
  if (value === null || typeof value !== "object") return r() < 0.7 ? randomValue(r, 2) : value;
  const copy: any = Array.isArray(value) ? [...value] : { ...value };
  const keys = Object.keys(copy);
  const op = int(r, 4);
  if (op === 0 && keys.length) delete copy[pick(r, keys)];
  else if (op === 1 && keys.length && depth < 4) {
    const k = pick(r, keys);
    put(copy, k, mutate(r, copy[k], depth + 1));
  } else if (op === 2 && keys.length) put(copy, pick(r, keys), randomValue(r, 2));
  else put(copy, randomString(r).slice(0, 30) || "x", randomValue(r, 2));
  return copy;
}

export interface SlackIds {
  team: string;
  channel: string;
  users: string[];
  responseUrl: () => string;
}

/** Subcommand texts: known names with junk arguments, look-alikes, and junk. */
function commandText(r: Rng): string {
  const names = [
    "help",
    "status",
    "lag",
    "connections",
    "slow-queries",
    "backups",
    "creds",
    "audit",
    "jobs",
    "rotate",
    "promote",
    "reset-stats",
    "terminate-idle",
    "lock-role",
    "block",
    "unblock",
    "statsu",
    "HELP",
  ];
  const words = Array.from({ length: int(r, 4) }, () => randomString(r));
  return [pick(r, names), ...words].join(" ").slice(0, int(r, 3) === 0 ? 50_000 : 4000);
}

/** Slash-command form fields, as Slack sends them, with one field possibly mutated. */
export function commandFields(r: Rng, ids: SlackIds): Record<string, string> {
  const fields: Record<string, string> = {
    token: "test-verification-token",
    team_id: r() < 0.8 ? ids.team : randomString(r),
    team_domain: "bisman-standin",
    channel_id: r() < 0.8 ? ids.channel : randomString(r),
    channel_name: "ops",
    user_id: r() < 0.9 ? pick(r, ids.users) : randomString(r),
    user_name: randomString(r),
    command: r() < 0.9 ? "/bisman" : pick(r, ["/other", "", "/bisman2", "bisman"]),
    text: commandText(r),
    api_app_id: "A0STANDIN",
    response_url: ids.responseUrl(),
    trigger_id: `${int(r, 1e9)}.${int(r, 1e9)}.abcdef`,
  };
  if (r() < 0.2) delete fields[pick(r, Object.keys(fields))];
  if (r() < 0.1) put(fields, randomString(r).slice(0, 20) || "x", randomString(r));
  return fields;
}

/** An interactive payload (button click or modal submission), mutated. */
export function interactivePayload(r: Rng, ids: SlackIds): unknown {
  const user = { id: pick(r, ids.users), username: "fuzz", name: "fuzz", team_id: ids.team };
  const value = pick(r, [
    encodeRequestButton({ request: int(r, 50) + 1, plan: "0123456789abcdef" }),
    JSON.stringify({ v: 1, request: randomValue(r), plan: randomValue(r) }),
    randomString(r),
  ]);
  const actionId = pick(r, [
    ACTIONS.approve,
    ACTIONS.deny,
    ACTIONS.cancel,
    ...Object.values(ALERT_ACTIONS),
    "bisman.alert.nope",
    randomString(r),
  ]);
  const base = r() < 0.75
    ? {
      type: "block_actions",
      user,
      api_app_id: "A0STANDIN",
      token: "test-verification-token",
      container: { type: "message", message_ts: "1700000000.000100", channel_id: ids.channel },
      trigger_id: "1.2.abc",
      team: { id: ids.team, domain: "bisman-standin" },
      channel: { id: ids.channel, name: "ops" },
      response_url: ids.responseUrl(),
      actions: [{ action_id: actionId, block_id: "b", value, type: "button", action_ts: "1700000000.1" }],
      message: { ts: "1700000000.000100", text: "x", blocks: [] },
      state: { values: {} },
    }
    : {
      type: "view_submission",
      team: { id: ids.team, domain: "bisman-standin" },
      user,
      api_app_id: "A0STANDIN",
      view: {
        id: "V1",
        callback_id: pick(r, [VIEWS.denyReason, VIEWS.typedConfirmation, randomString(r)]),
        private_metadata: pick(r, [randomString(r), JSON.stringify(randomValue(r))]),
        state: { values: randomValue(r) },
        hash: "1.a",
      },
    };
  let p: unknown = base;
  for (let i = int(r, 3); i > 0; i--) p = mutate(r, p);
  return p;
}

/** One HTTP request to the bot, and what a correct answer looks like. */
export interface HttpCase {
  kind: string;
  method: string;
  path: string;
  headers: Record<string, string>;
  body?: string;
  /** Statuses that are a correct answer; anything 5xx is always wrong. */
  expect: number[];
}

function sign(secret: string, body: string, ts: number): Record<string, string> {
  const mac = createHmac("sha256", secret).update(`v0:${ts}:${body}`).digest("hex");
  return { "x-slack-signature": `v0=${mac}`, "x-slack-request-timestamp": String(ts) };
}

const FORM = "application/x-www-form-urlencoded";

/** A case for `POST /slack/events`. */
export function slackCase(r: Rng, secret: string, ids: SlackIds): HttpCase {
  const now = Math.floor(Date.now() / 1000);
  const kind = pick(r, [
    "signed-command",
    "signed-command",
    "signed-interactive",
    "signed-interactive",
    "signed-garbage",
    "signed-json",
    "forged",
    "forged",
    "huge",
    "content-type",
  ]);
  const validBody = () =>
    r() < 0.5
      ? new URLSearchParams(commandFields(r, ids)).toString()
      : new URLSearchParams({ payload: JSON.stringify(interactivePayload(r, ids)) }).toString();
  const signed = (body: string, type = FORM): HttpCase => ({
    kind,
    method: "POST",
    path: "/slack/events",
    headers: { "content-type": type, ...sign(secret, body, now) },
    body,
    expect: [200, 400, 404, 415],
  });
  switch (kind) {
    case "signed-command":
      return signed(new URLSearchParams(commandFields(r, ids)).toString());
    case "signed-interactive":
      return signed(new URLSearchParams({ payload: JSON.stringify(interactivePayload(r, ids)) }).toString());
    case "signed-garbage": {
      const body = pick(r, [
        "payload=%7Bnot-json",
        "payload=" + encodeURIComponent(JSON.stringify(randomValue(r))),
        randomString(r),
        "a=1&a=2&payload=",
        "%E0%A4%A",
        "command=/bisman&text=" + "%".repeat(int(r, 10)),
      ]);
      return signed(body);
    }
    case "signed-json": {
      const body = JSON.stringify(
        pick(r, [
          randomValue(r),
          { type: "url_verification", challenge: randomValue(r) },
          { type: "event_callback", team_id: ids.team, event: mutate(r, { type: "app_mention", text: "x" }) },
          mutate(r, interactivePayload(r, ids)),
        ]) ?? null,
      );
      return signed(body, "application/json");
    }
    case "forged": {
      const body = validBody();
      const how = int(r, 7);
      const headers: Record<string, string> = { "content-type": FORM };
      if (how === 0) Object.assign(headers, sign("not-the-secret", body, now));
      else if (how === 1) Object.assign(headers, sign(secret, body, now - 6 * 60));
      else if (how === 2) Object.assign(headers, sign(secret, body, now + 6 * 60));
      else if (how === 3) {
        const h = sign(secret, body, now);
        headers["x-slack-signature"] = h["x-slack-signature"].replace("v0=", "v1=");
        headers["x-slack-request-timestamp"] = h["x-slack-request-timestamp"];
      } else if (how === 4) {
        headers["x-slack-request-timestamp"] = pick(r, ["", "abc", "1e10", "-5", "99999999999999"]);
      } else if (how === 5) Object.assign(headers, sign(secret, body + "&text=status", now));
      // how === 6: no signature headers at all
      return { kind, method: "POST", path: "/slack/events", headers, body, expect: [401] };
    }
    case "huge": {
      const size = 1024 * 1024 + 1 + int(r, 1024 * 1024);
      const body = "text=" + "a".repeat(size);
      return {
        kind,
        method: "POST",
        path: "/slack/events",
        headers: { "content-type": FORM, ...(r() < 0.5 ? sign(secret, body, now) : {}) },
        body,
        expect: [413],
      };
    }
    default: {
      const body = validBody();
      const type = pick(r, [
        "text/plain",
        "multipart/form-data; boundary=x",
        "application/xml",
        "",
        "application/x-www-form-urlencodedx",
      ]);
      return { ...signed(body, type), expect: [400, 415] };
    }
  }
}

/** A valid Alertmanager version 4 delivery (one firing alert). */
export function alertmanagerBody(r: Rng): Record<string, unknown> {
  const fp = Array.from({ length: 16 }, () => "0123456789abcdef"[int(r, 16)]).join("");
  const alertname = pick(r, ["HighReplicationLag", "TooManyConnections", "SlowQueries", "FuzzAlert"]);
  return {
    version: "4",
    groupKey: `{}:{alertname="${alertname}"}`,
    truncatedAlerts: 0,
    status: "firing",
    receiver: "bisman-ops",
    groupLabels: { alertname },
    commonLabels: { alertname, severity: "warning" },
    commonAnnotations: {},
    externalURL: "http://alertmanager:9093",
    alerts: [{
      status: "firing",
      labels: { alertname, instance: "127.0.0.1:1", severity: "warning", target: "main" },
      annotations: { summary: randomString(r).slice(0, 200) },
      startsAt: new Date().toISOString(),
      endsAt: "0001-01-01T00:00:00Z",
      generatorURL: "http://prometheus/graph",
      fingerprint: fp,
    }],
  };
}

/** A case for `POST /alerts`. */
export function alertCase(r: Rng, token: string): HttpCase {
  const kind = pick(r, [
    "valid-token-mutated",
    "valid-token-mutated",
    "valid-token-garbage",
    "bad-token",
    "huge",
    "content-type",
  ]);
  const auth = { authorization: `Bearer ${token}` };
  const json = { "content-type": "application/json" };
  switch (kind) {
    case "valid-token-mutated": {
      let body: unknown = alertmanagerBody(r);
      for (let i = 1 + int(r, 3); i > 0; i--) body = mutate(r, body);
      return {
        kind,
        method: "POST",
        path: "/alerts",
        headers: { ...json, ...auth },
        body: JSON.stringify(body) ?? "null",
        expect: [200, 400],
      };
    }
    case "valid-token-garbage":
      return {
        kind,
        method: "POST",
        path: "/alerts",
        headers: { ...json, ...auth },
        body: pick(r, ["", "{", "[]", "null", randomString(r), JSON.stringify(randomValue(r)) ?? ""]),
        expect: [200, 400],
      };
    case "bad-token": {
      const authorization = pick(r, [
        "",
        "Bearer",
        `Bearer ${token}x`,
        `Basic ${btoa(`x:${token}`)}`,
        `Bearer ${token.slice(1)}`,
        `bearer  ${randomString(r)}`,
        // HTTP headers are bytes: anything else cannot even be sent.
      ]).replace(/[^\x20-\x7e]/g, "?");
      const headers: Record<string, string> = { ...json };
      if (authorization) headers.authorization = authorization;
      return {
        kind,
        method: "POST",
        path: "/alerts",
        headers,
        body: JSON.stringify(alertmanagerBody(r)),
        expect: [401],
      };
    }
    case "huge":
      return {
        kind,
        method: "POST",
        path: "/alerts",
        headers: { ...json, ...auth },
        body: '{"version":"4","groupKey":"' + "g".repeat(8 * 1024 * 1024 + 1) + '"}',
        expect: [413],
      };
    default:
      return {
        kind,
        method: "POST",
        path: "/alerts",
        headers: {
          ...auth,
          "content-type": pick(r, ["text/plain", "application/x-www-form-urlencoded", ""]),
        },
        body: pick(r, [JSON.stringify(alertmanagerBody(r)), "a=b"]),
        // The receiver reads JSON whatever the declared type (Alertmanager always sends JSON).
        expect: [200, 400, 415],
      };
  }
}

/** A Socket Mode envelope (type and payload); never `hello` or `disconnect`, which only Slack sends. */
export function socketEnvelope(r: Rng, ids: SlackIds): { type: string; payload: unknown } {
  const type = pick(r, [
    "slash_commands",
    "interactive",
    "events_api",
    "interactive",
    "slash_commands",
    randomString(r) || "x",
  ]);
  if (type === "hello" || type === "disconnect") return { type: "events_api", payload: null };
  const payload = type === "slash_commands"
    ? (r() < 0.8 ? commandFields(r, ids) : mutate(r, commandFields(r, ids)))
    : type === "interactive"
    ? interactivePayload(r, ids)
    : pick(r, [randomValue(r), { event: randomValue(r) }, { event: { type: randomString(r) } }, null]);
  return { type, payload };
}

/** Sends an HTTP case; returns the status, or a string naming a transport failure. */
export async function send(baseUrl: string, c: HttpCase): Promise<number | string> {
  try {
    const res = await fetch(`${baseUrl}${c.path}`, { method: c.method, headers: c.headers, body: c.body });
    await res.body?.cancel();
    return res.status;
  } catch (err) {
    return `transport error: ${err instanceof Error ? err.message : err}`;
  }
}
