/**
 * Elasticsearch stand-in for the count API at the HTTP boundary: `GET|POST /<index>/_count` and `/_count` with
 * a query body, over documents a test (or the sandbox) adds. It refuses what Elasticsearch refuses, the way it
 * refuses it:
 *
 * - Security on (the default since 8.0): a request without credentials is 401 `security_exception` "missing
 *   authentication credentials for REST request [<path>]", wrong ones 401 "unable to authenticate user [<u>]
 *   for REST request [<path>]", both with `WWW-Authenticate: Basic realm="security" charset="UTF-8"` and
 *   `ApiKey` (https://www.elastic.co/guide/en/elasticsearch/reference/current/http-clients.html,
 *   https://www.elastic.co/guide/en/elasticsearch/reference/current/security-api-authenticate.html); a user
 *   without read privilege on the index is 403 `security_exception` "action [indices:data/read/search] is
 *   unauthorized for user [<u>] …".
 * - Errors are `{"error": {"root_cause": [...], "type", "reason", …}, "status": <code>}`
 *   (https://www.elastic.co/guide/en/elasticsearch/reference/current/common-options.html#common-options-error-options).
 * - A concrete index that does not exist is 404 `index_not_found_exception` "no such index [<name>]" with
 *   `resource.type: index_or_alias`, `resource.id`, `index_uuid: _na_`, `index`; a wildcard that matches
 *   nothing counts 0 over 0 shards (`allow_no_indices` and `ignore_unavailable` defaults,
 *   https://www.elastic.co/guide/en/elasticsearch/reference/current/search-count.html#search-count-api-query-params).
 * - A body that is not JSON is 400 `parse_exception`/`x_content_parse_exception`; an unknown query type 400
 *   `parsing_exception` "unknown query [<name>]"; a Content-Type other than JSON 406
 *   "Content-Type header [<type>] is not supported"
 *   (https://www.elastic.co/guide/en/elasticsearch/reference/current/api-conventions.html#api-conventions-content-type).
 * - The count answer is `{"count": N, "_shards": {"total", "successful", "skipped", "failed"}}`
 *   (https://www.elastic.co/guide/en/elasticsearch/reference/current/search-count.html#search-count-api-example).
 *
 * Queries understood: match_all, bool (filter, must, must_not), range on a date field with `gte`/`gt`/`lte`/
 * `lt` as ISO dates or date math `now-15m` (units s, m, h, d), term, match and match_phrase (exact value).
 *
 * @module
 */

import { serve, type Served, type ServeOptions } from "./_serve.ts";

/** A document as stored: any JSON object. */
export type SearchDoc = Record<string, unknown>;

/** Options of {@link SearchStandIn.start}. */
export interface SearchStandInOptions {
  /** Basic-auth users and their passwords. */
  users?: Record<string, string>;
  /** Encoded API keys (base64 of `id:key`) and the user each acts as. */
  apiKeys?: Record<string, string>;
  /** Users allowed to read each index pattern (`*` for all); default: every user reads every index. */
  readable?: Record<string, string[]>;
  tls?: ServeOptions["tls"];
  /** The clock date math is resolved against (default: the wall clock). */
  now?: () => Date;
}

/** One request as the stand-in saw it (for tests: what was asked, never the credentials). */
export interface SearchCall {
  method: string;
  path: string;
  status: number;
  body?: unknown;
}

function esError(status: number, type: string, reason: string, extra: Record<string, unknown> = {}) {
  const cause = { type, reason, ...extra };
  return Response.json({ error: { root_cause: [cause], ...cause }, status }, { status });
}

const WWW_AUTHENTICATE = ['Basic realm="security" charset="UTF-8"', "ApiKey"];

function unauthenticated(reason: string): Response {
  const header = { "WWW-Authenticate": WWW_AUTHENTICATE };
  const res = esError(401, "security_exception", reason, { header });
  for (const h of WWW_AUTHENTICATE) res.headers.append("WWW-Authenticate", h);
  return res;
}

/** Turns `now-15m`, `now`, or an ISO date into milliseconds. */
function dateValue(v: unknown, now: number): number | undefined {
  if (typeof v === "number") return v;
  if (typeof v !== "string") return undefined;
  const m = /^now(?:([+-])(\d+)([smhd]))?$/.exec(v);
  if (m) {
    if (!m[1]) return now;
    const unit = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[m[3] as "s" | "m" | "h" | "d"];
    return now + (m[1] === "-" ? -1 : 1) * Number(m[2]) * unit;
  }
  const t = Date.parse(v);
  return Number.isNaN(t) ? undefined : t;
}

