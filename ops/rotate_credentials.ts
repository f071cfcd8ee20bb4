/**
 * `rotate`: new passwords for the database roles mapped in config, kept in Vault KV v2, in an order that
 * never leaves Vault and PostgreSQL disagreeing.
 *
 * For each role, one at a time:
 * 1. generate 32 random bytes (base64) and compute the SCRAM-SHA-256 verifier in the bot;
 * 2. open a transaction on the primary and `ALTER ROLE ... PASSWORD '<verifier>'` (PostgreSQL, its log,
 *    pg_stat_statements and audit triggers only ever see the verifier);
 * 3. write the Vault secret with check-and-set on the version the plan read (the secret's other keys keep
 *    their values); a concurrent writer makes the rotation stop, never overwrite;
 * 4. COMMIT; then log in on a fresh connection with the new password to verify.
 *
 * If the Vault write fails, the transaction rolls back and the old password keeps working everywhere. If
 * COMMIT fails after Vault was written, the previous Vault version is written back (check-and-set). A crash
 * in between is repaired by reconcile (ops/_rotation_reconcile.ts). Fault points `rotate.after_alter`,
 * `rotate.after_vault_write` and `rotate.after_commit` let tests kill the process at each step.
 *
 * No password appears in a plan, a result, an audit row, a log line or an error message.
 *
 * @module
 */

import { z } from "zod";
import type { Config, TargetConfig } from "../core/config.ts";
import { resolveTargetName } from "../core/config.ts";
import { InvalidInput, NotConfigured, NotPermitted, OpsError, StepFailed } from "../core/errors.ts";
import { failpoint } from "../core/failpoint.ts";
import { requireVault } from "../core/vault.ts";
import type { OpDeps, Operation } from "./types.ts";
import { generatePassword } from "./_scram.ts";
import { alterRolePassword, readRoleState, readTargetSessions, type RoleState } from "./_role_login.ts";
import { verifyPasswordChange } from "./_password_check.ts";
import {
  afterCommitFailure,
  afterUnknownWrite,
  audit,
  currentSecret,
  kvKey,
  type RoleOutcome,
  type RolePlan,
  type RotatePlan,
  type RotateResult,
  serverNow,
  sessionWords,
  VaultWriteFailed,
  writeOrLearn,
} from "./_rotation.ts";
import { reconcileRotation } from "./_rotation_reconcile.ts";
import { beginGuarded } from "../core/pg_tx.ts";
import { recordRotation } from "./_runbook_metrics.ts";
import { own } from "../core/lookup.ts";
import { cleartextRefusal, probeAuthMethod } from "./_auth_probe.ts";

export type { RoleOutcome, RolePlan, RotatePlan, RotateResult } from "./_rotation.ts";

/** The argument that selects every role mapped for the target. */
export const ALL_ROLES = "all";

const ROLE_NAME_RE = /^[a-z_][a-z0-9_]{0,62}$/;

/** Arguments: a role mapped in config (or `all`) and an optional target. The alert button sends `{ role: "all", target }`. */
export const rotateArgs = z.strictObject({
  role: z.string().regex(
    ROLE_NAME_RE,
    "a role name mapped in config (lower-case letters, digits, _), or all",
  ),
  target: z.string().regex(/^[a-z_][a-z0-9_]{0,62}$/, "a target name").optional(),
});
export type RotateArgs = z.infer<typeof rotateArgs>;

/** A rotation in which at least one role did not rotate; `result` says which did. */
export class RotationIncomplete extends StepFailed {
  constructor(readonly result: RotateResult, options?: ErrorOptions) {
    const bad = result.roles.find((r) => r.status !== "rotated");
    super(bad?.step ?? "rotate", describeRotation(result), options);
    this.name = "RotationIncomplete";
  }
}

/**
 * Picks the target and the roles the arguments name, checked against config before anything reaches SQL
 * or a Vault path.
 * @throws {InvalidInput} for an unknown target or a role not mapped for it (listing the valid ones)
 * @throws {NotConfigured} when the target maps no roles
 */
