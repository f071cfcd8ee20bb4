/**
 * Connection pools to the managed PostgreSQL servers: one postgres.js pool per target and member
 * (the primary and each replica), created on first use.
 *
 * A target that does not answer is a finding, never a crash: pools connect lazily and every query carries
 * the connection timeout from config.
 *
 * @module
 */

import postgres, { type Sql } from "postgres";
import type { Config, ConnectionConfig } from "./config.ts";
import { NotConfigured, OpsError } from "./errors.ts";
import type { Secrets } from "./log.ts";
import { own } from "./lookup.ts";

/** One server of a target. */
export interface TargetMember {
  target: string;
  /** `primary` or the replica's configured name. */
  name: string;
  role: "primary" | "replica";
  conn: ConnectionConfig;
}

/** Resolves a `vault: path#key` reference in a KV v2 mount; absent when Vault is not configured. */
export type VaultSecretReader = (ref: string, mount?: string) => Promise<string>;

/** The application_name the bot sets on every connection, so the target's own audit can attribute it. */
export const APPLICATION_NAME = "bisman-ops";

/** Options for postgres.js derived from a connection config (without the password). */
export function connectionOptions(
  c: ConnectionConfig,
  password: string | undefined,
): postgres.Options<Record<string, never>> {
  let ssl: postgres.Options<Record<string, never>>["ssl"] = false;
  if (c.sslmode === "require") ssl = "require";
  else if (c.sslmode === "prefer") ssl = "prefer";
  else if (c.sslmode === "verify-full") {
    ssl = { rejectUnauthorized: true, ...(c.ca_file ? { ca: Deno.readTextFileSync(c.ca_file) } : {}) };
  }
  return {
    host: c.host,
    port: c.port,
    database: c.database,
    username: c.user,
    password,
    ssl,
    max: 4,
    idle_timeout: 20,
    connect_timeout: c.connect_timeout_seconds,
    onnotice: () => {},
    connection: { application_name: APPLICATION_NAME },
  };
}

/** Pools for every configured target member. */
export class Targets {
  #pools = new Map<string, Sql>();

  constructor(
    private config: Config,
    private readonly secrets: Secrets,
    private readonly readVault?: VaultSecretReader,
    private readonly env: (name: string) => string | undefined = (n) => Deno.env.get(n),
  ) {}

  /**
   * An environment variable as this process was given its environment (the bot's, or the CLI's `--env-file`):
   * `password_env`-style references of other sources (a search cluster's password) resolve here too.
   */
  variable(name: string): string | undefined {
    return this.env(name);
  }

  /** Names of the configured targets. */
  names(): string[] {
    return Object.keys(this.config.targets);
  }

  /** The primary then every replica of `target`. @throws {NotConfigured} for an unknown target */
  members(target: string): TargetMember[] {
    const t = own(this.config.targets, target);
    if (!t) {
      throw new NotConfigured(
        `Unknown target "${target}": configured targets are ${this.names().join(", ")}`,
      );
    }
    return [
      { target, name: "primary", role: "primary", conn: t.primary },
      ...t.replicas.map((r) => ({ target, name: r.name, role: "replica" as const, conn: r })),
    ];
  }

  /** One member by name (`primary` or a replica name). @throws {NotConfigured} when absent */
  member(target: string, name: string): TargetMember {
    const m = this.members(target).find((x) => x.name === name);
    if (!m) {
      const names = this.members(target).map((x) => x.name).join(", ");
      throw new NotConfigured(`Target ${target} has no member "${name}": it has ${names}`);
    }
    return m;
  }

  /**
   * The password of a connection, from env or Vault, registered as a secret.
   * @param mount the KV v2 mount of a `vault:` reference (the target's `vault.kv_mount`)
   */
  async password(c: ConnectionConfig, mount?: string): Promise<string | undefined> {
    let pw: string | undefined;
    if (c.password_env) {
      pw = this.env(c.password_env);
      if (pw === undefined) {
        throw new NotConfigured(
          `Cannot connect as ${c.user}: environment variable ${c.password_env} is not set`,
        );
      }
    } else if (c.vault) {
      if (!this.readVault) {
        throw new NotConfigured(
          `Cannot connect as ${c.user}: its password is in Vault, and Vault is not configured`,
        );
      }
      pw = await this.readVault(c.vault, mount);
    }
    this.secrets.add(pw);
    return pw;
  }

  /** The pool of one member, created on first use. */
  async pool(target: string, name = "primary"): Promise<Sql> {
    const key = `${target}/${name}`;
    const existing = this.#pools.get(key);
    if (existing) return existing;
    const m = this.member(target, name);
    const pw = await this.password(m.conn, own(this.config.targets, target)?.vault.kv_mount);
    const sql = postgres(connectionOptions(m.conn, pw));
    this.#pools.set(key, sql);
    return sql;
  }

  /** Drops a member's pool (after a failover or a password change of the bot's own login). */
  async reset(target: string, name = "primary"): Promise<void> {
    const key = `${target}/${name}`;
    const sql = this.#pools.get(key);
    this.#pools.delete(key);
    await sql?.end({ timeout: 2 }).catch(() => undefined);
  }

  /**
   * Takes a reloaded config (core/config_reload.ts): every pool whose member's connection settings changed,
   * or whose member is gone, is closed, so the next use connects with the new settings. Others are kept.
   * @returns the pools it reset (`target/member`)
   */
  async applyConfig(next: Config): Promise<string[]> {
    const reset: string[] = [];
    for (const key of [...this.#pools.keys()]) {
      const [target, name] = key.split("/");
      const conn = (c: Config) => {
        const t = own(c.targets, target);
        if (!t) return undefined;
        const m = name === "primary" ? t.primary : t.replicas.find((r) => r.name === name);
        return m ? JSON.stringify({ ...m, name: undefined, kv_mount: t.vault.kv_mount }) : undefined;
      };
      const before = conn(this.config);
      const after = conn(next);
      if (after === undefined || before !== after) reset.push(key);
    }
    this.config = next;
    for (const key of reset) {
      const [target, name] = key.split("/");
      await this.reset(target, name);
    }
    return reset;
  }

  /** Closes every pool. */
  async close(): Promise<void> {
    const all = [...this.#pools.values()];
    this.#pools.clear();
    await Promise.all(all.map((s) => s.end({ timeout: 2 }).catch(() => undefined)));
  }
}

/**
 * Describes a connection failure without echoing anything secret: the member, its host and port, and
 * the driver's error code or a short message.
 */
export function unreachable(m: TargetMember, err: unknown): OpsError {
  const code = (err as { code?: string })?.code;
  const msg = err instanceof Error ? err.message.split("\n")[0].slice(0, 200) : String(err);
  return new OpsError(
    "unreachable",
    `${m.target}/${m.name} (${m.conn.host}:${m.conn.port}) does not answer: ${code ? `${code} ` : ""}${msg}`,
    { cause: err },
  );
}
