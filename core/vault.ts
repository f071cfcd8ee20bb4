/**
 * The bot's Vault client: a small typed layer over `node-vault` for the calls bisman-ops makes - KV v2
 * read, read of one version, metadata, write with check-and-set, `sys/health`, and the database engine's
 * `rotate-root`.
 *
 * Safety:
 * - Every value read from a secret is registered with {@link Secrets} before it is returned, so the logger
 *   and the audit log scrub it wherever it turns up.
 * - Errors become {@link VaultError} (an OpsError) whose message names the call, the path and Vault's own
 *   one-line reason, scrubbed of secrets. The underlying axios error is never kept as `cause`: its
 *   `config` holds the request body (a new password) and the `X-Vault-Token` header.
 * - `node-vault` is given a no-op `debug`, so `DEBUG=node-vault` (which would print request bodies with
 *   their secrets) has no effect on this client.
 * - Every request has a timeout (node-vault has none by default).
 *
 * Authentication: `VAULT_TOKEN`, or AppRole (`VAULT_ROLE_ID` + `VAULT_SECRET_ID`): the client logs in
 * before its first call, again shortly before the issued token's TTL runs out, and once more when Vault
 * answers 403 (a revoked or expired token), then retries that call once.
 *
 * @module
 */

import vault from "node-vault";
import type { BotEnv } from "./env.ts";
import type { Logger, Secrets } from "./log.ts";
import { type ErrorCode, NotConfigured, OpsError } from "./errors.ts";
import { own } from "./lookup.ts";

/** Why a Vault call failed; callers branch on it (a CAS mismatch stops a rotation, sealed waits, ...). */
export type VaultFailure =
  | "sealed"
  | "permission"
  | "cas_mismatch"
  | "not_found"
  | "timeout"
  | "unreachable"
  | "bad_request"
  | "server";

const codeOf: Record<VaultFailure, ErrorCode> = {
  sealed: "unreachable",
  permission: "not_configured",
  cas_mismatch: "conflict",
  not_found: "not_configured",
  timeout: "unreachable",
  unreachable: "unreachable",
  bad_request: "invalid_input",
  server: "unreachable",
};

/**
 * A failed Vault call. `reason` says why; `status` is Vault's HTTP status when it answered.
 * `definitelyNotApplied` is true when Vault answered in a way that means a write did not happen
 * (4xx, sealed); false when the outcome is unknown (timeout, connection lost, 5xx).
 */
export class VaultError extends OpsError {
  constructor(
    readonly reason: VaultFailure,
    readonly status: number | undefined,
    message: string,
    options?: ErrorOptions,
  ) {
    super(codeOf[reason], message, options);
    this.name = "VaultError";
  }

  /** True when Vault answered and refused, so a write certainly did not happen. */
  get definitelyNotApplied(): boolean {
    return this.status !== undefined && (this.status < 500 || this.reason === "sealed");
  }
}

/** One version of a KV v2 secret. */
export interface KvSecret {
  mount: string;
  path: string;
  version: number;
  createdTime: string;
  /** Key -> value; every string value is registered as a secret. */
  data: Record<string, string>;
}

/** One version's entry in a secret's metadata. */
export interface KvVersionMeta {
  version: number;
  createdTime: string;
  /** "" when not deleted. */
  deletionTime: string;
  destroyed: boolean;
}

/** KV v2 metadata of a secret. */
export interface KvMetadata {
  mount: string;
  path: string;
  currentVersion: number;
  oldestVersion: number;
  /** Ascending by version. */
  versions: KvVersionMeta[];
}

/** What `sys/health` says, or that Vault did not answer. Never throws. */
export interface VaultHealth {
  reachable: boolean;
  initialized?: boolean;
  sealed?: boolean;
  standby?: boolean;
  version?: string;
  /** Why it is not reachable (no secret in it). */
  error?: string;
}