export function resolveRotation(
  config: Config,
  args: { role: string; target?: string },
): { target: string; t: TargetConfig; roles: [string, { path: string; key: string }][] } {
  const target = resolveTargetName(config, args.target);
  if (!target) {
    throw new InvalidInput(
      args.target
        ? `Unknown target "${safeName(args.target)}": configured targets are ${
          Object.keys(config.targets).join(", ")
        }`
        : `Name a target: configured targets are ${Object.keys(config.targets).join(", ")}`,
    );
  }
  const t = own(config.targets, target)!;
  const mapped = Object.entries(t.roles);
  if (!mapped.length) {
    throw new NotConfigured(
      `Target ${target} maps no rotatable roles: add them under targets.${target}.roles`,
    );
  }
  if (args.role === ALL_ROLES) return { target, t, roles: mapped };
  if (!ROLE_NAME_RE.test(args.role) || !Object.hasOwn(t.roles, args.role)) {
    throw new InvalidInput(
      `Cannot rotate ${safeName(args.role)}: it is not a rotatable role of target ${target}. ` +
        `Valid: ${mapped.map(([r]) => r).join(", ")}, or ${ALL_ROLES}`,
    );
  }
  return { target, t, roles: [[args.role, own(t.roles, args.role)!]] };
}

/** A name as typed, shown only when it is a plain identifier (never echo quotes, mentions or markup). */
function safeName(s: string): string {
  return /^[A-Za-z0-9_.-]{1,63}$/.test(s) ? `"${s}"` : "that name";
}

async function readFingerprint(
  target: string,
  mount: string,
  roles: string[],
  paths: string[],
  deps: OpDeps,
): Promise<RotatePlan["fingerprint"]> {
  const vault = requireVault(deps);
  const sql = await deps.targets.pool(target);
  const fp: RotatePlan["fingerprint"] = { vault: {}, roles: {} };
  for (const p of paths) fp.vault[kvKey(mount, p)] = (await currentSecret(vault, mount, p)).version;
  for (const r of roles) fp.roles[r] = await readRoleState(sql, r, deps.keys);
  return fp;
}

