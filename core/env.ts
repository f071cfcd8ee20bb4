/**
 * The process environment of the contracts table in DESIGN.md, read once and validated.
 *
 * @module
 */

import type { Secrets } from "./log.ts";
import { IntegrityKeys, KeyError } from "./keys.ts";

/** Settings that come from the environment rather than the config file (secrets and addresses). */
export interface BotEnv {
  slackSigningSecret?: string;
  slackBotToken: string;
  slackAppToken?: string;
  slackApiUrl: string;
  databaseUrl: string;
  databaseMigrationUrl?: string;
  configPath: string;
  vaultAddr?: string;
  vaultToken?: string;
  vaultRoleId?: string;
  vaultSecretId?: string;
  alertsToken?: string;
  port: number;
  failpoint?: string;
  /**
   * `BISMAN_SIGNING_KEY` (and `BISMAN_SIGNING_KEYS_RETIRED`): the key outside the state database that seals
   * approval requests and keys the audit chain. The bot refuses to start without it (bot.ts).
   */
  signingKeys?: IntegrityKeys;
  /**
   * `BISMAN_MIGRATIONS`: `apply` (default: the sandbox, a quick trial) brings the state schema up to date at
   * start-up; `check` (the shipped Deployment, whose runtime role does not own the schema) only checks that
   * it is, and refuses to start naming both revisions when it is not.
   */
  migrations: "apply" | "check";
}

/** Missing or malformed environment; `problems` names each variable. */
export class EnvError extends Error {
  constructor(readonly problems: string[]) {
    super(`Invalid environment:\n${problems.map((p) => `  - ${p}`).join("\n")}`);
    this.name = "EnvError";
  }
}

/**
 * Reads the bot's environment and registers every secret in it with `secrets`.
 * @throws {EnvError} naming each missing or malformed variable
 */
export function readEnv(env: Record<string, string | undefined>, secrets: Secrets): BotEnv {
  const problems: string[] = [];
  const get = (name: string) => {
    const v = env[name];
    return v === undefined || v === "" ? undefined : v;
  };
  const required = (name: string, why: string) => {
    const v = get(name);
    if (!v) problems.push(`${name} is not set: ${why}`);
    return v ?? "";
  };
  const out: BotEnv = {
    slackSigningSecret: get("SLACK_SIGNING_SECRET"),
    slackBotToken: required("SLACK_BOT_TOKEN", "the bot token (xoxb-\u2026) of the Slack app"),
    slackAppToken: get("SLACK_APP_TOKEN"),
    slackApiUrl: get("SLACK_API_URL") ?? "https://slack.com/api/",
    databaseUrl: required(
      "DATABASE_URL",
      "the bot's own state database, e.g. postgres://bisman_ops@db/bisman_ops",
    ),
    databaseMigrationUrl: get("DATABASE_MIGRATION_URL"),
    configPath: required("BISMAN_CONFIG", "the path of the YAML config, e.g. bisman.example.yaml"),
    vaultAddr: get("VAULT_ADDR"),
    vaultToken: get("VAULT_TOKEN"),
    vaultRoleId: get("VAULT_ROLE_ID"),
    vaultSecretId: get("VAULT_SECRET_ID"),
    alertsToken: get("ALERTS_TOKEN"),
    port: 3000,
    failpoint: get("BISMAN_FAILPOINT"),
    migrations: "apply",
  };
  try {
    out.signingKeys = IntegrityKeys.fromEnv(env);
  } catch (err) {
    problems.push(err instanceof KeyError ? err.message : String(err));
  }
  for (const name of ["BISMAN_SIGNING_KEY", "BISMAN_SIGNING_KEYS_RETIRED"]) {
    for (const part of (get(name) ?? "").split(",")) secrets.add(part.trim() || undefined);
  }
  const migrations = get("BISMAN_MIGRATIONS");
  if (migrations === "check" || migrations === "apply") out.migrations = migrations;
  else if (migrations !== undefined) {
    problems.push(`BISMAN_MIGRATIONS must be "apply" or "check", got "${migrations}"`);
  }
  if (!out.slackAppToken && !out.slackSigningSecret) {
    problems.push(
      "SLACK_SIGNING_SECRET is not set: it is required unless SLACK_APP_TOKEN selects Socket Mode",
    );
  }
  const port = get("PORT");
  if (port !== undefined) {
    const n = Number(port);
    if (!Number.isInteger(n) || n < 0 || n > 65535) {
      problems.push(`PORT must be a port number, got "${port}"`);
    } else out.port = n;
  }
  // Alertmanager sends it as `Authorization: Bearer <token>`, which carries only RFC 6750's token characters
  // (and /alerts refuses a header with others): any other character would make every delivery a 401.
  if (out.alertsToken && !/^[A-Za-z0-9._~+/-]+=*$/.test(out.alertsToken)) {
    problems.push(
      "ALERTS_TOKEN may hold only letters, digits and - . _ ~ + / (then = padding): RFC 6750's token",
    );
  }
  if (!out.slackApiUrl.endsWith("/")) out.slackApiUrl += "/";
  if (out.vaultRoleId && !out.vaultSecretId) problems.push("VAULT_SECRET_ID must be set with VAULT_ROLE_ID");
  for (
    const s of [
      out.slackSigningSecret,
      out.slackBotToken,
      out.slackAppToken,
      out.vaultToken,
      out.vaultSecretId,
      out.alertsToken,
    ]
  ) secrets.add(s);
  for (const url of [out.databaseUrl, out.databaseMigrationUrl]) secrets.add(passwordInUrl(url));
  if (problems.length) throw new EnvError(problems);
  return out;
}

/** The password part of a postgres:// URL, so it can be scrubbed from logs. */
export function passwordInUrl(url: string | undefined): string | undefined {
  if (!url) return undefined;
  try {
    const p = new URL(url).password;
    return p ? decodeURIComponent(p) : undefined;
  } catch {
    return undefined;
  }
}