/** A field's value, by dotted path first as a flat key (`host.name`), then nested. */
function fieldValue(doc: SearchDoc, field: string): unknown {
  if (field in doc) return doc[field];
  let cur: unknown = doc;
  for (const part of field.split(".")) {
    if (!cur || typeof cur !== "object") return undefined;
    cur = (cur as Record<string, unknown>)[part];
  }
  return cur;
}

class QueryError extends Error {
  constructor(readonly response: Response) {
    super("query refused");
  }
}

type Predicate = (doc: SearchDoc) => boolean;

function compile(query: unknown, now: number): Predicate {
  if (!query || typeof query !== "object" || Array.isArray(query)) {
    throw new QueryError(
      esError(400, "parsing_exception", "[_na] query malformed, no start_object after query name"),
    );
  }
  const [name, ...rest] = Object.keys(query);
  if (!name || rest.length) {
    throw new QueryError(
      esError(
        400,
        "parsing_exception",
        `[${name ?? "_na"}] malformed query, expected [END_OBJECT] but found [FIELD_NAME]`,
      ),
    );
  }
  const body = (query as Record<string, unknown>)[name] as Record<string, unknown>;
  switch (name) {
    case "match_all":
      return () => true;
    case "bool": {
      const list = (k: string) => {
        const v = body?.[k];
        return v === undefined ? [] : (Array.isArray(v) ? v : [v]).map((q) => compile(q, now));
      };
      const must = [...list("filter"), ...list("must")];
      const not = list("must_not");
      return (d) => must.every((p) => p(d)) && !not.some((p) => p(d));
    }
    case "range": {
      const [field] = Object.keys(body ?? {});
      const r = (body?.[field] ?? {}) as Record<string, unknown>;
      const bound = (k: string) => (r[k] === undefined ? undefined : dateValue(r[k], now));
      const [gte, gt, lte, lt] = ["gte", "gt", "lte", "lt"].map(bound);
      for (const k of ["gte", "gt", "lte", "lt"] as const) {
        if (r[k] !== undefined && bound(k) === undefined) {
          throw new QueryError(
            esError(
              400,
              "parse_exception",
              `failed to parse date field [${r[k]}] with format [strict_date_optional_time||epoch_millis]`,
            ),
          );
        }
      }
      return (d) => {
        const t = dateValue(fieldValue(d, field), now);
        if (t === undefined) return false;
        return (gte === undefined || t >= gte) && (gt === undefined || t > gt) &&
          (lte === undefined || t <= lte) && (lt === undefined || t < lt);
      };
    }
    case "term":
    case "match":
    case "match_phrase": {
      const [field] = Object.keys(body ?? {});
      const raw = body?.[field];
      const value = raw && typeof raw === "object"
        ? (raw as Record<string, unknown>).value ??
          (raw as Record<string, unknown>).query
        : raw;
      return (d) => String(fieldValue(d, field)) === String(value);
    }
    default:
      throw new QueryError(
        esError(400, "parsing_exception", `unknown query [${name}]`, { line: 1, col: 11 }),
      );
  }
}

/** The Elasticsearch count API on a loopback port. */
export class SearchStandIn {
  readonly #indices = new Map<string, SearchDoc[]>();
  readonly calls: SearchCall[] = [];
  #down = false;

  #served?: Served;

  private constructor(private readonly opts: SearchStandInOptions) {}

  /** The base URL, e.g. `http://127.0.0.1:41234`. */
  get url(): string {
    return this.#served!.url;
  }

  /** Starts the stand-in. */
  static start(opts: SearchStandInOptions = {}): SearchStandIn {
    const self = new SearchStandIn(opts);
    self.#served = serve((req) => self.handle(req), { tls: opts.tls });
    return self;
  }

  /** Creates `index` (empty) if missing and adds `docs` to it. */
  add(index: string, docs: SearchDoc[] = []): void {
    const list = this.#indices.get(index) ?? [];
    list.push(...docs);
    this.#indices.set(index, list);
  }

  /** Deletes an index. */
  deleteIndex(index: string): void {
    this.#indices.delete(index);
  }

  /** While down, every request is answered 503 as a cluster without a master would. */
  setDown(down: boolean): void {
    this.#down = down;
  }

  close(): Promise<void> {
    return this.#served!.close();
  }

