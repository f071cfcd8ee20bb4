/**
 * `/bisman creds [target]`: read-only; each rotatable role, its Vault key, the age of its current password
 * from Vault's version history, and whether it is past `credential_max_age_days`.
 *
 * @module
 */

import { optionalTargetOnly, validateArgs } from "./args.ts";
import { defineSubcommand } from "./types.ts";
import { InvalidInput } from "../core/errors.ts";
import { requireVault } from "../core/vault.ts";
import { resolveTargetName } from "../core/config.ts";
import { readCredentialAges } from "../ops/credential_ages.ts";
import { renderCredentialAges } from "../views/rotate.ts";

export const credsCommand = defineSubcommand({
  name: "creds",
  summary:
    "Each rotatable role's Vault key and the age of its password, against the maximum age (90 days by default)",
  usage: "/bisman creds [target]",
  examples: ["/bisman creds", "/bisman creds prod"],
  access: "operator",
  parse: (args, deps) => {
    const a = validateArgs(optionalTargetOnly, args, "/bisman creds [target]");
    requireVault(deps);
    const target = resolveTargetName(deps.config, a.positional[0]);
    if (!target) {
      throw new InvalidInput(
        `Name a target: configured targets are ${Object.keys(deps.config.targets).join(", ")}`,
      );
    }
    return { target };
  },
  run: async (ctx, { target }) => renderCredentialAges(target, await readCredentialAges(target, ctx.deps)),
});
