/**
 * `rotate_root`: `vault write database/rotate-root/<connection>` for a target's configured Vault database
 * connection (the seed's `vault write database/rotate-root/bisman`). Vault changes the password of the user
 * it connects to PostgreSQL as and keeps the new one to itself: afterwards nobody else knows it.
 *
 * What can be checked afterwards, when only Vault knows the new password: that Vault's connection works with
 * it. With `targets.<t>.vault.verify_role` set, the run reads `database/creds/<role>` (Vault must log in with
 * the new root credential to create that user), logs in as the issued user on the target's primary, and
 * revokes the lease (Vault drops the user, again over the new credential). Without it, the result says this
 * was not checked. That the OLD password is refused cannot be checked by anyone but Vault: the bot never knew
 * it. The plan promises exactly these checks and no more.
 *
 * @module
 */

import { z } from "zod";
import { resolveTargetName } from "../core/config.ts";
import { InvalidInput, NotConfigured } from "../core/errors.ts";
import { requireVault } from "../core/vault.ts";
import type { OpDeps, Operation, PlanBase, Reconciled } from "./types.ts";
import { OpsError, StepFailed } from "../core/errors.ts";
import { tryLogin } from "./_role_login.ts";
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
  /** The Vault database role whose credentials prove the new root credential works (verify_role). */
  verifyRole?: string;
  verify: string[];
  fingerprint: { connection: string; vault: string };
}

/** The result: the connection rotated and when Vault confirmed it. */
export interface RotateRootResult {
  target: string;
  connection: string;
  rotatedAt: string;
  /** Whether Vault's connection was shown to work with the new credential, in words. */
  verification: { status: "verified" | "not_checked"; words: string };
}

/** What the run never checks, and why (shown on the plan and in the result). */
const OLD_NOT_CHECKED = "the old root password is refused: not checked, only Vault ever knew it";

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
  const verifyRole = deps.config.targets[target].vault.verify_role;
  return {
    summary: `Rotate the root credential of Vault's database connection ${connection} (target ${target})`,
    target,
    connection,
    ...(verifyRole ? { verifyRole } : {}),
    steps: [
      `POST database/rotate-root/${connection} to Vault (${vault.displayAddr}): Vault logs in with the old root credential, sets a new password for the connection's user on PostgreSQL and keeps it`,
      "Vault answers 204 when the new password is in force",
      ...(verifyRole
        ? [
          `Read database/creds/${verifyRole}: Vault must log in with the new root credential to create that user; ` +
          `log in as it on ${target}/primary; revoke its lease (Vault drops the user)`,
        ]
        : []),
    ],
    verify: [
      "Vault answered 204",
      verifyRole
        ? `Vault's connection works with the new credential: it issued credentials of role ${verifyRole}, they log in on ${target}/primary, and their lease is revoked`
        : `Not checked: whether Vault's connection works with the new credential (set targets.${target}.vault.verify_role to a database role of ${connection} to check it)`,
      `Not checked: ${OLD_NOT_CHECKED}`,
    ],
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
  const vault = requireVault(deps);
  await vault.rotateRoot(p.connection);
  const base = { target: p.target, connection: p.connection, rotatedAt: deps.now().toISOString() };
  if (!p.verifyRole) {
    return {
      ...base,
      verification: {
        status: "not_checked",
        words: `Not checked whether Vault's connection works with the new credential (no ` +
          `targets.${p.target}.vault.verify_role); ${OLD_NOT_CHECKED}`,
      },
    };
  }
  return { ...base, verification: await verifyConnection(p, deps) };
}

/**
 * Proves Vault's connection works with the new root credential: issue credentials of the verify role (Vault
 * creates the user over that connection), log in with them, revoke the lease.
 * @throws {StepFailed} `verify` when Vault cannot issue them or they do not log in (the rotation itself is done)
 */
async function verifyConnection(p: RotateRootPlan, deps: OpDeps): Promise<RotateRootResult["verification"]> {
  const vault = requireVault(deps);
  const role = p.verifyRole!;
  let creds: { username: string; password: string; leaseId: string };
  try {
    creds = await vault.issueDatabaseCredentials(role);
  } catch (err) {
    throw new StepFailed(
      "verify",
      `Vault rotated the root credential of ${p.connection}, but then could not issue credentials of role ${role} ` +
        `over that connection (${
          err instanceof OpsError ? err.userMessage : "error"
        }): its connection may not ` +
        `work with the new credential. Check \`vault read database/creds/${role}\` and Vault's log`,
      { cause: err },
    );
  }
  const login = await tryLogin(deps.targets.member(p.target, "primary"), creds.username, creds.password);
  let revoked = "its lease was revoked (Vault dropped the user)";
  try {
    await vault.revokeLease(creds.leaseId);
  } catch (err) {
    deps.log.warn("could not revoke the verify credentials' lease", { error: err });
    revoked = `its lease could not be revoked (${
      err instanceof OpsError ? err.userMessage : "error"
    }): the user ${creds.username} lasts until the lease expires`;
  }
  if (!login.ok && login.reason === "wrong_password") {
    throw new StepFailed(
      "verify",
      `Vault rotated the root credential of ${p.connection} and issued credentials of role ${role}, but they do ` +
        `not log in on ${p.target}/primary (${login.detail}); ${revoked}`,
    );
  }
  const loginWords = login.ok
    ? `they logged in on ${p.target}/primary`
    : `a login with them on ${p.target}/primary says nothing (${login.detail})`;
  return {
    status: "verified",
    words:
      `Verified: Vault's connection works with the new credential (Vault created a user of role ${role} ` +
      `over it; ${loginWords}; ${revoked}); ${OLD_NOT_CHECKED}`,
  };
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
    `Vault rotated the root credential of connection ${r.connection}; only Vault knows it now. ${
      r.verification?.words ?? ""
    }`.trim(),
};
