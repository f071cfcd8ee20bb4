/**
 * Shared set-up for the rotation tests: rotatable roles created on the test cluster with their passwords
 * stored in the Vault stand-in, and a login probe that says whether a password works.
 */

import postgres from "postgres";
import type { TestCluster } from "../../standins/cluster.ts";
import type { VaultStandIn } from "../../standins/vault.ts";

/** Logs in as `role` with `password` (on the primary unless `port` is given): true, or the SQLSTATE of the refusal. */
export async function login(
  cluster: TestCluster,
  role: string,
  password: string,
  port = cluster.primary.port,
): Promise<true | string> {
  const sql = postgres({
    host: "127.0.0.1",
    port,
    database: "postgres",
    username: role,
    password,
    max: 1,
    onnotice: () => {},
  });
  try {
    await sql`select 1`;
    return true;
  } catch (e) {
    return (e as { code?: string }).code ?? String(e);
  } finally {
    await sql.end({ timeout: 2 });
  }
}

/** A rotatable role: the Vault KV key that holds its password, and that password before any rotation. */
export interface RotatableRole {
  key: string;
  password: string;
}

/**
 * Creates `roles` with their passwords, puts those passwords in Vault at `path` (plus `extra` keys that a
 * rotation must leave alone), and returns the `targets.main.roles` config that maps them.
 */
export async function seedRotatableRoles(
  cluster: TestCluster,
  vault: VaultStandIn,
  path: string,
  roles: Record<string, RotatableRole>,
  extra: Record<string, string> = {},
): Promise<Record<string, { path: string; key: string }>> {
  const sql = cluster.primary.sql();
  for (const [role, r] of Object.entries(roles)) {
    await sql`create role ${sql(role)} login password ${sql.unsafe(`'${r.password}'`)}`.simple();
  }
  vault.kvPut(path, {
    ...Object.fromEntries(Object.values(roles).map((r) => [r.key, r.password])),
    ...extra,
  });
  return Object.fromEntries(Object.entries(roles).map(([role, r]) => [role, { path, key: r.key }]));
}
