/**
 * After a crash mid-rotation: makes the password in Vault the one that logs in (see
 * {@link reconcileRotation} for why PostgreSQL is repaired rather than Vault).
 *
 * @module
 */

import { OpsError } from "../core/errors.ts";
import { requireVault } from "../core/vault.ts";
import type { OpDeps, Reconciled } from "./types.ts";
import { alterRolePassword, type LoginResult, tryLogin } from "./_role_login.ts";
import { passwordsChecked } from "./_password_check.ts";
import { beginGuarded } from "../core/pg_tx.ts";
import {
  audit,
  currentSecret,
  kvKey,
  type RoleOutcome,
  type RotatePlan,
  type RotateResult,
} from "./_rotation.ts";
import { own } from "../core/lookup.ts";

/**
 * After a crash mid-run: makes the password in Vault the one that logs in, role by role.
 *
 * Decision: when Vault's current password does not log in and Vault's version is newer than the plan's
 * (the process died after the Vault write and before COMMIT, so the transaction died with it), this
 * ALTERs the role to Vault's current value rather than writing the previous version back:
 * - it completes what the approvers approved instead of silently undoing it;
 * - every service that read Vault since the crash already holds that value; making it work fixes them at
 *   once, whereas writing back would break them a second time;
 * - it needs no Vault write (Vault may be the degraded part), cannot race another writer's check-and-set,
 *   and adds no version that repeats an older value (which would muddle the history and credential ages);
 * - PostgreSQL still only sees a SCRAM verifier computed in the bot.
 * When Vault did not change since the plan and its password does not log in, the mismatch predates this
 * rotation: a person must look (needs_human). Nothing is ever rotated again blindly.
 */
export async function reconcileRotation(p: RotatePlan, deps: OpDeps): Promise<Reconciled<RotateResult>> {
  const vault = requireVault(deps);
  const primary = deps.targets.member(p.target, "primary");
  const sql = await deps.targets.pool(p.target);
  const outcomes: RoleOutcome[] = [];
  const human: string[] = [];
  const notes: string[] = [];
  for (const r of p.roles) {
    const planned = p.fingerprint.vault[kvKey(p.mount, r.path)] ?? r.vaultVersion;
    const base = { role: r.role, ref: r.ref, fromVersion: planned };
    let cur: { version: number; data: Record<string, string> };
    try {
      cur = await currentSecret(vault, p.mount, r.path);
    } catch (err) {
      human.push(
        `${r.role}: Vault could not be read (${err instanceof OpsError ? err.userMessage : "error"})`,
      );
      continue;
    }
    const value = own(cur.data, r.key);
    if (value === undefined) {
      human.push(`${r.role}: ${r.ref} has no value in Vault version ${cur.version}`);
      continue;
    }
    const changed = cur.version > planned;
    const checked = await passwordsChecked(primary, r.role);
    if (!checked.checked) {
      human.push(`${r.role}: a login cannot tell which password is in force: ${checked.why}`);
      continue;
    }
    const login: LoginResult = await tryLogin(primary, r.role, value);
    if (login.ok) {
      outcomes.push(
        changed
          ? {
            ...base,
            status: "rotated",
            toVersion: cur.version,
            verified: true,
            message: "Vault's password logs in",
          }
          : { ...base, status: "skipped", message: "not rotated: Vault unchanged and its password logs in" },
      );
      notes.push(
        changed
          ? `${r.role} rotated (v${cur.version} logs in)`
          : `${r.role} unchanged (v${cur.version} logs in)`,
      );
      continue;
    }
    if (login.reason !== "wrong_password") {
      human.push(`${r.role}: cannot tell whether Vault's password logs in (${login.detail})`);
      continue;
    }
    if (!changed) {
      human.push(
        `${r.role}: Vault version ${cur.version} (unchanged since the plan) does not log in; this predates the rotation`,
      );
      continue;
    }
    try {
      await beginGuarded(sql, async (tx) => {
        await tx`select set_config('lock_timeout', '10s', true)`;
        await alterRolePassword(tx, r.role, value);
      }).tx;
    } catch (err) {
      const msg = err instanceof RangeError
        ? err.message
        : `ALTER ROLE failed (${(err as { code?: string }).code ?? "error"})`;
      human.push(`${r.role}: Vault version ${cur.version} does not log in and repairing it failed: ${msg}`);
      continue;
    }
    const after = await tryLogin(primary, r.role, value);
    if (!after.ok) {
      human.push(
        `${r.role}: set to Vault version ${cur.version}'s password, but it still does not log in (${after.detail})`,
      );
      continue;
    }
    outcomes.push({
      ...base,
      status: "rotated",
      toVersion: cur.version,
      verified: true,
      message: "repaired: PostgreSQL was set to the password Vault holds",
    });
    notes.push(`${r.role} repaired: set to Vault v${cur.version}'s password, which now logs in`);
    await audit(deps, "credential.reconciled", p.target, "repaired", {
      role: r.role,
      vault: r.ref,
      version: cur.version,
    });
  }
  if (human.length) {
    return { status: "needs_human", note: [...human, ...notes].join("; ") };
  }
  if (!outcomes.some((o) => o.status === "rotated")) {
    return {
      status: "not_done",
      note: `No password changed; Vault's current passwords log in: ${notes.join("; ")}`,
    };
  }
  return { status: "done", result: { target: p.target, roles: outcomes }, note: notes.join("; ") };
}