/** How to build a {@link VaultClient}. */
export interface VaultClientOptions {
  /** e.g. `https://vault.internal:8200` */
  addr: string;
  token?: string;
  roleId?: string;
  secretId?: string;
  /** KV v2 mount used when a call names none (default `secret`). */
  kvMount?: string;
  /** Per-request timeout in ms (default 5,000; health uses at most 2,000). */
  timeoutMs?: number;
  secrets: Secrets;
  log?: Logger;
}

const SEGMENT = "[A-Za-z0-9_.-]+";
/** A KV path or mount: `/`-separated segments of `[A-Za-z0-9_.-]`, no `.`/`..` segment. */
const PATH_RE = new RegExp(`^${SEGMENT}(/${SEGMENT})*$`);
const NAME_RE = /^[A-Za-z0-9_.-]{1,128}$/;

/**
 * Checks a KV mount or path before it becomes part of a URL.
 * @throws {VaultError} bad_request for anything outside the safe alphabet or with a dot segment
 * @example
 * checkVaultPath("bisman/db"); // ok
 * checkVaultPath("../sys/seal"); // throws
 */
export function checkVaultPath(p: string, what = "path"): void {
  if (!PATH_RE.test(p) || p.split("/").some((s) => s === "." || s === "..")) {
    throw new VaultError(
      "bad_request",
      undefined,
      `Refusing Vault ${what} ${JSON.stringify(p.slice(0, 80))}`,
    );
  }
}

/**
 * Splits a `vault: <path>#<key>` reference from config.
 * @throws {VaultError} bad_request when it is not in that form
 * @example
 * parseVaultRef("bisman/ops#password"); // { path: "bisman/ops", key: "password" }
 */
export function parseVaultRef(ref: string): { path: string; key: string } {
  const i = ref.lastIndexOf("#");
  const path = i > 0 ? ref.slice(0, i) : "";
  const key = i > 0 ? ref.slice(i + 1) : "";
  checkVaultPath(path);
  if (!NAME_RE.test(key)) throw new VaultError("bad_request", undefined, "Vault reference has no valid #key");
  return { path, key };
}

type RawVaultError = Error & {
  response?: { statusCode?: number; body?: unknown };
  code?: string;
};

/** Vault's first error line, without go-multierror's wrapping, short. */
function vaultReason(err: RawVaultError): string {
  const body = err.response?.body as { errors?: unknown[] } | undefined;
  const first = Array.isArray(body?.errors) && typeof body.errors[0] === "string" ? body.errors[0] : "";
  const cleaned = first.replace(/^\d+ errors? occurred:\s*/, "").replace(/^\*\s*/, "").trim()
    .split("\n")[0].replace(/^\*\s*/, "").trim();
  return cleaned.slice(0, 200);
}

/** The client the bot uses for everything Vault. */
export class VaultClient {
  readonly addr: string;
  readonly kvMount: string;
  readonly timeoutMs: number;
  readonly auth: "token" | "approle" | "none";
  #client: ReturnType<typeof vault>;
  #secrets: Secrets;
  #log?: Logger;
  #roleId?: string;
  #secretId?: string;
  /** ms since epoch after which the AppRole token is renewed by logging in again. */
  #renewAt = 0;
  #login?: Promise<void>;