/** Builds the plan: reads Vault versions, role states and sessions only. */
async function plan(args: RotateArgs, deps: OpDeps): Promise<RotatePlan> {
  const { target, t, roles: wanted } = resolveRotation(deps.config, args);
  const vault = requireVault(deps);
  const mount = t.vault.kv_mount;
  const sql = await deps.targets.pool(target);
  const secrets = new Map<string, { version: number; data: Record<string, string> }>();
  for (const [, m] of wanted) {
    if (!secrets.has(m.path)) secrets.set(m.path, await currentSecret(vault, mount, m.path));
  }
  const warnings: string[] = [];
  const roles: RolePlan[] = [];
  const states: Record<string, RoleState> = {};
  const primaryConn = deps.targets.member(target, "primary").conn;
  const missing: string[] = [];
  const lockout: string[] = [];
  for (const [role, m] of wanted) {
    // The bot's own login may be rotated only when it reads that very key from Vault: with its password
    // in the environment, the rotation would lock the bot out of the target.
    const own = deps.targets.members(target).find((x) =>
      x.conn.user === role && x.conn.vault !== `${m.path}#${m.key}`
    );
    if (own) {
      lockout.push(role);
      continue;
    }
    const state = await readRoleState(sql, role, deps.keys);
    if (!state.exists) {
      missing.push(role);
      continue;
    }
    states[role] = state;
    const s = secrets.get(m.path)!;
    const ref = `${kvKey(mount, m.path)}#${m.key}`;
    const { sessions, unchecked } = await readTargetSessions(target, role, deps);
    roles.push({
      role,
      path: m.path,
      key: m.key,
      ref,
      vaultVersion: s.version,
      keyPresent: Object.hasOwn(s.data, m.key),
      canLogin: state.canLogin,
      sessions,
      uncheckedMembers: unchecked,
    });
    if (!state.canLogin) {
      warnings.push(`${role} is NOLOGIN: its password is rotated, but a login cannot verify it`);
    } else {
      // The verification login would send the new password; refuse where the server wants it in clear.
      const refusal = cleartextRefusal(role, await probeAuthMethod(primaryConn, role));
      if (refusal) throw new NotPermitted(`Cannot rotate ${role} on ${target}: ${refusal}`);
    }
    const n = sessions.reduce((a, g) => a + g.count, 0);
    if (n) {
      warnings.push(
        `${role} has ${n} open session${n === 1 ? "" : "s"} (${sessionWords(sessions)}). They keep working ` +
          `until they reconnect, and must then read the new password from Vault (${ref})`,
      );
    }
    if (unchecked.length) {
      warnings.push(`Sessions of ${role} could not be counted on ${unchecked.join(", ")}`);
    }
  }
  if (lockout.length && args.role !== ALL_ROLES) {
    throw new InvalidInput(
      `Cannot rotate ${
        lockout[0]
      }: it is the bot's own login on ${target}, and the bot does not read its password from ` +
        `Vault ${mount}/${wanted[0][1].path}#${
          wanted[0][1].key
        }; rotating it would lock the bot out. Set that connection's ` +
        "`vault:` to this key first",
    );
  }
  if (lockout.length) {
    warnings.push(
      `Left out, the bot's own login (its password is not read from this Vault key): ${lockout.join(", ")}`,
    );
  }
  if (missing.length && args.role !== ALL_ROLES) {
    throw new NotConfigured(
      `Cannot rotate ${
        missing[0]
      }: the role does not exist on ${target}/primary: create it, or remove it from targets.${target}.roles`,
    );
  }
  if (missing.length) {
    warnings.push(`Left out, not present on ${target}/primary: ${missing.join(", ")}`);
  }
  if (!roles.length) throw new NotConfigured(`None of the roles mapped for ${target} exist on its primary`);

  const paths = [...new Set(roles.map((r) => r.path))];
  const fingerprint: RotatePlan["fingerprint"] = { vault: {}, roles: states };
  for (const p of paths) fingerprint.vault[kvKey(mount, p)] = secrets.get(p)!.version;

  const steps: string[] = [];
  if (roles.length > 1) {
    steps.push(`Rotate ${roles.length} roles one at a time, each to the end before the next:`);
  }
  for (const r of roles) {
    steps.push(
      `${r.role}: new 32-byte random password (base64) and its SCRAM-SHA-256 verifier, computed in the bot; ` +
        `in a transaction on ${target}/primary, ALTER ROLE ${r.role} with the verifier (PostgreSQL never sees the password); ` +
        `write ${r.ref} with check-and-set on version ${r.vaultVersion} (or the version this rotation wrote last), ` +
        `keeping the secret's other keys; COMMIT; verify on fresh connections (below)`,
    );
  }
  steps.push(
    "List the sessions still open on the old password (services that have not read Vault again yet)",
  );
  const only = roles.length === 1 ? roles[0] : undefined;
  return {
    summary: only
      ? `Rotate the password of ${only.role} on ${target} (Vault ${only.ref}, version ${only.vaultVersion})`
      : `Rotate the passwords of ${roles.length} roles on ${target}: ${roles.map((r) => r.role).join(", ")}`,
    target,
    mount,
    roles,
    plannedAt: deps.now().toISOString(),
    steps,
    verify: [
      "Per role, on fresh connections to the primary: a random wrong password is refused (otherwise the " +
      'server does not check passwords there, and the result says "not verified" and why), the new ' +
      "password logs in, and the old one (Vault's previous value) is refused",
      "Each Vault secret's version went up by one per role rotated",
    ],
    undo: [
      "Vault write fails or someone else wrote the secret: the transaction rolls back; the old password keeps working and Vault is unchanged; the rotation stops",
      "COMMIT fails after Vault was written: the previous Vault version is written back (check-and-set)",
      "The bot dies mid-way: on restart, reconcile makes the password in Vault the one that logs in",
    ],
    fingerprint,
    warnings,
  };
}

/** Describes what changed since the plan, or undefined when it still holds. */
async function revalidate(p: RotatePlan, deps: OpDeps): Promise<string | undefined> {
  const now = await readFingerprint(
    p.target,
    p.mount,
    p.roles.map((r) => r.role),
    [...new Set(p.roles.map((r) => r.path))],
    deps,
  );
  const changes: string[] = [];
  for (const [path, v] of Object.entries(p.fingerprint.vault)) {
    if (now.vault[path] !== v) {
      changes.push(`Vault ${path} is at version ${now.vault[path]}, the plan read ${v}`);
    }
  }
  for (const [role, was] of Object.entries(p.fingerprint.roles)) {
    const is = now.roles[role];
    if (!is?.exists) changes.push(`role ${role} no longer exists`);
    else if (is.verifierDigest !== was.verifierDigest || is.hasPassword !== was.hasPassword) {
      changes.push(`the password of ${role} was changed in PostgreSQL since the plan`);
    } else if (is.validUntil !== was.validUntil || is.canLogin !== was.canLogin) {
      changes.push(`${role}'s LOGIN or VALID UNTIL changed since the plan`);
    }
  }
  return changes.length ? changes.join("; ") : undefined;
}

