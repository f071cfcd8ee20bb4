/**
 * Operation dependencies for tests that call ops/ directly (no bot): the test cluster as target `main`, a
 * state database (with the bot's migrations when asked), a logger that collects lines, and the real audit log.
 */

import type { Config } from "../../core/config.ts";
import { createLogger, Secrets } from "../../core/log.ts";
import { Targets } from "../../core/targets.ts";
import { AuditLog } from "../../core/audit.ts";
import { connectState } from "../../core/state_db.ts";
import { migrate } from "../../core/migrate.ts";
import type { OpDeps } from "../../ops/types.ts";
import type { TestCluster } from "../../standins/cluster.ts";
import { TEST_SIGNING_KEY, testConfig } from "./bot.ts";
import { IntegrityKeys } from "../../core/keys.ts";

/** OpDeps plus what the test must close. */
export interface TestOpDeps extends OpDeps {
  logs: string[];
  close(): Promise<void>;
}

/** Builds OpDeps against `cluster` (config from {@link testConfig} unless given). */
export async function testOpDeps(
  cluster: TestCluster,
  opts: { config?: Config; now?: () => Date; migrate?: boolean } = {},
): Promise<TestOpDeps> {
  const secrets = new Secrets();
  const logs: string[] = [];
  const log = createLogger(secrets, { sink: (l) => logs.push(l), level: "debug" });
  const config = opts.config ?? testConfig(cluster);
  const state = connectState(cluster.primary.url({ database: await cluster.createDatabase("opstate") }), {
    max: 4,
  });
  // Only ops that write the audit log need the bot's schema.
  if (opts.migrate) await migrate(state);
  const now = opts.now ?? (() => new Date());
  const targets = new Targets(config, secrets);
  return {
    config,
    targets,
    log,
    now,
    secrets,
    state,
    audit: new AuditLog(state, secrets, now, IntegrityKeys.fromEnv({ BISMAN_SIGNING_KEY: TEST_SIGNING_KEY })),
    logs,
    close: async () => {
      await targets.close();
      await state.end({ timeout: 2 });
    },
  };
}
