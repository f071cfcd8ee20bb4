/**
 * Shared set-up for the rotation tests: rotatable roles created on the test cluster with their passwords
 * stored in the Vault stand-in, and a login probe that says whether a password works.
 */

import postgres from "postgres";
import type { TestCluster } from "../../standins/cluster.ts";
import { VaultStandIn } from "../../standins/vault.ts";
import { startTestBot, type TestBot, testConfig } from "./bot.ts";
import { applyTargetSql } from "./bisman_schema.ts";

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

/** The passwords of {@link startTwoRoleBot}'s roles before any rotation. */
export const TWO_ROLE_PASSWORDS = {
  bisman_app: "old-app-pw-123456",
  bisman_readonly: "old-ro-pw-123456",
} as const;

/**
 * A bot whose target holds the seed's audit tables and roles, with `bisman_app` and `bisman_readonly`
 * logging in with {@link TWO_ROLE_PASSWORDS}, mapped to one Vault secret (`bisman/db`: `app_password`,
 * `readonly_password`) that holds the same passwords. `stop()` stops the bot and Vault.
 */
export async function startTwoRoleBot(
  cluster: TestCluster,
): Promise<{ tb: TestBot; vault: VaultStandIn; stop(): Promise<void> }> {
  const sql = cluster.primary.sql();
  await applyTargetSql(sql, { parts: ["audit", "roles"] });
  const vault = await VaultStandIn.start();
  const pw = TWO_ROLE_PASSWORDS;
  await sql`alter role bisman_app login password ${sql.unsafe(`'${pw.bisman_app}'`)}`.simple();
  await sql`alter role bisman_readonly login password ${sql.unsafe(`'${pw.bisman_readonly}'`)}`.simple();
  vault.kvPut("bisman/db", { app_password: pw.bisman_app, readonly_password: pw.bisman_readonly });
  const config = testConfig(cluster, (doc) => {
    doc.targets.main.roles = {
      bisman_app: { path: "bisman/db", key: "app_password" },
      bisman_readonly: { path: "bisman/db", key: "readonly_password" },
    };
  });
  try {
    const tb = await startTestBot(cluster, {
      config,
      env: { VAULT_ADDR: vault.addr, VAULT_TOKEN: vault.rootToken },
    });
    return {
      tb,
      vault,
      stop: async () => {
        await tb.stop();
        await vault.stop();
      },
    };
  } catch (err) {
    await vault.stop();
    throw err;
  }
}
