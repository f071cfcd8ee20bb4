/**
 * The sandbox's Slack and Vault: the stand-ins (standins/) the tests also use, started with the sandbox's people
 * and with the role passwords of the sample database in Vault's KV store, as the seed keeps them
 * (`secret/bisman/db`: readonly_password, app_password, admin_password).
 *
 * Vault's memory does not survive a restart, so every start writes fresh passwords to Vault and sets them
 * on the roles: the state a newcomer sees is always consistent, and nothing secret is kept on disk.
 *
 * @module
 */

import { SlackStandIn } from "../standins/slack.ts";
import { generatePassword, VaultStandIn } from "../standins/vault.ts";
import type { PersistentCluster } from "../standins/cluster.ts";
import type { SandboxUser } from "./console.ts";
import { BOT_ROLE, SAMPLE_DB } from "./seed.ts";

export const TEAM_ID = "T0TEST";
export const OPS_CHANNEL = { id: "C0OPS", name: "ops" };

/** The people of the sandbox: a requester, two approvers and an outsider. */
export const SANDBOX_USERS: SandboxUser[] = [
  { id: "U0ALICE", name: "alice", role: "requester · operator", color: "#2e7d32" },
  { id: "U0BOB", name: "bob", role: "approver · operator", color: "#1565c0" },
  { id: "U0CAROL", name: "carol", role: "approver", color: "#6a1b9a" },
  { id: "U0DAVE", name: "dave", role: "outsider: in no list", color: "#8d6e63" },
];

/** The KV v2 path and keys of the rotatable roles, as in bisman.example.yaml. */
export const ROLE_SECRETS: Record<string, { path: string; key: string }> = {
  bisman_readonly: { path: "bisman/db", key: "readonly_password" },
  bisman_app: { path: "bisman/db", key: "app_password" },
  bisman_admin: { path: "bisman/db", key: "admin_password" },
  svc_payments: { path: "bisman/db", key: "svc_payments_password" },
};
/** Vault's database-engine connection for `rotate-root` and the role it manages. */
export const VAULT_DB_CONNECTION = "bisman";
export const VAULT_ROOT_ROLE = "bisman_vault";

/** How old the first version of the role passwords looks, so credential ages have something to say. */
const PASSWORD_AGE_DAYS = 80;

export async function startSlack(): Promise<SlackStandIn> {
  return await SlackStandIn.start({
    teamId: TEAM_ID,
    users: Object.fromEntries(SANDBOX_USERS.map((u) => [u.id, { name: u.name }])),
    channels: { [OPS_CHANNEL.id]: { name: OPS_CHANNEL.name } },
  });
}

/** Quotes a generated password (letters, digits and '-') as an SQL literal. */
function literal(pw: string): string {
  if (!/^[A-Za-z0-9-]+$/.test(pw)) throw new Error("unexpected character in a generated password");
  return `'${pw}'`;
}

/**
 * Starts Vault with the role passwords, sets them on the roles, and creates the database-engine
 * connection's own role for `rotate-root`. Returns Vault and the bot role's password (for its config).
 */
export async function startVault(
  cluster: PersistentCluster,
  now = new Date(),
): Promise<{ vault: VaultStandIn; botPassword: string }> {
  const vault = await VaultStandIn.start({ rootToken: `hvs.sandbox-${crypto.randomUUID()}` });
  const byPath = new Map<string, Record<string, string>>();
  const statements: string[] = [];
  for (const [role, ref] of Object.entries(ROLE_SECRETS)) {
    const pw = generatePassword();
    byPath.set(ref.path, { ...byPath.get(ref.path), [ref.key]: pw });
    statements.push(`alter role ${role} password ${literal(pw)};`);
  }
  for (const [path, data] of byPath) {
    const version = vault.kvPut(path, data);
    vault.setCreatedTime(
      path,
      version,
      new Date(now.getTime() - PASSWORD_AGE_DAYS * 86_400_000).toISOString(),
    );
  }
  const botPassword = generatePassword();
  const rootPassword = generatePassword();
  statements.push(
    `alter role ${BOT_ROLE} password ${literal(botPassword)};`,
    `do $$ begin
       if not exists (select 1 from pg_roles where rolname = '${VAULT_ROOT_ROLE}') then
         create role ${VAULT_ROOT_ROLE} login createrole;
       end if;
     end $$;`,
    `alter role ${VAULT_ROOT_ROLE} password ${literal(rootPassword)};`,
  );
  await cluster.primary.psql(statements.join("\n"), SAMPLE_DB);
  vault.configureDatabase(VAULT_DB_CONNECTION, {
    connectionUrl: cluster.primary.url({ database: SAMPLE_DB }),
    username: VAULT_ROOT_ROLE,
    password: rootPassword,
  });
  return { vault, botPassword };
}
