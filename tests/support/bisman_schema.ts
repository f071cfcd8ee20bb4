/**
 * A BISMAN target database for tests, benchmarks and the sandbox: the sample schema, the seed's audit
 * trigger and roles, the bot's role, and generated rows, on a throwaway cluster.
 *
 * ```ts
 * await using cluster = await startCluster({ preload: ["pgaudit", "pg_stat_statements"] });
 * const { db, sql } = await createBismanDatabase(cluster, { rows: { clients: 100, audit_rows: 50_000 } });
 * const app = await connectAs(cluster, db, "bisman_app"); // sets a password for the role first
 * ```
 */

import postgres from "postgres";
import net from "node:net";
import type { TestCluster } from "../../standins/cluster.ts";
import { applyTargetSql, type ApplyTargetSqlOptions, type SampleRows } from "../../ops/_target_sql.ts";

export { applyTargetSql };
export type { ApplyTargetSqlOptions, SampleRows };

/** Passwords tests give the seed's roles (scram-sha-256 over TCP needs one). Not secrets: throwaway clusters. */
export const TEST_PASSWORDS: Record<string, string> = {
  bisman_readonly: "readonly-test-pw",
  bisman_app: "app-test-pw",
  bisman_admin: "admin-test-pw",
  svc_payments: "svc-payments-test-pw",
  bisman_ops: "bisman-ops-test-pw",
};

/**
 * Creates a database on `cluster` and applies the target SQL with the sample schema (and `rows`, when
 * given). Roles are cluster-wide: a second database on the same cluster reuses them.
 */
export async function createBismanDatabase(
  cluster: TestCluster,
  opts: { prefix?: string; rows?: Partial<SampleRows>; apply?: ApplyTargetSqlOptions } = {},
): Promise<{ db: string; sql: postgres.Sql }> {
  const db = await cluster.createDatabase(opts.prefix ?? "bisman");
  const sql = cluster.primary.sql(db);
  await applyTargetSql(sql, { sample: true, rows: opts.rows, ...opts.apply });
  return { db, sql };
}

/** Sets the test password of `role` (from {@link TEST_PASSWORDS}, or `password`). */
export async function setTestPassword(
  cluster: TestCluster,
  role: string,
  password?: string,
): Promise<string> {
  const pw = password ?? TEST_PASSWORDS[role] ?? `${role}-test-pw`;
  if (!/^[a-z_][a-z0-9_]{0,62}$/.test(role)) throw new Error(`Not a plain role name: ${role}`);
  await cluster.primary.psql(`alter role "${role}" password '${pw.replaceAll("'", "''")}'`);
  return pw;
}

/**
 * A postgres.js client logged in as `role` over TCP with its test password. With `localAddress`, the
 * socket binds that address first, so the server really sees the client arrive from it (connecting to
 * 127.0.0.2 alone still arrives from 127.0.0.1).
 */
export async function connectAs(
  cluster: TestCluster,
  database: string,
  role: string,
  opts: { localAddress?: string; host?: string; password?: string; max?: number; setPassword?: boolean } = {},
): Promise<postgres.Sql> {
  const password = opts.setPassword === false && opts.password
    ? opts.password
    : await setTestPassword(cluster, role, opts.password);
  const host = opts.host ?? opts.localAddress ?? cluster.primary.host;
  const port = cluster.primary.port;
  return postgres({
    host,
    port,
    database,
    username: role,
    password,
    max: opts.max ?? 1,
    connect_timeout: 5,
    onnotice: () => {},
    ...(opts.localAddress ? { socket: () => connectFrom(opts.localAddress!, host, port) } : {}),
  });
}

/** A TCP socket to `host:port` whose local end is bound to `localAddress`. */
export function connectFrom(localAddress: string, host: string, port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host, port, localAddress });
    socket.once("connect", () => {
      socket.removeListener("error", reject);
      resolve(socket);
    });
    socket.once("error", reject);
  });
}