  private authenticate(req: Request, path: string): string | Response {
    const auth = req.headers.get("authorization");
    if (!auth) return unauthenticated(`missing authentication credentials for REST request [${path}]`);
    const [scheme, value = ""] = auth.split(/\s+/, 2);
    if (/^basic$/i.test(scheme)) {
      let user = "";
      let pw = "";
      try {
        [user, pw] = atob(value).split(/:(.*)/s, 2) as [string, string];
      } catch {
        return unauthenticated(`missing authentication credentials for REST request [${path}]`);
      }
      if (this.opts.users?.[user] === undefined || this.opts.users[user] !== pw) {
        return unauthenticated(`unable to authenticate user [${user}] for REST request [${path}]`);
      }
      return user;
    }
    if (/^apikey$/i.test(scheme)) {
      const user = this.opts.apiKeys?.[value];
      if (!user) {
        return unauthenticated(
          `unable to authenticate with provided credentials and anonymous access is not allowed for this request`,
        );
      }
      return user;
    }
    return unauthenticated(`missing authentication credentials for REST request [${path}]`);
  }

  private mayRead(user: string, index: string): boolean {
    const r = this.opts.readable;
    if (!r) return true;
    return Object.entries(r).some(([pattern, users]) => users.includes(user) && globMatch(pattern, index));
  }

  private async handle(req: Request): Promise<Response> {
    const url = new URL(req.url);
    const path = url.pathname;
    let body: unknown;
    const res = await this.respond(req, url, (b) => body = b);
    this.calls.push({ method: req.method, path: `${path}${url.search}`, status: res.status, body });
    return res;
  }

  private async respond(req: Request, url: URL, keep: (b: unknown) => void): Promise<Response> {
    const path = url.pathname;
    if (this.#down) {
      return esError(503, "master_not_discovered_exception", "master not discovered yet");
    }
    const user = this.authenticate(req, path);
    if (user instanceof Response) return user;
    const m = /^\/(?:([^/_][^/]*)\/)?_count$/.exec(path);
    if (!m) {
      return esError(
        400,
        "illegal_argument_exception",
        `request [${path}] contains unrecognized parameter or path`,
      );
    }
    if (req.method !== "GET" && req.method !== "POST") {
      return Response.json({
        error: `Incorrect HTTP method for uri [${path}] and method [${req.method}], allowed: [POST, GET]`,
        status: 405,
      }, { status: 405 });
    }
    const text = await req.text();
    let query: unknown = { match_all: {} };
    if (text.trim()) {
      const type = (req.headers.get("content-type") ?? "").split(";")[0].trim();
      if (type && !/^application\/(json|x-ndjson|vnd\.elasticsearch\+json)$/.test(type)) {
        return Response.json({ error: `Content-Type header [${type}] is not supported`, status: 406 }, {
          status: 406,
        });
      }
      let parsed: Record<string, unknown>;
      try {
        parsed = JSON.parse(text);
      } catch {
        return esError(
          400,
          "x_content_parse_exception",
          "[1:1] Unexpected character: was expecting a JSON value",
        );
      }
      keep(parsed);
      const unknown = Object.keys(parsed).filter((k) => k !== "query");
      if (unknown.length) {
        return esError(400, "parsing_exception", `request does not support [${unknown[0]}]`, {
          line: 1,
          col: 2,
        });
      }
      query = parsed.query ?? query;
    }
    const now = (this.opts.now?.() ?? new Date()).getTime();
    let predicate: Predicate;
    try {
      predicate = compile(query, now);
    } catch (err) {
      if (err instanceof QueryError) return err.response;
      throw err;
    }
    const expression = decodeURIComponent(m[1] ?? "_all");
    const names = expression === "_all" || expression === "*" ? ["*"] : expression.split(",");
    const matched = new Set<string>();
    for (const name of names) {
      if (name.includes("*")) {
        for (const idx of this.#indices.keys()) if (globMatch(name, idx)) matched.add(idx);
      } else if (this.#indices.has(name)) {
        matched.add(name);
      } else {
        return esError(404, "index_not_found_exception", `no such index [${name}]`, {
          "resource.type": "index_or_alias",
          "resource.id": name,
          index_uuid: "_na_",
          index: name,
        });
      }
    }
    for (const idx of matched) {
      if (!this.mayRead(user, idx)) {
        return esError(
          403,
          "security_exception",
          `action [indices:data/read/search] is unauthorized for user [${user}] with effective roles [] on indices [${idx}], this action is granted by the index privileges [read,all]`,
        );
      }
    }
    let count = 0;
    for (const idx of matched) count += this.#indices.get(idx)!.filter(predicate).length;
    return Response.json({
      count,
      _shards: { total: matched.size, successful: matched.size, skipped: 0, failed: 0 },
    });
  }
}

function globMatch(pattern: string, name: string): boolean {
  const re = new RegExp(
    `^${pattern.split("*").map((p) => p.replace(/[.+?^${}()|[\]\\]/g, "\\$&")).join(".*")}$`,
  );
  return re.test(name);
}
