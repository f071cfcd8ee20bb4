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

/** Looks up the members of a Slack user group (`usergroups.users.list`); absent when Slack is not reachable. */
export type GroupMembers = (groupId: string) => Promise<string[]>;

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
}
