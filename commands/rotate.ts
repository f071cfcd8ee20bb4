/**
 * `/bisman rotate <role|all|root> [target]`: asks the approval gate to rotate a role's password (op
 * `rotate`), every mapped role's (`all`), or the Vault database engine's root credential (op `rotate_root`).
 * Arguments are checked against config here, before the gate plans anything.
 *
 * @module
 */

import { z } from "zod";
import { targetArg, validateArgs } from "./args.ts";
import { defineSubcommand } from "./types.ts";
import { registerStatusLine } from "./status.ts";
import { InvalidInput, NotConfigured } from "../core/errors.ts";
import { requireVault } from "../core/vault.ts";
import type { AppDeps } from "../core/deps.ts";
import { ALL_ROLES, resolveRotation } from "../ops/rotate_credentials.ts";
import { resolveTargetName } from "../core/config.ts";
import type { ParsedArgs } from "./args.ts";
import { renderRequestCreated } from "../views/approval.ts";
import { own } from "../core/lookup.ts";

const USAGE = "/bisman rotate <role|all|root> [target]";

/** `<role|all|root> [target]` (built once at load: zod compiles every schema it builds, too dear per request). */
const rotateArgs = z.object({
  // Any text is accepted here so the refusal can list the valid roles; resolveRotation checks it.
  positional: z.tuple([z.string().min(1).max(200)]).or(z.tuple([z.string().min(1).max(200), targetArg])),
  named: z.strictObject({}),
});

/** What the subcommand asks the gate for. */
export type RotateRequest =
  | { action: "rotate"; args: { role: string; target: string } }
  | { action: "rotate_root"; args: { target: string } };

/** Parses and checks `/bisman rotate ...` against config (no I/O). @throws {InvalidInput} {NotConfigured} */
export function parseRotate(args: ParsedArgs, deps: AppDeps): RotateRequest {
  const a = validateArgs(rotateArgs, args, USAGE);
  const [what, targetName] = a.positional;
  requireVault(deps);
  if (what === "root") {
    const target = resolveTargetName(deps.config, targetName);
    if (!target) {
      throw new InvalidInput(
        `Unknown target: configured targets are ${Object.keys(deps.config.targets).join(", ")}`,
      );
    }
    if (!own(deps.config.targets, target)!.vault.database_connection) {
      throw new NotConfigured(
        `Target ${target} names no Vault database connection: set targets.${target}.vault.database_connection`,
      );
    }
    return { action: "rotate_root", args: { target } };
  }
  const { target } = resolveRotation(deps.config, { role: what, target: targetName });
  return { action: "rotate", args: { role: what === ALL_ROLES ? ALL_ROLES : what, target } };
}

export const rotateCommand = defineSubcommand({
  name: "rotate",
  summary:
    "Rotate a database role's password through Vault (or all mapped roles, or Vault's database root credential)",
  usage: USAGE,
  examples: ["/bisman rotate bisman_app", "/bisman rotate all prod", "/bisman rotate root prod"],
  access: "operator",
  destructive: true,
  parse: (args, deps) => parseRotate(args, deps),
  run: (ctx, req) => {
    if (!ctx.deps.gate) throw new NotConfigured("The approval gate is not running in this process");
    return ctx.deps.gate.request({ action: req.action, args: req.args, invoker: ctx.invoker })
      .then(renderRequestCreated);
  },
});

/** Vault's line in `/bisman status`: reachable, sealed, or not configured. */
export async function vaultStatusLine(deps: AppDeps): Promise<string | undefined> {
  if (!deps.vault) return "Vault: not configured (rotation and credential ages are off)";
  const h = await deps.vault.health();
  if (!h.reachable) return `Vault (${deps.vault.displayAddr}): NOT REACHABLE: ${h.error}`;
  if (h.sealed) return `Vault (${deps.vault.displayAddr}): SEALED: unseal it before rotating`;
  return `Vault (${deps.vault.displayAddr}): unsealed${h.version ? `, ${h.version}` : ""}`;
}

registerStatusLine(vaultStatusLine);
