/**
 * The break-glass CLI's dependencies: the same config, state database, targets, Vault, audit log and
 * approval gate as the bot, built without HTTP or Bolt. Slack is optional here: the CLI exists for when
 * Slack is down. Its client makes one attempt per call with a short timeout; the first failure is reported
 * once ("Slack is unreachable … going on without it") and Slack is not tried again in this run, so nothing
 * ever waits on it.
 *
 * @module
 */

import { WebClient } from "@slack/web-api";
import { loadConfig } from "../core/config.ts";
import { type BotEnv, readEnv } from "../core/env.ts";
import { createLogger, type LogLevel, Secrets } from "../core/log.ts";
import { Metrics } from "../core/metrics.ts";
import { connectState } from "../core/state_db.ts";
import { migrateState } from "../core/migrate.ts";
import { AuditLog } from "../core/audit.ts";
import { Targets } from "../core/targets.ts";
import { GroupCache } from "../core/access.ts";
import type { AppDeps } from "../core/deps.ts";
import { ApprovalGate, type ApprovalNotifier, type RequestView } from "../gate/gate.ts";
import { VaultClient } from "../core/vault.ts";
import { SlackApprovalNotifier } from "../slack/approval_messages.ts";
import { describeError } from "../core/errors.ts";
import "../ops/all.ts";

/** How long one Slack call may take from the CLI before Slack counts as unreachable (ms). */
export const SLACK_TIMEOUT_MS = 3000;

/** Slack as the CLI sees it: tried at most until its first failure, which is reported once. */
export class SlackLink {
  #down?: string;
  constructor(
    readonly configured: boolean,
    private readonly report: (line: string) => void,
  ) {
    if (!configured) this.#down = "SLACK_BOT_TOKEN is not set";
  }

  /** Why Slack is not used, or undefined while it is. */
  get down(): string | undefined {
    return this.#down;
  }

  /** Runs a Slack call unless Slack already failed; the first failure is reported and remembered. */
  async call<T>(what: string, fn: () => Promise<T>): Promise<T> {
    if (this.#down) throw new Error(`Slack not used: ${this.#down}`);
    try {
      return await fn();
    } catch (err) {
      this.#down = describeError(err).slice(0, 200);
      this.report(
        `Slack is unreachable (${what}: ${this.#down}): going on without it. Approval messages are not ` +
          `posted or updated in Slack during this run; approve with \`deno task ops approve <id>\`.`,
      );
      throw err;
    }
  }

  /** Says once, up front, that Slack is not configured. */
  announceIfUnconfigured(): void {
    if (!this.configured) {
      this.report("Slack is not configured (SLACK_BOT_TOKEN): going on without it.");
    }
  }
}

/**
 * The gate's notifier for the CLI: Slack's, through {@link SlackLink}, and it remembers the requests it
 * was asked to post, so the CLI can print the new request's ID and plan even when Slack is down.
 */
export class CliNotifier implements ApprovalNotifier {
  posted: RequestView[] = [];
  constructor(private readonly inner: ApprovalNotifier | undefined, private readonly link: SlackLink) {}

  post(view: RequestView, where: { channel: string; threadTs?: string }) {
    this.posted.push(view);
    if (!this.inner) return Promise.reject(new Error("Slack is not configured"));
    return this.link.call("posting the approval message", () => this.inner!.post(view, where));
  }

  async update(view: RequestView): Promise<void> {
    if (!this.inner || this.link.down) return;
    await this.link.call("updating the approval message", () => this.inner!.update(view)).catch(() => {});
  }

  async announce(view: RequestView, text: string): Promise<void> {
    if (!this.inner || this.link.down) return;
    await this.link.call("announcing in the channel", () => this.inner!.announce(view, text)).catch(() => {});
  }
}

/** What the CLI runs with. */
export interface CliRuntime {
  deps: AppDeps;
  gate: ApprovalGate;
  notifier: CliNotifier;
  slack: SlackLink;
  close(): Promise<void>;
}

/**
 * Builds the CLI's dependencies from `env` (the process environment, or the sandbox's env file).
 * @throws ConfigError or EnvError naming what is missing, or an Error when the state database does not answer
 */
export async function buildCliRuntime(
  envVars: Record<string, string | undefined>,
  opts: { report: (line: string) => void; logLevel?: LogLevel },
): Promise<CliRuntime> {
  const secrets = new Secrets();
  const log = createLogger(secrets, {
    level: opts.logLevel ?? (envVars.LOG_LEVEL as LogLevel | undefined) ?? "error",
  });
  // The CLI needs no signing secret (it receives nothing from Slack) and may run without a bot token.
  const slackConfigured = !!envVars.SLACK_BOT_TOKEN;
  const env: BotEnv = readEnv({
    ...envVars,
    SLACK_BOT_TOKEN: envVars.SLACK_BOT_TOKEN || "xoxb-not-configured",
    SLACK_SIGNING_SECRET: envVars.SLACK_SIGNING_SECRET || "not-used-by-the-cli",
  }, secrets);
  const config = await loadConfig(env.configPath);
  const now = () => new Date();
  const link = new SlackLink(slackConfigured, opts.report);

  const state = connectState(env.databaseUrl, { max: 4 });
  try {
    await migrateState(state, env.databaseMigrationUrl, env.migrations);
  } catch (err) {
    await state.end({ timeout: 1 }).catch(() => {});
    throw new Error(`The state database (DATABASE_URL) does not answer: ${describeError(err)}`, {
      cause: err,
    });
  }

  const client = slackConfigured
    ? new WebClient(env.slackBotToken, {
      slackApiUrl: env.slackApiUrl,
      timeout: SLACK_TIMEOUT_MS,
      retryConfig: { retries: 0 },
      rejectRateLimitedCalls: true,
      logger: undefined,
    })
    : undefined;
  const groups = new GroupCache((usergroup) =>
    link.call("reading a user group", async () => {
      if (!client) throw new Error("Slack is not configured");
      const r = await client.usergroups.users.list({ usergroup });
      return r.users ?? [];
    })
  );

  const vault = VaultClient.fromEnv(env, secrets, log.child({ component: "vault" }));
  const targets = new Targets(
    config,
    secrets,
    vault ? (ref, mount) => vault.readRef(ref, { mount }) : undefined,
    // password_env names are looked up where the CLI's environment came from (an --env-file too).
    (name) => envVars[name],
  );
  const audit = new AuditLog(state, secrets, now, env.signingKeys);
  const deps: AppDeps = {
    config,
    env,
    state,
    targets,
    audit,
    log,
    metrics: new Metrics(),
    secrets,
    groupMembers: (g) => groups.members(g),
    now,
    vault,
    keys: env.signingKeys,
  };
  const notifier = new CliNotifier(client ? new SlackApprovalNotifier(client, secrets) : undefined, link);
  const gate = new ApprovalGate(deps, notifier, { instanceId: `cli-${crypto.randomUUID()}` });
  deps.gate = gate;
  // Long sweep interval: the CLI lives for one command; the bot's replicas do the periodic sweeps.
  await gate.start({ sweepIntervalMs: 3_600_000 });

  return {
    deps,
    gate,
    notifier,
    slack: link,
    close: async () => {
      await gate.stop(5_000).catch(() => {});
      await targets.close();
      await state.end({ timeout: 2 });
    },
  };
}