/** Rotates one role; never throws for the role's own failures (they are its outcome). */
async function rotateRole(
  p: RotatePlan,
  r: RolePlan,
  cas: number,
  deps: OpDeps,
): Promise<RoleOutcome & { stop?: boolean; committedAt?: Date }> {
  const vault = requireVault(deps);
  const base = { role: r.role, ref: r.ref, fromVersion: cas };
  const log = deps.log.child({ op: "rotate", role: r.role, target: p.target });
  let prev: Record<string, string> = {};
  if (cas > 0) {
    try {
      prev = (await vault.readVersion(r.path, cas, { mount: p.mount })).data;
    } catch (err) {
      const e = err instanceof OpsError ? err : new OpsError("internal", "Vault read failed");
      return {
        ...base,
        status: "failed",
        step: "read Vault",
        message: `${e.userMessage}; nothing was changed`,
        stop: true,
      };
    }
  }
  const primary = deps.targets.member(p.target, "primary");
  if (r.canLogin) {
    // Checked again before anything changes: pg_hba.conf may have changed since the plan.
    const refusal = cleartextRefusal(r.role, await probeAuthMethod(primary.conn, r.role));
    if (refusal) {
      return {
        ...base,
        status: "failed",
        step: "check authentication",
        message: `${refusal}; nothing was changed`,
        stop: true,
      };
    }
  }
  const password = generatePassword();
  deps.secrets.add(password);
  const sql = await deps.targets.pool(p.target);
  const st: { phase: "alter" | "vault_write" | "commit"; written?: { version: number } } = { phase: "alter" };
  const guarded = beginGuarded(sql, async (tx) => {
    // Never queue for long behind another transaction that holds the role's row.
    await tx`select set_config('lock_timeout', '10s', true)`;
    await alterRolePassword(tx, r.role, password);
    await failpoint("rotate.after_alter");
    st.phase = "vault_write";
    st.written = await writeOrLearn(vault, r, p.mount, { ...prev, [r.key]: password }, cas, password);
    await failpoint("rotate.after_vault_write");
    st.phase = "commit";
  });
  try {
    await guarded.tx;
  } catch (err) {
    // The transaction fails at once when its connection is cut, while its steps may still run (the
    // Vault write): let them finish, so the phase says whether Vault was written, before deciding.
    const bodyErr = await guarded.steps()?.then(() => undefined, (e) => e);
    if (st.phase === "alter") {
      log.warn("ALTER ROLE failed", { error: err });
      const code = (err as { code?: string }).code;
      return {
        ...base,
        status: "failed",
        step: "ALTER ROLE",
        message: `ALTER ROLE ${r.role} failed${code ? ` (SQLSTATE ${code})` : ""}; nothing was changed`,
      };
    }
    if (st.phase === "vault_write") {
      const vf = [bodyErr, err].find((e): e is VaultWriteFailed => e instanceof VaultWriteFailed);
      log.warn("Vault write failed; transaction rolled back", { error: vf?.error ?? err });
      if (vf?.applied === "unknown") return await afterUnknownWrite(p, r, cas, prev, password, deps, base);
      const why = vf?.error.userMessage ?? "the Vault write failed";
      return {
        ...base,
        status: "failed",
        step: "write Vault",
        message: `${why}. Rolled back: the old password still works and Vault is unchanged`,
        // A concurrent writer or an unavailable Vault stops the whole rotation.
        stop: true,
      };
    }
    log.error("COMMIT failed after Vault was written", { error: err });
    return await afterCommitFailure(p, r, st.written!.version, prev, password, deps, base);
  }
  const committedAt = await serverNow(sql).catch(() => new Date());
  await failpoint("rotate.after_commit");
  if (deps.targets.members(p.target).some((m) => m.conn.user === r.role)) {
    // The bot's own login changed: new connections must read the new password.
    for (const m of deps.targets.members(p.target)) {
      if (m.conn.user === r.role) await deps.targets.reset(p.target, m.name);
    }
  }
  // The old password is Vault's previous value (what services logged in with); it must now be refused.
  const oldPassword = cas > 0 ? prev[r.key] : undefined;
  deps.secrets.add(oldPassword);
  const check = r.canLogin ? await verifyPasswordChange(primary, r.role, password, oldPassword) : undefined;
  return {
    ...base,
    status: "rotated",
    toVersion: st.written!.version,
    // true only where a login could tell (verified, or the new password where the old was not tried).
    verified: check === undefined || check.status === "not_verified" ? undefined : check.status !== "failed",
    verification: check?.words ?? "not verified: the role is NOLOGIN, so no login can test its password",
    committedAt,
  };
}

