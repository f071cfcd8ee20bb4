/**
 * `/bisman status [target]`: does each server answer, what version, primary or standby.
 *
 * @module
 */

import { optionalTargetOnly, validateArgs } from "./args.ts";
import { defineSubcommand } from "./types.ts";
import { readServerStatus } from "../ops/server_status.ts";
import { renderStatus } from "../views/status.ts";
import { InvalidInput } from "../core/errors.ts";
import { own } from "../core/lookup.ts";

export const statusCommand = defineSubcommand({
  name: "status",
  summary: "Whether each server of each target answers, its version, and primary or standby",
  usage: "/bisman status [target]",
  examples: ["/bisman status", "/bisman status prod"],
  access: "anyone",
  parse: (args, deps) => {
    const a = validateArgs(optionalTargetOnly, args, "/bisman status [target]");
    const t = a.positional[0];
    if (t && !own(deps.config.targets, t)) {
      throw new InvalidInput(
        `Unknown target "${t}": configured targets are ${Object.keys(deps.config.targets).join(", ")}`,
      );
    }
    return { targets: t ? [t] : Object.keys(deps.config.targets) };
  },
  run: async (ctx, args) => {
    const statuses = await readServerStatus(args.targets, ctx.deps);
    return renderStatus(statuses, await statusExtras(ctx.deps));
  },
});

/** Lines that other subsystems add to the status message (freeze, Vault); filled in as they land. */
export const statusExtraProviders:
  ((deps: import("../core/deps.ts").AppDeps) => Promise<string | undefined>)[] = [];

/**
 * Adds a line provider to `/bisman status` (shown above the targets; undefined shows nothing). Feature
 * modules call it when they load, e.g. commands/freeze.ts for the freeze.
 */
export function registerStatusLine(
  provider: (deps: import("../core/deps.ts").AppDeps) => Promise<string | undefined>,
): void {
  statusExtraProviders.push(provider);
}

async function statusExtras(deps: import("../core/deps.ts").AppDeps): Promise<string[]> {
  const lines = await Promise.all(statusExtraProviders.map((p) => p(deps).catch(() => undefined)));
  return lines.filter((l): l is string => !!l);
}
