/**
 * `rotate_root`: `vault write database/rotate-root/<connection>` for a target's configured Vault database
 * connection (the seed's `vault write database/rotate-root/bisman`). Vault changes the password of the user
 * it connects to PostgreSQL as and keeps the new one to itself: afterwards nobody else knows it.
 *
 * @module
 */

import { z } from "zod";
import { resolveTargetName } from "../core/config.ts";
import { InvalidInput, NotConfigured } from "../core/errors.ts";
import { requireVault } from "../core/vault.ts";
import type { OpDeps, Operation, PlanBase, Reconciled } from "./types.ts";
import { own } from "../core/lookup.ts";

/** Arguments: an optional target (else the default one). */
export const rotateRootArgs = z.strictObject({
  target: z.string().regex(/^[a-z_][a-z0-9_]{0,62}$/, "a target name").optional(),
});
export type RotateRootArgs = z.infer<typeof rotateRootArgs>;

/** The plan: which Vault database connection. */
export interface RotateRootPlan extends PlanBase {
  target: string;
  connection: string;
  verify: string[];
  fingerprint: { connection: string; vault: string };
}

/** The result: the connection rotated and when Vault confirmed it. */
export interface RotateRootResult {
  target: string;
  connection: string;
  rotatedAt: string;
}

function connectionOf(args: RotateRootArgs, deps: OpDeps): { target: string; connection: string } {
  const target = resolveTargetName(deps.config, args.target);
  if (!target) {
    throw new InvalidInput(
      `Unknown target: configured targets are ${Object.keys(deps.config.targets).join(", ")}`,
    );
  }
  const connection = own(deps.config.targets, target)!.vault.database_connection;
  if (!connection) {
    throw new NotConfigured(
      `Target ${target} names no Vault database connection: set targets.${target}.vault.database_connection`,
    );
  }
  return { target, connection };
}

async function plan(args: RotateRootArgs, deps: OpDeps): Promise<RotateRootPlan> {
  const { target, connection } = connectionOf(args, deps);
  const vault = requireVault(deps);
  const h = await vault.health();
  const warnings = [
    `Afterwards only Vault knows the password of connection ${connection}'s user: anything else that logs in as that user with the old password stops working`,
  ];
  if (!h.reachable) warnings.push(`Vault does not answer right now (${h.error})`);
  else if (h.sealed) warnings.push("Vault is sealed right now: the rotation will fail until it is unsealed");
  return {
    summary: `Rotate the root credential of Vault's database connection ${connection} (target ${target})`,
    target,
    connection,
    steps: [
      `POST database/rotate-root/${connection} to Vault (${vault.displayAddr}): Vault sets a new password for the connection's user on PostgreSQL and keeps it`,
      "Vault answers 204 when the new password is in force",
    ],
    verify: ["Vault answered 204; the old password of the connection's user no longer logs in"],
    warnings,
    fingerprint: { connection, vault: vault.displayAddr },
  };
}

async function revalidate(p: RotateRootPlan, deps: OpDeps): Promise<string | undefined> {
  const now = own(deps.config.targets, p.target)?.vault.database_connection;
  if (now !== p.connection) return `targets.${p.target}.vault.database_connection is now ${now ?? "unset"}`;
  const h = await requireVault(deps).health();
  if (!h.reachable) return `Vault does not answer (${h.error})`;
  if (h.sealed) return "Vault is sealed";
  return undefined;
}

async function run(p: RotateRootPlan, deps: OpDeps): Promise<RotateRootResult> {
  await requireVault(deps).rotateRoot(p.connection);
  return { target: p.target, connection: p.connection, rotatedAt: deps.now().toISOString() };
}

/**
 * rotate-root is one call that Vault applies atomically and keeps consistent itself: the password Vault
 * holds is the one in force whether or not the call landed. What cannot be read back is whether it landed,
 * so a person decides whether to request it again (rotating twice is harmless).
 */
function reconcile(p: RotateRootPlan, _deps: OpDeps): Promise<Reconciled<RotateRootResult>> {
  return Promise.resolve({
    status: "needs_human",
    note:
      `Vault keeps connection ${p.connection}'s password consistent itself, but whether this rotate-root landed ` +
      `cannot be read back: request /bisman rotate root ${p.target} again if it must be certain`,
  });
}

/** The `rotate_root` operation (destructive: reached only through the approval gate). */
export const rotateRoot: Operation<RotateRootArgs, RotateRootPlan, RotateRootResult> = {
  name: "rotate_root",
  destructive: true,
  args: rotateRootArgs,
  plan,
  revalidate,
  run,
  reconcile,
  describeResult: (r) =>
    `Vault rotated the root credential of connection ${r.connection}; only Vault knows it now`,
};