/** Runs the plan, role by role; throws {@link RotationIncomplete} when any role did not rotate. */
async function run(p: RotatePlan, deps: OpDeps): Promise<RotateResult> {
  requireVault(deps);
  const expected = new Map(Object.entries(p.fingerprint.vault));
  const outcomes: (RoleOutcome & { committedAt?: Date })[] = [];
  let stopped: string | undefined;
  for (const r of p.roles) {
    const key = kvKey(p.mount, r.path);
    if (stopped) {
      outcomes.push({
        role: r.role,
        ref: r.ref,
        status: "skipped",
        fromVersion: expected.get(key)!,
        message: stopped,
      });
      continue;
    }
    const o = await rotateRole(p, r, expected.get(key)!, deps);
    const { stop, ...outcome } = o;
    outcomes.push(outcome);
    if (o.toVersion !== undefined) expected.set(key, o.toVersion);
    if (stop) stopped = `not attempted: the rotation stopped at ${r.role}`;
    await audit(
      deps,
      o.status === "rotated" ? "credential.rotated" : "credential.rotation_failed",
      p.target,
      o.status,
      {
        role: r.role,
        vault: r.ref,
        from_version: o.fromVersion,
        to_version: o.toVersion,
        verified: o.verified,
        verification: o.verification,
        step: o.step,
        message: o.message,
      },
    );
  }
  recordRotation(
    deps.metrics,
    p.target,
    outcomes.flatMap((o) =>
      o.status === "rotated" && o.committedAt ? [{ role: o.role, at: o.committedAt }] : []
    ),
  );
  for (const o of outcomes) {
    if (o.status !== "rotated" || !o.committedAt) continue;
    const { sessions } = await readTargetSessions(p.target, o.role, deps, o.committedAt);
    o.stillOnOldPassword = sessions;
  }
  const result: RotateResult = {
    target: p.target,
    roles: outcomes.map(({ committedAt: _c, ...o }) => o),
  };
  if (result.roles.some((o) => o.status !== "rotated" || o.verified === false)) {
    throw new RotationIncomplete(result);
  }
  return result;
}

/** One line per role, for the approval message, the audit log and errors. Never holds a password. */
export function describeRotation(result: RotateResult): string {
  const parts = result.roles.map((o) => {
    switch (o.status) {
      case "rotated": {
        // Older results (before verification words) carry only the boolean.
        const v = o.verification ??
          (o.verified === undefined ? "not verified (NOLOGIN)" : o.verified ? "verified" : "NOT verified");
        const old = o.stillOnOldPassword?.length
          ? `; still on the old password: ${sessionWords(o.stillOnOldPassword)}`
          : "; no session left on the old password";
        return `${o.role}: rotated (${o.ref} v${o.fromVersion}\u2192v${o.toVersion}, ${v}${
          o.message ? `: ${o.message}` : ""
        })${old}`;
      }
      case "skipped":
        return `${o.role}: not rotated (${o.message})`;
      default:
        return `${o.role}: NOT rotated at step "${o.step}": ${o.message}`;
    }
  });
  const text = parts.join(". ");
  return text.length > 2800 ? `${text.slice(0, 2799)}\u2026` : text;
}

/** The `rotate` operation (destructive: reached only through the approval gate). */
export const rotateCredentials: Operation<RotateArgs, RotatePlan, RotateResult> = {
  name: "rotate",
  destructive: true,
  args: rotateArgs,
  plan,
  revalidate,
  run,
  reconcile: reconcileRotation,
  describeResult: describeRotation,
};
