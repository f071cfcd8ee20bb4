/**
 * HashiCorp Vault stand-in for tests: a loopback HTTP server speaking the slice of Vault's HTTP API
 * that bisman-ops uses, so the bot's production client (`node-vault`) can run against it.
 *
 * Behaviour follows Vault's documentation and source (checked while building):
 * - General: JSON answers, errors as `{"errors":[...]}`; `X-Vault-Token` required; a missing or
 *   unknown token is 403 `permission denied`; a sealed Vault answers 503 `Vault is sealed`.
 *   https://developer.hashicorp.com/vault/api-docs
 * - sys/health: unauthenticated; 200 when active, 503 when sealed; `sealedcode`/`activecode`/
 *   `standbyok`/`uninitcode` query parameters override the status.
 *   https://developer.hashicorp.com/vault/api-docs/system/health
 * - AppRole login: `POST auth/approle/login {role_id, secret_id}`; bad credentials are 400
 *   `invalid role or secret ID` (builtin/credential/approle/path_login.go), a missing role_id is
 *   `missing role_id`, a missing secret_id `missing secret_id`.
 *   https://developer.hashicorp.com/vault/api-docs/auth/approle#login-with-approle
 * - KV v2: `<mount>/data/<path>` (read with `?version=N`, write `{data, options:{cas}}`),
 *   `<mount>/metadata/<path>`; absent secrets are 404 `{"errors":[]}`; a CAS mismatch is 400
 *   `check-and-set parameter did not match the current version`; max_versions 0 means the engine
 *   default of 10 kept versions. https://developer.hashicorp.com/vault/api-docs/secret/kv/kv-v2
 * - Database rotate-root: `POST database/rotate-root/<name>` answers 204; the root user's password is
 *   changed on the database and kept only inside Vault. Unknown connections fail with Vault's
 *   internal-error shape (500, `failed to find entry for connection with name: "<name>"`, from
 *   builtin/logical/database/backend.go), a failed update with `failed to update user: …`.
 *   https://developer.hashicorp.com/vault/api-docs/secret/databases#rotate-root-credentials
 *   The default password policy makes 20 characters from [A-Za-z0-9-] with at least one of each
 *   class (https://developer.hashicorp.com/vault/docs/concepts/password-policies).
 * - ACL policies (tokens from {@link VaultStandIn.issueToken}): a path rule is exact, ends in a `*` glob
 *   (prefix match) or holds `+` for one segment; capabilities create, read, update, patch, delete, list,
 *   deny (deny wins). KV v2 "honors the distinction between the create and update capabilities": writing a
 *   key that does not exist needs `create`, overwriting one needs `update`; `<mount>/delete|undelete|
 *   destroy/<path>` need `update`, metadata DELETE needs `delete`, LIST needs `list`. A request without the
 *   capability is 403 `permission denied`.
 *   https://developer.hashicorp.com/vault/docs/concepts/policies,
 *   https://developer.hashicorp.com/vault/docs/secrets/kv/kv-v2
 * - LIST `<mount>/metadata/<path>` (HTTP method LIST, or GET with `?list=true`): `{"data":{"keys":[…]}}`
 *   with sub-folders ending in `/`; 404 `{"errors":[]}` when nothing is there.
 *   https://developer.hashicorp.com/vault/api-docs/secret/kv/kv-v2#list-secrets
 * - Database dynamic credentials: `GET database/creds/<role>` makes a user with the role's
 *   creation_statements (`{{name}}`, `{{password}}`, `{{expiration}}`) over the connection's CURRENT root
 *   credential, and answers `{lease_id, lease_duration, renewable, data: {username, password}}`. An unknown
 *   role is 400 `unknown role: <name>` (logical.ErrorResponse in path_creds_create.go); a role the
 *   connection's allowed_roles does not list (default: none) is 500 `"<name>" is not an allowed role`; a
 *   failed statement is 500. Usernames follow the PostgreSQL plugin's default template
 *   `v-<display name, 8>-<role, 8>-<20 random>-<unix time>`, cut to 63.
 *   https://developer.hashicorp.com/vault/api-docs/secret/databases#generate-credentials
 * - `PUT sys/leases/revoke {lease_id}` runs the role's revocation_statements (default: DROP ROLE) over the
 *   connection and answers 204; a lease already gone is 204 too (revocation is idempotent).
 *   https://developer.hashicorp.com/vault/api-docs/system/leases#revoke-lease
 */

import { randomBytes, randomInt, randomUUID } from "node:crypto";
import postgres from "postgres";
import { type LoopbackServer, serveLoopback, sleep } from "./http.ts";