  constructor(opts: VaultClientOptions) {
    this.addr = opts.addr.replace(/\/+$/, "");
    this.kvMount = opts.kvMount ?? "secret";
    checkVaultPath(this.kvMount, "mount");
    this.timeoutMs = opts.timeoutMs ?? 5_000;
    this.#secrets = opts.secrets;
    this.#log = opts.log;
    this.#roleId = opts.roleId;
    this.#secretId = opts.secretId;
    this.auth = opts.token ? "token" : opts.roleId && opts.secretId ? "approle" : "none";
    for (const s of [opts.token, opts.secretId]) this.#secrets.add(s);
    this.#client = vault({
      apiVersion: "v1",
      endpoint: this.addr,
      token: opts.token,
      requestOptions: { timeout: this.timeoutMs },
      // node-vault's debug() would print request bodies (new passwords) under DEBUG=node-vault.
      debug: () => {},
    } as never);
  }

  /**
   * The client for this process's environment, or undefined when `VAULT_ADDR` is not set.
   * @param opts `kvMount` and `timeoutMs` overrides
   */
  static fromEnv(
    env: Pick<BotEnv, "vaultAddr" | "vaultToken" | "vaultRoleId" | "vaultSecretId">,
    secrets: Secrets,
    log?: Logger,
    opts: { kvMount?: string; timeoutMs?: number } = {},
  ): VaultClient | undefined {
    if (!env.vaultAddr) return undefined;
    return new VaultClient({
      addr: env.vaultAddr,
      token: env.vaultToken,
      roleId: env.vaultRoleId,
      secretId: env.vaultSecretId,
      secrets,
      log,
      ...opts,
    });
  }

  /** The address without any user-info part, for messages. */
  get displayAddr(): string {
    try {
      const u = new URL(this.addr);
      return `${u.protocol}//${u.host}`;
    } catch {
      return "(invalid VAULT_ADDR)";
    }
  }

  /**
   * The current version of a KV v2 secret.
   * @throws {VaultError} `not_found` when the secret does not exist or its current version is deleted
   */
  async read(path: string, opts: { mount?: string } = {}): Promise<KvSecret> {
    return await this.#readKv(path, undefined, opts.mount);
  }

  /**
   * One version of a KV v2 secret.
   * @throws {VaultError} `not_found` when that version does not exist, is deleted or destroyed
   */
  async readVersion(path: string, version: number, opts: { mount?: string } = {}): Promise<KvSecret> {
    if (!Number.isInteger(version) || version < 1) {
      throw new VaultError("bad_request", undefined, `Vault version must be a positive integer`);
    }
    return await this.#readKv(path, version, opts.mount);
  }

  /** Reads a KV v2 record that is not a secret (a witness anchor): its values are not registered for scrubbing. */
  async readRecord(path: string, opts: { mount?: string } = {}): Promise<KvSecret> {
    return await this.#readKv(path, undefined, opts.mount, false);
  }

  async #readKv(
    path: string,
    version: number | undefined,
    mountOpt?: string,
    secret = true,
  ): Promise<KvSecret> {
    const mount = mountOpt ?? this.kvMount;
    checkVaultPath(mount, "mount");
    checkVaultPath(path);
    const url = `${mount}/data/${path}${version ? `?version=${version}` : ""}`;
    const what = `read ${mount}/${path}${version ? ` version ${version}` : ""}`;
    const res = await this.#call(what, (c) => c.read(url));
    const raw = (res?.data?.data ?? {}) as Record<string, unknown>;
    const data: Record<string, string> = {};
    for (const [k, v] of Object.entries(raw)) {
      const s = typeof v === "string" ? v : JSON.stringify(v);
      if (secret) this.#secrets.add(s);
      data[k] = s;
    }
    return {
      mount,
      path,
      version: Number(res?.data?.metadata?.version ?? 0),
      createdTime: String(res?.data?.metadata?.created_time ?? ""),
      data,
    };
  }

  /**
   * KV v2 metadata: current and oldest version and each kept version's times. Holds no secret values.
   * @throws {VaultError} `not_found` when the secret does not exist
   */
  async metadata(path: string, opts: { mount?: string } = {}): Promise<KvMetadata> {
    const mount = opts.mount ?? this.kvMount;
    checkVaultPath(mount, "mount");
    checkVaultPath(path);
    const res = await this.#call(
      `read the metadata of ${mount}/${path}`,
      (c) => c.read(`${mount}/metadata/${path}`),
    );
    const d = res?.data ?? {};
    const versions: KvVersionMeta[] = Object.entries((d.versions ?? {}) as Record<string, any>)
      .map(([n, v]) => ({
        version: Number(n),
        createdTime: String(v?.created_time ?? ""),
        deletionTime: String(v?.deletion_time ?? ""),
        destroyed: v?.destroyed === true,
      }))
      .sort((a, b) => a.version - b.version);
    return {
      mount,
      path,
      currentVersion: Number(d.current_version ?? 0),
      oldestVersion: Number(d.oldest_version ?? 0),
      versions,
    };
  }

  /**
   * Writes a new version of a KV v2 secret with check-and-set: Vault refuses it unless the secret's current
   * version is `cas` (0: only when absent). Never retried after a timeout, since the first attempt may have
   * landed; callers read back to learn the outcome (see {@link VaultError.definitelyNotApplied}).
   * @returns the version written and its creation time
   * @throws {VaultError} `cas_mismatch` when another writer got there first
   */
  async write(
    path: string,
    data: Record<string, string>,
    opts: { cas: number; mount?: string },
  ): Promise<{ version: number; createdTime: string }> {
    const mount = opts.mount ?? this.kvMount;
    checkVaultPath(mount, "mount");
    checkVaultPath(path);
    if (!Number.isInteger(opts.cas) || opts.cas < 0) {
      throw new VaultError(
        "bad_request",
        undefined,
        "Vault check-and-set version must be an integer \u2265 0",
      );
    }
    for (const v of Object.values(data)) this.#secrets.add(v);
    const res = await this.#call(
      `write ${mount}/${path} (check-and-set on version ${opts.cas})`,
      (c) => c.write(`${mount}/data/${path}`, { data, options: { cas: opts.cas } }),
    );
    return { version: Number(res?.data?.version ?? 0), createdTime: String(res?.data?.created_time ?? "") };
  }

  /**
   * Creates a KV v2 entry that must not exist yet (check-and-set 0), for records that are not secrets (the
   * audit witness's anchors): the values are not registered for scrubbing.
   * @throws {VaultError} `bad_request` when the entry exists, `permission_denied` without `create`
   */
  async createRecord(
    path: string,
    data: Record<string, string>,
    opts: { mount?: string } = {},
  ): Promise<void> {
    const mount = opts.mount ?? this.kvMount;
    checkVaultPath(mount, "mount");
    checkVaultPath(path);
    await this.#call(
      `create ${mount}/${path}`,
      (c) => c.write(`${mount}/data/${path}`, { data, options: { cas: 0 } }),
    );
  }

  /**
   * Lists the keys under a KV v2 folder (sub-folders end in `/`); empty when there is none.
   * @throws {VaultError} e.g. `permission_denied` without `list`
   */
  async list(path: string, opts: { mount?: string } = {}): Promise<string[]> {
    const mount = opts.mount ?? this.kvMount;
    checkVaultPath(mount, "mount");
    checkVaultPath(path);
    try {
      const res = await this.#call(`list ${mount}/${path}`, (c) => c.list(`${mount}/metadata/${path}`));
      return Array.isArray(res?.data?.keys) ? res.data.keys.map(String) : [];
    } catch (err) {
      if (err instanceof VaultError && err.reason === "not_found") return [];
      throw err;
    }
  }

  /**
   * Reads one key of a KV v2 secret named as `path#key` (a connection's `vault:` in config).
   * @throws {NotConfigured} when the key is absent; {@link VaultError} from the read
   */
  async readRef(ref: string, opts: { mount?: string } = {}): Promise<string> {
    const { path, key } = parseVaultRef(ref);
    const s = await this.read(path, opts);
    const v = own(s.data, key);
    if (v === undefined) {
      throw new NotConfigured(
        `Vault secret ${s.mount}/${path} has no key ${key}: add it, or fix the reference`,
      );
    }
    return v;
  }

  /** `sys/health`. Never throws: an unreachable Vault is `{ reachable: false }`. */
  async health(): Promise<VaultHealth> {
    try {
      const h = await this.#client.health({ requestOptions: { timeout: Math.min(this.timeoutMs, 2_000) } });
      if (!h || typeof h !== "object") return { reachable: false, error: "sys/health gave no JSON body" };
      return {
        reachable: true,
        initialized: h.initialized,
        sealed: h.sealed,
        standby: h.standby,
        version: typeof h.version === "string" ? h.version : undefined,
      };
    } catch (err) {
      return {
        reachable: false,
        error: this.#mapError(err as RawVaultError, "check sys/health").userMessage,
      };
    }
  }

  /**
   * `POST database/rotate-root/<connection>`: Vault changes its database connection's own password and
   * keeps the new one to itself. Resolves when Vault answers 204.
   * @throws {VaultError} `not_found` for an unknown connection (Vault answers 500 "failed to find entry"),
   *   other reasons as mapped
   */
  async rotateRoot(connection: string, opts: { mount?: string } = {}): Promise<void> {
    const mount = opts.mount ?? "database";
    checkVaultPath(mount, "mount");
    if (!NAME_RE.test(connection)) {
      throw new VaultError("bad_request", undefined, "Refusing Vault database connection name");
    }
    try {
      await this.#call(
        `rotate-root ${mount}/${connection}`,
        (c) => c.write(`${mount}/rotate-root/${connection}`, {}),
      );
    } catch (err) {
      if (err instanceof VaultError && /failed to find entry for connection/.test(err.message)) {
        throw new VaultError(
          "not_found",
          err.status,
          `Vault has no database connection "${connection}" under ${mount}/: fix targets.<name>.vault.database_connection`,
        );
      }
      throw err;
    }
  }

  /**
   * `GET database/creds/<role>`: Vault creates a database user for `role` over its connection's root
   * credential and returns it with a lease. The password is registered as a secret at once.
   * @throws {VaultError} as mapped (an unknown role is 400 `unknown role`)
   */
  async issueDatabaseCredentials(
    role: string,
    opts: { mount?: string } = {},
  ): Promise<{ username: string; password: string; leaseId: string }> {
    const mount = opts.mount ?? "database";
    checkVaultPath(mount, "mount");
    if (!NAME_RE.test(role)) {
      throw new VaultError("bad_request", undefined, "Refusing Vault database role name");
    }
    const res = await this.#call(
      `issue credentials of ${mount}/roles/${role}`,
      (c) => c.read(`${mount}/creds/${role}`),
    );
    const username = String(res?.data?.username ?? "");
    const password = String(res?.data?.password ?? "");
    this.#secrets.add(password);
    return { username, password, leaseId: String(res?.lease_id ?? "") };
  }

  /** `PUT sys/leases/revoke`: ends a lease (for database credentials, Vault drops the user). */
  async revokeLease(leaseId: string): Promise<void> {
    if (!/^[A-Za-z0-9_./-]{1,300}$/.test(leaseId)) {
      throw new VaultError("bad_request", undefined, "Refusing a malformed lease ID");
    }
    await this.#call("revoke a lease", (c) => c.write("sys/leases/revoke", { lease_id: leaseId }));
  }

  /** Runs one node-vault call with a valid token; on 403 with AppRole, logs in again and retries once. */
  async #call<T>(what: string, fn: (c: ReturnType<typeof vault>) => Promise<T>): Promise<T> {
    if (this.auth === "none") {
      throw new NotConfigured(
        "Vault is not configured completely: set VAULT_TOKEN, or VAULT_ROLE_ID and VAULT_SECRET_ID",
      );
    }
    await this.#ensureToken();
    try {
      return await fn(this.#client);
    } catch (err) {
      const raw = err as RawVaultError;
      if (raw.response?.statusCode === 403 && this.auth === "approle") {
        this.#log?.info("vault answered 403; logging in with AppRole again", { call: what });
        this.#renewAt = 0;
        await this.#ensureToken();
        try {
          return await fn(this.#client);
        } catch (err2) {
          throw this.#mapError(err2 as RawVaultError, what);
        }
      }
      throw this.#mapError(raw, what);
    }
  }

  async #ensureToken(): Promise<void> {
    if (this.auth !== "approle" || Date.now() < this.#renewAt) return;
    this.#login ??= this.#approleLogin().finally(() => (this.#login = undefined));
    await this.#login;
  }

  async #approleLogin(): Promise<void> {
    let res: any;
    try {
      res = await this.#client.approleLogin({ role_id: this.#roleId!, secret_id: this.#secretId! });
    } catch (err) {
      throw this.#mapError(err as RawVaultError, "log in with AppRole");
    }
    const token = res?.auth?.client_token;
    this.#secrets.add(token);
    const ttl = Number(res?.auth?.lease_duration ?? 0);
    // Log in again at 80% of the TTL (a token with no TTL never expires).
    this.#renewAt = ttl > 0 ? Date.now() + ttl * 800 : Number.POSITIVE_INFINITY;
    this.#log?.info("vault AppRole login", { ttl_seconds: ttl });
  }

  /** Turns a node-vault/axios error into a VaultError with a Slack-safe message. */
  #mapError(err: RawVaultError, what: string): VaultError {
    const status = err?.response?.statusCode;
    const where = `Vault (${this.displayAddr})`;
    const reason = status ? this.#secrets.scrub(vaultReason(err)) : "";
    // A plain cause for the log: status and Vault's reason, never the axios config (token, body).
    const cause = new Error(`${what}: ${status ? `HTTP ${status} ${reason}` : (err?.code ?? "no answer")}`);
    const fail = (r: VaultFailure, msg: string) => new VaultError(r, status, msg, { cause });
    if (status === undefined) {
      const code = err?.code ?? "";
      if (code === "ECONNABORTED" || code === "ETIMEDOUT" || /timeout/i.test(err?.message ?? "")) {
        return fail("timeout", `Cannot ${what}: ${where} did not answer within ${this.timeoutMs} ms`);
      }
      return fail(
        "unreachable",
        `Cannot ${what}: ${where} is unreachable${
          code ? ` (${code})` : ""
        }: check VAULT_ADDR and the network`,
      );
    }
    if (status === 503 && /sealed/i.test(reason)) {
      return fail("sealed", `Cannot ${what}: ${where} is sealed: unseal it, then retry`);
    }
    if (status === 403) {
      return fail(
        "permission",
        `Cannot ${what}: ${where} denied permission: check the bot's Vault token or AppRole policy`,
      );
    }
    if (status === 404) return fail("not_found", `Cannot ${what}: it does not exist in Vault`);
    if (status === 400 && /check-and-set/i.test(reason)) {
      return fail(
        "cas_mismatch",
        `Cannot ${what}: someone else wrote a newer version in the meantime (check-and-set refused); nothing was overwritten: look at the secret's history, then plan again`,
      );
    }
    if (status === 500 && /failed to find entry for connection/.test(reason)) {
      return fail("not_found", `Cannot ${what}: ${reason}`);
    }
    if (status < 500) {
      return fail("bad_request", `Cannot ${what}: Vault refused it (HTTP ${status}: ${reason})`);
    }
    return fail("server", `Cannot ${what}: ${where} failed (HTTP ${status}${reason ? `: ${reason}` : ""})`);
  }
}

/**
 * The Vault client of `deps`, or the "not configured" answer every Vault feature gives without one.
 * @throws {NotConfigured}
 */
export function requireVault(deps: { vault?: VaultClient }): VaultClient {
  if (!deps.vault) {
    throw new NotConfigured(
      "Vault is not configured: set VAULT_ADDR and VAULT_TOKEN (or VAULT_ROLE_ID and VAULT_SECRET_ID), then restart the bot",
    );
  }
  return deps.vault;
}
