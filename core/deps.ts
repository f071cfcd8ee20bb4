/**
 * The dependencies every entry point and operation receives, as one object: no singletons, so tests and
 * the CLI build their own.
 *
 * @module
 */

import type { Sql } from "postgres";
import type { Config } from "./config.ts";
import type { BotEnv } from "./env.ts";
import type { Logger, Secrets } from "./log.ts";
import type { Metrics } from "./metrics.ts";
import type { AuditLog } from "./audit.ts";
import type { Targets } from "./targets.ts";
import type { Invoker } from "./access.ts";
import type { Reply } from "./reply.ts";
import type { JobService } from "../jobs/types.ts";
import type { VaultClient } from "./vault.ts";

/** Looks up the members of a Slack user group (`usergroups.users.list`); absent when Slack is not reachable. */
export type GroupMembers = (groupId: string) => Promise<string[]>;

/** A request for a destructive operation, as an entry point hands it to the approval gate. */
export interface GateRequest {
  /** The operation's name (ops/registry.ts). */
  action: string;
  /** Arguments, validated again by the operation's zod schema. */
  args: unknown;
  invoker: Invoker;
  /** Post the approval message as a reply in this thread (alert threads) instead of the ops channel. */
  thread?: { channel: string; ts: string };
}

/** The approval gate as entry points see it: plan, persist, post for approval, and answer the asker. */
export interface Gate {
  request(req: GateRequest): Promise<Reply>;
}

/** Shared services of one bot process. */
export interface AppDeps {
  config: Config;
  env: BotEnv;
  state: Sql;
  targets: Targets;
  audit: AuditLog;
  log: Logger;
  metrics: Metrics;
  secrets: Secrets;
  groupMembers: GroupMembers;
  now: () => Date;
  /** Absent only in processes that cannot run destructive work (set by bot.ts once the gate exists). */
  gate?: Gate;
  /** The scheduler (jobs/scheduler.ts): schedules, last runs, manual runs; absent where no jobs run. */
  jobs?: JobService;
  /** The Vault client; absent when `VAULT_ADDR` is not set (Vault features answer "not configured"). */
  vault?: VaultClient;
}
