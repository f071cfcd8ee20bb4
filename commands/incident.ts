/**
 * Incident actions, each through the approval gate (the plan shows exactly what will happen):
 *
 * - `/bisman lock-role <role> [target]`: ALTER ROLE ... NOLOGIN and terminate its sessions (ops/lock_role.ts)
 * - `/bisman unlock-role <role> [target]`: ALTER ROLE ... LOGIN (ops/unlock_role.ts)
 * - `/bisman terminate <address> [target]`: terminate the sessions of a client address (ops/terminate_client.ts)
 * - `/bisman block <address> [target]`: reject the address in pg_hba.conf, or hand a person the pg_hba.conf
 *   line and the Kong deny entry (ops/block_address.ts)
 * - `/bisman unblock <address> [target]` (ops/unblock_address.ts)
 *
 * Every one is recorded in the target's security_events.
 *
 * @module
 */

import { z } from "zod";
import { resolveTarget, targetArg, validateArgs } from "./args.ts";
import { defineSubcommand, type Subcommand } from "./types.ts";
import { clientAddress, roleName } from "../ops/_security.ts";
import { requestApproval } from "./security.ts";

const bool = z.enum(["true", "false"]).transform((v) => v === "true");

function roleCommand(name: string, action: string, summary: string): Subcommand<any> {
  const usage = `/bisman ${name} <role> [target]${action === "lock_role" ? " [terminate=false]" : ""}`;
  const schema = z.object({
    positional: z.tuple([roleName]).or(z.tuple([roleName, targetArg])),
    named: action === "lock_role" ? z.strictObject({ terminate: bool.optional() }) : z.strictObject({}),
    rest: z.string(),
  });
  return defineSubcommand({
    name,
    summary,
    usage,
    examples: [`/bisman ${name} mallory`, `/bisman ${name} svc_payments prod`],
    access: "operator",
    destructive: true,
    parse: (args, deps) => {
      const a = validateArgs(schema, args, usage);
      return { role: a.positional[0], target: resolveTarget(deps.config, a.positional[1]), ...a.named };
    },
    run: (ctx, args) => requestApproval(ctx.deps, { action, args, invoker: ctx.invoker }),
  });
}

function addressCommand(
  name: string,
  action: string,
  summary: string,
  withTerminate: boolean,
): Subcommand<any> {
  const usage = `/bisman ${name} <address> [target]${withTerminate ? " [terminate=false]" : ""}`;
  const schema = z.object({
    positional: z.tuple([clientAddress]).or(z.tuple([clientAddress, targetArg])),
    named: withTerminate ? z.strictObject({ terminate: bool.optional() }) : z.strictObject({}),
    rest: z.string(),
  });
  return defineSubcommand({
    name,
    summary,
    usage,
    examples: [`/bisman ${name} 203.0.113.7`, `/bisman ${name} 10.0.9.0/24 prod`],
    access: "operator",
    destructive: true,
    parse: (args, deps) => {
      const a = validateArgs(schema, args, usage);
      return { address: a.positional[0], target: resolveTarget(deps.config, a.positional[1]), ...a.named };
    },
    run: (ctx, args) => requestApproval(ctx.deps, { action, args, invoker: ctx.invoker }),
  });
}

export const lockRoleCommand = roleCommand(
  "lock-role",
  "lock_role",
  "Lock a role: ALTER ROLE \u2026 NOLOGIN and terminate its sessions",
);
export const unlockRoleCommand = roleCommand(
  "unlock-role",
  "unlock_role",
  "Undo lock-role: ALTER ROLE \u2026 LOGIN",
);
export const terminateCommand = addressCommand(
  "terminate",
  "terminate_client",
  "Terminate every session coming from a client address or network",
  false,
);
export const blockCommand = addressCommand(
  "block",
  "block_address",
  "Block a client address: a reject line in pg_hba.conf (or the line and a Kong deny entry for a person)",
  true,
);
export const unblockCommand = addressCommand(
  "unblock",
  "unblock_address",
  "Undo block: remove the bot's reject line for the address",
  false,
);