export interface VaultStandInOptions {
  rootToken?: string;
  approle?: { roleId: string; secretId: string };
  kvMount?: string;
  /** lease_duration of tokens issued by AppRole login, in seconds (default 3600); enforced. */
  tokenTtlSeconds?: number;
}

export interface VaultCall {
  method: string;
  /** Request path including the query string (e.g. "/v1/secret/data/bisman/db?version=2"). */
  path: string;
  /** HTTP status answered; 0 while the answer is still pending (e.g. under delayNext). */
  status: number;
  /** Arrival time (ms since epoch). */
  at: number;
}

interface KvVersion {
  data: Record<string, unknown>;
  created_time: string;
  deletion_time: string;
  destroyed: boolean;
}

interface KvEntry {
  versions: Map<number, KvVersion>;
  current: number;
  oldest: number;
  created_time: string;
  updated_time: string;
}

/** A capability of Vault's ACL policy language. */
export type VaultCapability = "create" | "read" | "update" | "patch" | "delete" | "list" | "deny";

interface IssuedToken {
  accessor: string;
  policies: string[];
  /** Path rules of a token issued with a policy; absent: unrestricted (root, AppRole logins). */
  acl?: Record<string, VaultCapability[]>;
  issued: number;
  expires: number; // ms since epoch; Infinity for the root token
  ttl: number; // seconds; 0 for root
  path: string;
  meta: Record<string, string>;
}

interface DbConnection {
  connectionUrl: string;
  username: string;
  password: string;
  /** Vault's allowed_roles: role names, or "*" (default: none). */
  allowedRoles: string[];
  chain: Promise<unknown>;
}

interface DbRole {
  dbName: string;
  creationStatements: string[];
  revocationStatements: string[];
  defaultTtlSeconds: number;
}

interface DbLease {
  role: string;
  username: string;
}

const VERSION = "1.15.0-standin";
/** KV v2's default number of kept versions when max_versions is 0. */
const KV_DEFAULT_MAX_VERSIONS = 10;

type Json = Record<string, unknown>;

