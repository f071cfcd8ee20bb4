/**
 * `/bisman lag [target]`: replication lag of every replica, in bytes and seconds, from the primary's
 * pg_stat_replication and from each replica itself (ops/replication_lag.ts).
 *
 * @module
 */

import { optionalTargetOnly, validateArgs } from "./args.ts";
import { defineSubcommand } from "./types.ts";
import { readReplicationLag } from "../ops/replication_lag.ts";
import { renderLag } from "../views/lag.ts";
import { InvalidInput } from "../core/errors.ts";
import type { Config } from "../core/config.ts";
import { own } from "../core/lookup.ts";

const USAGE = "/bisman lag [target]";

/** The targets a `[target]` argument means: the named one, or every configured target. */
export function targetsOrAll(config: Config, named: string | undefined): string[] {
  if (!named) return Object.keys(config.targets);
  if (!own(config.targets, named)) {
    throw new InvalidInput(
      `Unknown target "${named}": configured targets are ${Object.keys(config.targets).join(", ")}`,
    );
  }
  return [named];
}

export const lagCommand = defineSubcommand({
  name: "lag",
  summary: "Replication lag of every replica in bytes and seconds, judged against the thresholds",
  usage: USAGE,
  examples: ["/bisman lag", "/bisman lag prod"],
  access: "anyone",
  parse: (args, deps) => ({
    targets: targetsOrAll(deps.config, validateArgs(optionalTargetOnly, args, USAGE).positional[0]),
  }),
  run: async (ctx, args) =>
    renderLag(await Promise.all(args.targets.map((t) => readReplicationLag(t, ctx.deps)))),
});