function isObj(v: unknown): v is Json {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function reply(status: number, body?: unknown): Response {
  if (body === undefined) return new Response(null, { status });
  return new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json" } });
}

function errors(status: number, ...msgs: string[]): Response {
  return reply(status, { errors: msgs });
}

/**
 * Reads the `path "…" { capabilities = [...] }` blocks of a Vault policy in HCL (the subset policies use), so
 * a test can give the stand-in the policy the deployment ships.
 * @throws {Error} on a block it cannot read
 */
export function parsePolicyHcl(text: string): Record<string, VaultCapability[]> {
  const out: Record<string, VaultCapability[]> = {};
  const body = text.split("\n").map((l) => l.replace(/#.*$/, "")).join("\n");
  const re = /path\s+"([^"]+)"\s*\{\s*capabilities\s*=\s*\[([^\]]*)\]\s*\}/g;
  let m: RegExpExecArray | null;
  let seen = 0;
  while ((m = re.exec(body))) {
    seen++;
    out[m[1]] = [...m[2].matchAll(/"([a-z]+)"/g)].map((c) => c[1] as VaultCapability);
  }
  if (seen !== (body.match(/\bpath\s+"/g) ?? []).length) {
    throw new Error("A path block of the policy is not readable");
  }
  return out;
}

/** Whether a path rule (exact, trailing `*` glob, `+` segment) matches `path`. */
function ruleMatches(rule: string, path: string): boolean {
  const glob = rule.endsWith("*");
  const parts = (glob ? rule.slice(0, -1) : rule).split("/");
  const have = path.split("/");
  if (!glob && parts.length !== have.length) return false;
  for (let i = 0; i < parts.length; i++) {
    const last = i === parts.length - 1;
    if (parts[i] === "+") {
      if (have[i] === undefined) return false;
      continue;
    }
    if (last && glob) return (have[i] ?? "").startsWith(parts[i]) && (have.length >= parts.length);
    if (have[i] !== parts[i]) return false;
  }
  return true;
}

/** Whether `acl` grants `cap` on `path`: some matching rule grants it and none denies. */
function allows(acl: Record<string, VaultCapability[]>, path: string, cap: VaultCapability): boolean {
  const rules = Object.entries(acl).filter(([rule]) => ruleMatches(rule, path));
  if (rules.some(([, caps]) => caps.includes("deny"))) return false;
  return rules.some(([, caps]) => caps.includes(cap));
}

/** Vault wraps internal (non-user) errors with go-multierror's formatting. */
function internalError(msg: string): Response {
  return errors(500, `1 error occurred:\n\t* ${msg}\n\n`);
}

/** The envelope Vault puts around every logical response. */
function envelope(fields: Json): Json {
  return {
    request_id: randomUUID(),
    lease_id: "",
    renewable: false,
    lease_duration: 0,
    data: null,
    wrap_info: null,
    warnings: null,
    auth: null,
    ...fields,
  };
}

function randomToken(prefix: string): string {
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
  let s = prefix;
  for (const b of randomBytes(24)) s += alphabet[b % alphabet.length];
  return s;
}

/** Vault's default password policy: 20 chars of [A-Za-z0-9-], at least one of each class. */
export function generatePassword(): string {
  const classes = ["abcdefghijklmnopqrstuvwxyz", "ABCDEFGHIJKLMNOPQRSTUVWXYZ", "0123456789", "-"];
  const all = classes.join("");
  const chars = classes.map((c) => c[randomInt(c.length)]);
  while (chars.length < 20) chars.push(all[randomInt(all.length)]);
  for (let i = chars.length - 1; i > 0; i--) {
    const j = randomInt(i + 1);
    [chars[i], chars[j]] = [chars[j], chars[i]];
  }
  return chars.join("");
}

function quoteIdent(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

function quoteLiteral(value: string): string {
  return `'${value.replaceAll("'", "''")}'`;
}

export class VaultStandIn {
  readonly addr: string;
  readonly rootToken: string;
  readonly approle: { roleId: string; secretId: string };
  readonly kvMount: string;
  calls: VaultCall[] = [];

  private sealed = false;
  private readonly tokenTtl: number;
  private readonly tokens = new Map<string, IssuedToken>();
  private readonly kv = new Map<string, KvEntry>();
  private readonly faults: { prefix: string; status: number; remaining: number }[] = [];
  private readonly delays: { prefix: string; ms: number; remaining: number }[] = [];
  private readonly stopping = new AbortController();
  private readonly databases = new Map<string, DbConnection>();
  private readonly dbRoles = new Map<string, DbRole>();
  private readonly leases = new Map<string, DbLease>();

  private constructor(private readonly server: LoopbackServer, opts: VaultStandInOptions) {
    this.addr = server.url;
    this.rootToken = opts.rootToken ?? "hvs.standin-root-token";
    this.approle = opts.approle ?? { roleId: "bisman-ops-role-id", secretId: "bisman-ops-secret-id" };
    this.kvMount = (opts.kvMount ?? "secret").replace(/^\/+|\/+$/g, "");
    this.tokenTtl = opts.tokenTtlSeconds ?? 3600;
    this.tokens.set(this.rootToken, {
      accessor: randomToken(""),
      policies: ["root"],
      issued: Date.now(),
      expires: Infinity,
      ttl: 0,
      path: "auth/token/root",
      meta: {},
    });
  }

  static async start(opts: VaultStandInOptions = {}): Promise<VaultStandIn> {
    const ref: { inst?: VaultStandIn } = {};
    const server = await serveLoopback((req) => {
      if (!ref.inst) return errors(503, "Vault is starting");
      return ref.inst.handle(req);
    });
    ref.inst = new VaultStandIn(server, opts);
    return ref.inst;
  }

  async stop(): Promise<void> {
    this.stopping.abort();
    await Promise.allSettled([...this.databases.values()].map((d) => d.chain));
    await this.server.close();
  }

  // --- test-side access (no HTTP) ---

  kvPut(path: string, data: Record<string, string>): number {
    return this.kvWrite(path, { ...data });
  }

  kvGet(
    path: string,
    version?: number,
  ): { data: Record<string, string>; version: number; created_time: string } | undefined {
    const e = this.kv.get(normPath(path));
    if (!e) return undefined;
    const v = version && version > 0 ? version : e.current;
    const ver = e.versions.get(v);
    if (!ver || ver.destroyed || ver.deletion_time) return undefined;
    return { data: { ...ver.data } as Record<string, string>, version: v, created_time: ver.created_time };
  }

  kvVersions(path: string): number {
    return this.kv.get(normPath(path))?.current ?? 0;
  }

  setCreatedTime(path: string, version: number, iso: string): void {
    const e = this.kv.get(normPath(path));
    const ver = e?.versions.get(version);
    if (!e || !ver) throw new Error(`no version ${version} at ${path}`);
    const t = new Date(iso);
    if (Number.isNaN(t.getTime())) throw new Error(`not an ISO time: ${iso}`);
    ver.created_time = t.toISOString();
    const first = e.versions.get(Math.min(...e.versions.keys()));
    if (first === ver) e.created_time = ver.created_time;
    if (version === e.current) e.updated_time = ver.created_time;
  }

  seal(): void {
    this.sealed = true;
  }

  unseal(): void {
    this.sealed = false;
  }

  /** The next `times` requests whose path (after "/v1/") starts with `pathPrefix` answer `status`. */
  failNext(pathPrefix: string, status: number, times = 1): void {
    this.faults.push({ prefix: pathPrefix.replace(/^\/?(v1\/)?/, ""), status, remaining: times });
  }

  /** The next `times` requests under `pathPrefix` are answered only after `ms` (to test client timeouts). */
  delayNext(pathPrefix: string, ms: number, times = 1): void {
    this.delays.push({ prefix: pathPrefix.replace(/^\/?(v1\/)?/, ""), ms, remaining: times });
  }

  configureDatabase(
    name: string,
    c: { connectionUrl: string; username: string; password: string; allowedRoles?: string[] },
  ): void {
    this.databases.set(name, { ...c, allowedRoles: c.allowedRoles ?? [], chain: Promise.resolve() });
  }

  /** `vault write database/roles/<name> db_name=… creation_statements=…` (test side). */
  configureDatabaseRole(
    name: string,
    r: {
      dbName: string;
      creationStatements: string[];
      revocationStatements?: string[];
      defaultTtlSeconds?: number;
    },
  ): void {
    this.dbRoles.set(name, {
      dbName: r.dbName,
      creationStatements: r.creationStatements,
      revocationStatements: r.revocationStatements ?? [],
      defaultTtlSeconds: r.defaultTtlSeconds ?? 3600,
    });
  }

  /** Users of dynamic-credential leases still open (test side). */
  openLeases(): { leaseId: string; role: string; username: string }[] {
    return [...this.leases].map(([leaseId, l]) => ({ leaseId, ...l }));
  }

  databasePassword(name: string): string | undefined {
    return this.databases.get(name)?.password;
  }

  /**
   * Issues a token restricted to `acl` (path rule → capabilities, in Vault's policy syntax), as a token
   * created with `vault token create -policy=…` would be.
   */
  issueToken(acl: Record<string, VaultCapability[]>): string {
    const token = randomToken("hvs.");
    this.tokens.set(token, {
      accessor: randomToken(""),
      policies: ["default", "bisman-standin"],
      issued: Date.now(),
      expires: Infinity,
      ttl: 0,
      path: "auth/token/create",
      meta: {},
      acl,
    });
    return token;
  }

  /** Revokes a token (e.g. to make the bot log in again). */
  revokeToken(token: string): void {
    if (token !== this.rootToken) this.tokens.delete(token);
  }

  // --- HTTP side ---

  private async handle(req: Request): Promise<Response> {
    const url = new URL(req.url);
    const call: VaultCall = {
      method: req.method,
      path: url.pathname + url.search,
      status: 0,
      at: Date.now(),
    };
    this.calls.push(call);
    let res: Response;
    try {
      res = await this.route(req, url);
    } catch (e) {
      // Never echo request bodies or credentials; the message is from the stand-in's own code.
      res = internalError(e instanceof Error ? e.message : String(e));
    }
    call.status = res.status;
    return res;
  }

  private async route(req: Request, url: URL): Promise<Response> {
    if (!url.pathname.startsWith("/v1/")) return errors(404);
    const path = url.pathname.slice(4).replace(/\/+$/, "");

    // Both decisions are taken on arrival, so a request abandoned by a timed-out client cannot
    // consume a fault meant for a later one.
    const fault = this.faults.find((f) => path.startsWith(f.prefix));
    if (fault && --fault.remaining <= 0) this.faults.splice(this.faults.indexOf(fault), 1);
    const delay = this.delays.find((d) => path.startsWith(d.prefix));
    if (delay && --delay.remaining <= 0) this.delays.splice(this.delays.indexOf(delay), 1);
    if (delay) await sleep(delay.ms, this.stopping.signal);
    if (fault) return errors(fault.status, `stand-in: injected HTTP ${fault.status}`);

    if (path === "sys/health" && (req.method === "GET" || req.method === "HEAD")) {
      return this.health(req, url);
    }
    if (this.sealed) return errors(503, "Vault is sealed");

    if (path === "auth/approle/login" && (req.method === "POST" || req.method === "PUT")) {
      return this.approleLogin(await readJson(req));
    }

    const token = req.headers.get("x-vault-token") ?? "";
    const t = this.tokens.get(token);
    if (!t || t.expires <= Date.now()) {
      if (t) this.tokens.delete(token);
      return errors(403, "permission denied");
    }

    if (path === "auth/token/lookup-self" && req.method === "GET") return this.lookupSelf(token, t);
    if (path === "auth/token/renew-self" && (req.method === "POST" || req.method === "PUT")) {
      return this.renewSelf(token, t, await readJson(req));
    }

    const isList = req.method === "LIST" || (req.method === "GET" && url.searchParams.get("list") === "true");
    const need = this.capabilityNeeded(path, isList ? "LIST" : req.method);
    // Vault appends "/" to the path of a LIST before the ACL check (http/logical.go).
    const aclPath = isList && !path.endsWith("/") ? `${path}/` : path;
    if (t.acl && !(need && allows(t.acl, aclPath, need))) return errors(403, "permission denied");

    const mount = `${this.kvMount}/`;
    if (isList && path.startsWith(`${mount}metadata/`)) {
      return this.kvList(normPath(path.slice(mount.length + 9)));
    }
    for (const op of ["delete", "undelete", "destroy"] as const) {
      if (path.startsWith(`${mount}${op}/`) && (req.method === "POST" || req.method === "PUT")) {
        return this.kvVersionOp(op, normPath(path.slice(mount.length + op.length + 1)), await readJson(req));
      }
    }
    if (path.startsWith(`${mount}data/`)) {
      const key = normPath(path.slice(mount.length + 5));
      if (!key) return errors(404);
      switch (req.method) {
        case "GET":
          return this.kvRead(key, url.searchParams.get("version"));
        case "POST":
        case "PUT":
          return this.kvHttpWrite(key, await readJson(req));
        case "DELETE":
          return this.kvSoftDelete(key);
      }
      return errors(405);
    }
    if (path.startsWith(`${mount}metadata/`)) {
      const key = normPath(path.slice(mount.length + 9));
      if (!key) return errors(404);
      if (req.method === "GET") return this.kvMetadata(key);
      if (req.method === "DELETE") {
        this.kv.delete(key);
        return reply(204);
      }
      return errors(405);
    }

    const rotate = /^database\/rotate-root\/([\w.-]+)$/.exec(path);
    if (rotate && (req.method === "POST" || req.method === "PUT")) return await this.rotateRoot(rotate[1]);
    const creds = /^database\/creds\/([\w.-]+)$/.exec(path);
    if (creds && req.method === "GET") return await this.issueCreds(creds[1], t);
    if (path === "sys/leases/revoke" && (req.method === "POST" || req.method === "PUT")) {
      return await this.revokeLease(await readJson(req));
    }

    return errors(404);
  }

  /** The capability a request needs, by Vault's rules (see the module doc); undefined for unknown paths. */
  private capabilityNeeded(path: string, method: string): VaultCapability | undefined {
    const mount = `${this.kvMount}/`;
    if (method === "LIST") return "list";
    if (path.startsWith(`${mount}data/`)) {
      if (method === "GET" || method === "HEAD") return "read";
      if (method === "PATCH") return "patch";
      if (method === "DELETE") return "delete";
      const key = normPath(path.slice(mount.length + 5));
      const e = this.kv.get(key);
      return e && e.current > 0 ? "update" : "create";
    }
    if (path.startsWith(`${mount}metadata/`)) {
      return method === "GET" ? "read" : method === "DELETE" ? "delete" : "update";
    }
    if (/^[^/]+\/(delete|undelete|destroy)\//.test(path)) return "update";
    if (path.startsWith("database/")) return method === "GET" ? "read" : "update";
    if (path.startsWith("sys/")) return method === "GET" ? "read" : "update";
    return undefined;
  }

  private kvList(prefix: string): Response {
    const base = prefix ? `${prefix}/` : "";
    const keys = new Set<string>();
    for (const [k, e] of this.kv) {
      if (!k.startsWith(base) || !e.versions.size) continue;
      const rest = k.slice(base.length);
      const slash = rest.indexOf("/");
      keys.add(slash < 0 ? rest : `${rest.slice(0, slash + 1)}`);
    }
    if (!keys.size) return errors(404);
    return reply(200, envelope({ data: { keys: [...keys].sort() } }));
  }

  private kvVersionOp(op: "delete" | "undelete" | "destroy", key: string, body: Json): Response {
    const e = this.kv.get(key);
    const versions = Array.isArray(body.versions) ? body.versions.map(Number) : [];
    if (!versions.length) return errors(400, "no version number provided");
    for (const v of versions) {
      const ver = e?.versions.get(v);
      if (!ver) continue;
      if (op === "delete") ver.deletion_time ||= new Date().toISOString();
      else if (op === "undelete") ver.deletion_time = "";
      else {
        ver.destroyed = true;
        ver.data = {};
      }
    }
    return reply(204);
  }

  private health(req: Request, url: URL): Response {
    const q = url.searchParams;
    const code = (name: string, dflt: number) => {
      const v = q.get(name);
      const n = v === null ? NaN : Number(v);
      return Number.isInteger(n) && n > 0 ? n : dflt;
    };
    const status = this.sealed ? code("sealedcode", 503) : code("activecode", 200);
    const body: Json = {
      initialized: true,
      sealed: this.sealed,
      standby: this.sealed,
      performance_standby: false,
      replication_performance_mode: "disabled",
      replication_dr_mode: "disabled",
      server_time_utc: Math.floor(Date.now() / 1000),
      version: VERSION,
      enterprise: false,
      echo_duration_ms: 0,
      clock_skew_ms: 0,
    };
    if (!this.sealed) {
      body.cluster_name = "vault-cluster-standin";
      body.cluster_id = "00000000-0000-4000-8000-000000000000";
    }
    return req.method === "HEAD" ? reply(status) : reply(status, body);
  }

  private approleLogin(body: Json): Response {
    const roleId = typeof body.role_id === "string" ? body.role_id.trim() : "";
    if (!roleId) return errors(400, "missing role_id");
    if (roleId !== this.approle.roleId) return errors(400, "invalid role or secret ID");
    const secretId = typeof body.secret_id === "string" ? body.secret_id.trim() : "";
    if (!secretId) return errors(400, "missing secret_id");
    if (secretId !== this.approle.secretId) return errors(400, "invalid role or secret ID");

    const token = randomToken("hvs.");
    const policies = ["default", "bisman-ops"];
    const issued: IssuedToken = {
      accessor: randomToken(""),
      policies,
      issued: Date.now(),
      expires: Date.now() + this.tokenTtl * 1000,
      ttl: this.tokenTtl,
      path: "auth/approle/login",
      meta: { role_name: "bisman-ops" },
    };
    this.tokens.set(token, issued);
    return reply(200, envelope({ auth: this.authBlock(token, issued), mount_type: "" }));
  }

  private authBlock(token: string, t: IssuedToken): Json {
    return {
      client_token: token,
      accessor: t.accessor,
      policies: t.policies,
      token_policies: t.policies,
      metadata: t.meta,
      lease_duration: t.ttl,
      renewable: t.ttl > 0,
      entity_id: "",
      token_type: "service",
      orphan: true,
      mfa_requirement: null,
      num_uses: 0,
    };
  }

  private lookupSelf(token: string, t: IssuedToken): Response {
    const ttl = Number.isFinite(t.expires) ? Math.max(0, Math.floor((t.expires - Date.now()) / 1000)) : 0;
    return reply(
      200,
      envelope({
        data: {
          accessor: t.accessor,
          creation_time: Math.floor(t.issued / 1000),
          creation_ttl: t.ttl,
          display_name: t.path === "auth/approle/login" ? "approle" : "root",
          entity_id: "",
          expire_time: Number.isFinite(t.expires) ? new Date(t.expires).toISOString() : null,
          explicit_max_ttl: 0,
          id: token,
          issue_time: new Date(t.issued).toISOString(),
          meta: t.meta,
          num_uses: 0,
          orphan: true,
          path: t.path,
          policies: t.policies,
          renewable: t.ttl > 0,
          ttl,
          type: "service",
        },
      }),
    );
  }

  private renewSelf(token: string, t: IssuedToken, body: Json): Response {
    if (t.ttl === 0) return errors(400, "lease is not renewable");
    const inc = typeof body.increment === "number"
      ? body.increment
      : Number.parseInt(String(body.increment ?? ""));
    const seconds = Number.isFinite(inc) && inc > 0 ? Math.min(inc, this.tokenTtl) : t.ttl;
    t.expires = Date.now() + seconds * 1000;
    return reply(200, envelope({ auth: { ...this.authBlock(token, t), lease_duration: seconds } }));
  }

  // --- KV v2 ---

  private kvWrite(key: string, data: Record<string, unknown>): number {
    key = normPath(key);
    const now = new Date().toISOString();
    let e = this.kv.get(key);
    if (!e) {
      e = { versions: new Map(), current: 0, oldest: 0, created_time: now, updated_time: now };
      this.kv.set(key, e);
    }
    const v = e.current + 1;
    e.versions.set(v, { data, created_time: now, deletion_time: "", destroyed: false });
    e.current = v;
    e.updated_time = now;
    // Keep only the newest KV_DEFAULT_MAX_VERSIONS versions, like the engine default.
    while (e.versions.size > KV_DEFAULT_MAX_VERSIONS) {
      e.versions.delete(Math.min(...e.versions.keys()));
      e.oldest = Math.min(...e.versions.keys());
    }
    return v;
  }

  private kvHttpWrite(key: string, body: Json): Response {
    if (!isObj(body.data)) return errors(400, "no data provided");
    const opts = isObj(body.options) ? body.options : {};
    const current = this.kv.get(key)?.current ?? 0;
    if (opts.cas !== undefined) {
      const cas = Number(opts.cas);
      if (!Number.isInteger(cas) || cas < 0) return errors(400, "invalid cas parameter");
      if (cas !== current) return errors(400, "check-and-set parameter did not match the current version");
    }
    const v = this.kvWrite(key, { ...body.data });
    const ver = this.kv.get(key)!.versions.get(v)!;
    return reply(200, envelope({ data: versionMeta(ver, v) }));
  }

  private kvRead(key: string, versionParam: string | null): Response {
    const e = this.kv.get(key);
    if (!e) return errors(404);
    const requested = versionParam === null ? 0 : Number(versionParam);
    if (!Number.isInteger(requested) || requested < 0) return errors(400, "invalid version");
    const v = requested === 0 ? e.current : requested;
    const ver = e.versions.get(v);
    if (!ver) return errors(404);
    if (ver.deletion_time || ver.destroyed) {
      // Vault answers 404 but still shows the version's metadata.
      return reply(404, envelope({ data: { data: null, metadata: versionMeta(ver, v) } }));
    }
    return reply(200, envelope({ data: { data: ver.data, metadata: versionMeta(ver, v) } }));
  }

  private kvSoftDelete(key: string): Response {
    const e = this.kv.get(key);
    const ver = e?.versions.get(e.current);
    if (ver && !ver.deletion_time) ver.deletion_time = new Date().toISOString();
    return reply(204);
  }

  private kvMetadata(key: string): Response {
    const e = this.kv.get(key);
    if (!e) return errors(404);
    const versions: Json = {};
    for (const [n, v] of [...e.versions].sort((a, b) => a[0] - b[0])) {
      versions[String(n)] = {
        created_time: v.created_time,
        deletion_time: v.deletion_time,
        destroyed: v.destroyed,
      };
    }
    return reply(
      200,
      envelope({
        data: {
          cas_required: false,
          created_time: e.created_time,
          current_version: e.current,
          custom_metadata: null,
          delete_version_after: "0s",
          max_versions: 0,
          oldest_version: e.oldest,
          updated_time: e.updated_time,
          versions,
        },
      }),
    );
  }

  // --- database dynamic credentials ---

  private async issueCreds(name: string, token: IssuedToken): Promise<Response> {
    const role = this.dbRoles.get(name);
    if (!role) return errors(400, `unknown role: ${name}`);
    const conn = this.databases.get(role.dbName);
    if (!conn) {
      return internalError(`failed to find entry for connection with name: ${JSON.stringify(role.dbName)}`);
    }
    if (!conn.allowedRoles.includes("*") && !conn.allowedRoles.includes(name)) {
      return internalError(`${JSON.stringify(name)} is not an allowed role`);
    }
    const display = (token.policies.includes("root") ? "root" : "token").slice(0, 8);
    const username = `v-${display}-${name.slice(0, 8)}-${randomToken("").slice(0, 20)}-${
      Math.floor(Date.now() / 1000)
    }`.slice(0, 63);
    const password = generatePassword();
    const expiration = new Date(Date.now() + role.defaultTtlSeconds * 1000).toISOString()
      .replace("T", " ").replace(/\.\d+Z$/, "+00");
    const statements = role.creationStatements.map((st) =>
      st.replaceAll("{{name}}", username).replaceAll("{{username}}", username)
        .replaceAll("{{password}}", password).replaceAll("{{expiration}}", expiration)
    );
    // Vault serializes operations on one connection.
    const run = conn.chain.then(() => runOnConnection(conn, statements));
    conn.chain = run.catch(() => {});
    try {
      await run;
    } catch (e) {
      return internalError(
        `failed to create user: ${errText(e)}`.replaceAll(password, "[redacted]").replaceAll(
          conn.password,
          "[redacted]",
        ),
      );
    }
    const leaseId = `database/creds/${name}/${randomToken("")}`;
    this.leases.set(leaseId, { role: name, username });
    return reply(
      200,
      envelope({
        lease_id: leaseId,
        renewable: true,
        lease_duration: role.defaultTtlSeconds,
        data: { username, password },
      }),
    );
  }

  private async revokeLease(body: Json): Promise<Response> {
    const leaseId = typeof body.lease_id === "string" ? body.lease_id : "";
    if (!leaseId) return errors(400, "missing lease ID");
    const lease = this.leases.get(leaseId);
    if (!lease) return reply(204);
    const role = this.dbRoles.get(lease.role);
    const conn = role ? this.databases.get(role.dbName) : undefined;
    if (!role || !conn) return internalError("failed to revoke entry: connection not found");
    const statements = role.revocationStatements.length
      ? role.revocationStatements.map((st) => st.replaceAll("{{name}}", lease.username))
      : [`DROP ROLE IF EXISTS ${quoteIdent(lease.username)}`];
    const run = conn.chain.then(() => runOnConnection(conn, statements));
    conn.chain = run.catch(() => {});
    try {
      await run;
    } catch (e) {
      return internalError(`failed to revoke entry: ${errText(e)}`.replaceAll(conn.password, "[redacted]"));
    }
    this.leases.delete(leaseId);
    return reply(204);
  }

  // --- database rotate-root ---

  private rotateRoot(name: string): Promise<Response> {
    const conn = this.databases.get(name);
    if (!conn) {
      return Promise.resolve(
        internalError(`failed to find entry for connection with name: ${JSON.stringify(name)}`),
      );
    }
    // Vault holds the connection's write lock during a rotation: serialize per connection.
    const run = conn.chain.then(() => this.doRotate(conn));
    conn.chain = run.catch(() => {});
    return run;
  }

  private async doRotate(conn: DbConnection): Promise<Response> {
    if (!conn.username) {
      return internalError("unable to rotate root credentials: no username in configuration");
    }
    if (!conn.password) {
      return internalError("unable to rotate root credentials: no password in configuration");
    }
    const oldPassword = conn.password;
    const newPassword = generatePassword();
    const scrub = (msg: string) =>
      msg.replaceAll(newPassword, "[redacted]").replaceAll(oldPassword, "[redacted]");

    // Like Vault's postgresql plugin, the connection URL may carry {{username}}/{{password}} templates.
    const templated = conn.connectionUrl.includes("{{");
    const url = conn.connectionUrl
      .replaceAll("{{username}}", encodeURIComponent(conn.username))
      .replaceAll("{{password}}", encodeURIComponent(oldPassword));
    const sql = postgres(url, {
      ...(templated ? {} : { username: conn.username, password: oldPassword }),
      max: 1,
      connect_timeout: 5,
      idle_timeout: 1,
      onnotice: () => {},
      // Keep the default error text free of the query (and thus the password).
      debug: false,
    });
    try {
      try {
        await sql`select 1`;
      } catch (e) {
        return internalError(scrub(`error verifying connection: ${errText(e)}`));
      }
      try {
        // ALTER ROLE takes no bind parameters; the identifier and literal are quoted here.
        await sql.unsafe(
          `ALTER ROLE ${quoteIdent(conn.username)} WITH PASSWORD ${quoteLiteral(newPassword)}`,
        );
      } catch (e) {
        return internalError(scrub(`failed to update user: ${errText(e)}`));
      }
      conn.password = newPassword;
      return reply(204);
    } finally {
      await sql.end({ timeout: 5 }).catch(() => {});
    }
  }
}

/**
 * Runs `statements` over database connection `conn` with its current root credential (as Vault's plugin
 * does for every dynamic-credential operation); the error text never holds the credential.
 */
async function runOnConnection(conn: DbConnection, statements: string[]): Promise<void> {
  const templated = conn.connectionUrl.includes("{{");
  const url = conn.connectionUrl
    .replaceAll("{{username}}", encodeURIComponent(conn.username))
    .replaceAll("{{password}}", encodeURIComponent(conn.password));
  const sql = postgres(url, {
    ...(templated ? {} : { username: conn.username, password: conn.password }),
    max: 1,
    connect_timeout: 5,
    idle_timeout: 1,
    onnotice: () => {},
    debug: false,
  });
  try {
    for (const st of statements) await sql.unsafe(st);
  } finally {
    await sql.end({ timeout: 5 }).catch(() => {});
  }
}

function versionMeta(v: KvVersion, n: number): Json {
  return {
    created_time: v.created_time,
    custom_metadata: null,
    deletion_time: v.deletion_time,
    destroyed: v.destroyed,
    version: n,
  };
}

function normPath(p: string): string {
  return p.replace(/^\/+|\/+$/g, "");
}

function errText(e: unknown): string {
  if (e && typeof e === "object") {
    const o = e as { message?: unknown; code?: unknown };
    const msg = typeof o.message === "string" ? o.message : String(e);
    return typeof o.code === "string" && !msg.includes(o.code) ? `${msg} (SQLSTATE ${o.code})` : msg;
  }
  return String(e);
}

async function readJson(req: Request): Promise<Json> {
  const text = await req.text();
  if (!text.trim()) return {};
  try {
    const v = JSON.parse(text);
    return isObj(v) ? v : {};
  } catch {
    return {};
  }
}
