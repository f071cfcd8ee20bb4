/**
 * `rotate`: new passwords for the database roles mapped in config, kept in Vault KV v2, in an order that
 * never leaves Vault and PostgreSQL disagreeing.
 *
 * For each role, one at a time:
 * 1. generate 32 random bytes (base64) and compute the SCRAM-SHA-256 verifier in the bot;
 * 2. open a transaction on the primary and `ALTER ROLE … PASSWORD '<verifier>'` (PostgreSQL, its log,
 *    pg_stat_statements and audit triggers only ever see the verifier);
 * 3. write the Vault secret with check-and-set on the version the plan read (the secret's other keys keep
 *    their values); a concurrent writer makes the rotation stop, never overwrite;
 * 4. COMMIT; then log in on a fresh connection with the new password to verify.
 *
 * If the Vault write fails, the transaction rolls back and the old password keeps working everywhere. If
 * COMMIT fails after Vault was written, the previous Vault version is written back (check-and-set). A crash
 * in between is repaired by {@link rotateCredentials.reconcile}. Fault points `rotate.after_alter`,
 * `rotate.after_vault_write` and `rotate.after_commit` let tests kill the process at each step.
 *
 * No password appears in a plan, a result, an audit row, a log line or an error message.
 *
 * @module
 */

import { z } from "zod";
import type { Sql } from "postgres";
import type { Config, TargetConfig } from "../core/config.ts";
import { resolveTargetName } from "../core/config.ts";
import { InvalidInput, NotConfigured, OpsError, StepFailed } from "../core/errors.ts";
import { failpoint } from "../core/failpoint.ts";
import { requireVault, VaultClient, VaultError } from "../core/vault.ts";
import type { OpDeps, Operation, PlanBase, Reconciled } from "./types.ts";
import { generatePassword } from "./_scram.ts";
import {
  alterRolePassword,
  beginGuarded,
  type LoginResult,
  readRoleState,
  readTargetSessions,
  type RoleState,
  type SessionGroup,
  tryLogin,
} from "./_role_login.ts";

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

/** One role of a plan. */
export interface RolePlan {
  role: string;
  /** KV v2 path inside the mount, e.g. `bisman/db`. */
  path: string;
  key: string;
  /** `<mount>/<path>#<key>`, for messages. */
  ref: string;
  /** The secret's version when planned; 0 when the secret does not exist yet. */
  vaultVersion: number;
  /** Whether that version has the key. */
  keyPresent: boolean;
  canLogin: boolean;
  /** Sessions of the role on the primary and each replica when planned. */
  sessions: SessionGroup[];
  /** Members whose sessions could not be counted. */
  uncheckedMembers: string[];
}

/** The plan of a rotation. */
export interface RotatePlan extends PlanBase {
  target: string;
  mount: string;
  roles: RolePlan[];
  /** ISO time the plan was made. */
  plannedAt: string;
  verify: string[];
  undo: string[];
  fingerprint: {
    /** `<mount>/<path>` → version. */
    vault: Record<string, number>;
    roles: Record<string, RoleState>;
  };
}

/** What happened to one role. */
export interface RoleOutcome {
  role: string;
  ref: string;
  /**
   * `rotated`: PostgreSQL and Vault hold the new password. `failed`: not rotated, the old password still
   * works and Vault is unchanged (or was restored: see `message`). `skipped`: not attempted.
   * `inconsistent`: the two stores may disagree; `message` says what to do.
   */
  status: "rotated" | "failed" | "skipped" | "inconsistent";
  fromVersion: number;
  toVersion?: number;
  /** Whether a fresh login with the new password succeeded (undefined when not tried). */
  verified?: boolean;
  /** The step that failed. */
  step?: string;
  message?: string;
  /** Sessions that started before the new password took effect and are still open. */
  stillOnOldPassword?: SessionGroup[];
}

/** The result of a rotation. */
export interface RotateResult {
  target: string;
  roles: RoleOutcome[];
}

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
  const t = config.targets[target];
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
  return { target, t, roles: [[args.role, t.roles[args.role]]] };
}

/** A name as typed, shown only when it is a plain identifier (never echo quotes, mentions or markup). */
function safeName(s: string): string {
  return /^[A-Za-z0-9_.-]{1,63}$/.test(s) ? `"${s}"` : "that name";
}

function kvKey(mount: string, path: string): string {
  return `${mount}/${path}`;
}

/** The current version of a secret and its data, or version 0 when it does not exist. */
async function currentSecret(
  vault: VaultClient,
  mount: string,
  path: string,
): Promise<{ version: number; data: Record<string, string> }> {
  try {
    const s = await vault.read(path, { mount });
    return { version: s.version, data: s.data };
  } catch (err) {
    if (err instanceof VaultError && err.reason === "not_found" && err.status === 404) {
      // Absent, or its current version deleted: a write with cas = current version is still required.
      const meta = await vault.metadata(path, { mount }).catch(() => undefined);
      return { version: meta?.currentVersion ?? 0, data: {} };
    }
    throw err;
  }
}

function sessionWords(s: SessionGroup[]): string {
  return s.map((g) => `${g.member}: ${g.application} from ${g.client} ×${g.count}`).join("; ");
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
  for (const r of roles) fp.roles[r] = await readRoleState(sql, r);
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
  const missing: string[] = [];
  for (const [role, m] of wanted) {
    const state = await readRoleState(sql, role);
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
        `keeping the secret's other keys; COMMIT; log in as ${r.role} with the new password on a fresh connection`,
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
      "A fresh login with each new password succeeds; the old password no longer logs in",
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

/** Vault could not take the write; `applied` says whether the new password may be in Vault anyway. */
class VaultWriteFailed extends Error {
  constructor(readonly error: OpsError, readonly applied: "no" | "unknown") {
    super(error.userMessage);
  }
}

/**
 * Writes with check-and-set; when the outcome is unknown (timeout, lost connection, 5xx), reads back until
 * it is known whether the new password landed.
 */
async function writeOrLearn(
  vault: VaultClient,
  r: RolePlan,
  mount: string,
  data: Record<string, string>,
  cas: number,
  password: string,
): Promise<{ version: number }> {
  try {
    return await vault.write(r.path, data, { cas, mount });
  } catch (err) {
    if (!(err instanceof VaultError)) throw err;
    if (err.definitelyNotApplied) throw new VaultWriteFailed(err, "no");
    for (let attempt = 1; attempt <= 4; attempt++) {
      await new Promise((res) => setTimeout(res, 250 * attempt));
      try {
        const cur = await vault.read(r.path, { mount });
        if (cur.data[r.key] === password) return { version: cur.version };
        if (cur.version === cas) throw new VaultWriteFailed(err, "no");
        throw new VaultWriteFailed(
          new VaultError(
            "cas_mismatch",
            undefined,
            `Cannot write ${r.ref}: someone else wrote version ${cur.version} in the meantime; nothing was overwritten`,
          ),
          "no",
        );
      } catch (readErr) {
        if (readErr instanceof VaultWriteFailed) throw readErr;
      }
    }
    throw new VaultWriteFailed(err, "unknown");
  }
}

/** The primary's clock right now (sessions that started before it logged in with the old password). */
async function serverNow(sql: Sql): Promise<Date> {
  const [{ t }] = await sql<{ t: Date }[]>`select clock_timestamp() as t`;
  return new Date(t);
}

async function audit(
  deps: OpDeps,
  action: string,
  target: string,
  outcome: string,
  details: Record<string, unknown>,
) {
  try {
    await deps.audit.append({ actor: deps.actor ?? "bisman-ops", action, target, outcome, details });
  } catch (err) {
    deps.log.error("audit append failed", { action, error: err });
  }
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
  const password = generatePassword();
  deps.secrets.add(password);
  const sql = await deps.targets.pool(p.target);
  const primary = deps.targets.member(p.target, "primary");
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
  const login = r.canLogin ? await tryLogin(primary, r.role, password) : undefined;
  const verified = login?.ok;
  return {
    ...base,
    status: "rotated",
    toVersion: st.written!.version,
    verified,
    committedAt,
    message: login && !login.ok ? `verification login failed: ${login.detail}` : undefined,
  };
}

/** COMMIT reported an error after Vault was written: find out which password is in force and make Vault match. */
async function afterCommitFailure(
  p: RotatePlan,
  r: RolePlan,
  written: number,
  prev: Record<string, string>,
  password: string,
  deps: OpDeps,
  base: { role: string; ref: string; fromVersion: number },
): Promise<RoleOutcome & { stop?: boolean; committedAt?: Date }> {
  const primary = deps.targets.member(p.target, "primary");
  const login = await tryLogin(primary, r.role, password);
  if (login.ok) {
    // The COMMIT reached the server even though its answer was lost.
    return {
      ...base,
      status: "rotated",
      toVersion: written,
      verified: true,
      committedAt: new Date(),
      message: "COMMIT reported an error, but the new password logs in",
    };
  }
  if (login.reason !== "wrong_password") {
    return {
      ...base,
      status: "inconsistent",
      step: "COMMIT",
      toVersion: written,
      stop: true,
      message:
        `COMMIT failed and ${p.target}/primary cannot confirm which password is in force (${login.detail}); ` +
        `Vault holds the new one at version ${written}. When the server answers, check with /bisman creds and rotate ${r.role} again`,
    };
  }
  try {
    const back = await requireVault(deps).write(r.path, prev, { cas: written, mount: p.mount });
    return {
      ...base,
      status: "failed",
      step: "COMMIT",
      toVersion: back.version,
      stop: true,
      message:
        `COMMIT failed, so PostgreSQL kept the old password; Vault's previous value was written back as version ${back.version}: the old password still works`,
    };
  } catch (err) {
    const why = err instanceof OpsError ? err.userMessage : "Vault write failed";
    return {
      ...base,
      status: "inconsistent",
      step: "restore Vault",
      toVersion: written,
      stop: true,
      message:
        `COMMIT failed, so PostgreSQL kept the old password, and restoring Vault failed (${why}): Vault version ${written} ` +
        `holds a password that does not log in. Write version ${base.fromVersion}'s value back by hand, or rotate ${r.role} again`,
    };
  }
}

/** Vault did not say whether the write landed and the transaction rolled back: undo the write if it did land. */
async function afterUnknownWrite(
  p: RotatePlan,
  r: RolePlan,
  cas: number,
  prev: Record<string, string>,
  password: string,
  deps: OpDeps,
  base: { role: string; ref: string; fromVersion: number },
): Promise<RoleOutcome & { stop?: boolean }> {
  const vault = requireVault(deps);
  for (let attempt = 1; attempt <= 3; attempt++) {
    try {
      const cur = await vault.read(r.path, { mount: p.mount });
      if (cur.data[r.key] !== password) {
        return {
          ...base,
          status: "failed",
          step: "write Vault",
          stop: true,
          message:
            "Vault did not answer the write, and it did not store it. Rolled back: the old password still works",
        };
      }
      const back = await vault.write(r.path, prev, { cas: cur.version, mount: p.mount });
      return {
        ...base,
        status: "failed",
        step: "write Vault",
        stop: true,
        message:
          `Vault stored the write late, after the transaction had rolled back; its previous value was written back as version ${back.version}: the old password still works`,
      };
    } catch (err) {
      deps.log.warn("Vault read-back after an unknown write failed", { error: err, attempt });
      await new Promise((res) => setTimeout(res, 500 * attempt));
    }
  }
  return {
    ...base,
    status: "inconsistent",
    step: "write Vault",
    stop: true,
    message:
      `Vault did not answer, so it is unknown whether it stored the new password; PostgreSQL kept the old one. ` +
      `If ${r.ref} has a version newer than ${cas}, write version ${cas}'s value back, or rotate ${r.role} again`,
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
        step: o.step,
        message: o.message,
      },
    );
  }
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
        const v = o.verified === undefined
          ? "not verified (NOLOGIN)"
          : o.verified
          ? "verified"
          : "NOT verified";
        const old = o.stillOnOldPassword?.length
          ? `; still on the old password: ${sessionWords(o.stillOnOldPassword)}`
          : "; no session left on the old password";
        return `${o.role}: rotated (${o.ref} v${o.fromVersion}→v${o.toVersion}, ${v}${
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
  return text.length > 2800 ? `${text.slice(0, 2799)}…` : text;
}

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
async function reconcile(p: RotatePlan, deps: OpDeps): Promise<Reconciled<RotateResult>> {
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
    const value = cur.data[r.key];
    if (value === undefined) {
      human.push(`${r.role}: ${r.ref} has no value in Vault version ${cur.version}`);
      continue;
    }
    const changed = cur.version > planned;
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

/** The `rotate` operation (destructive: reached only through the approval gate). */
export const rotateCredentials: Operation<RotateArgs, RotatePlan, RotateResult> = {
  name: "rotate",
  destructive: true,
  args: rotateArgs,
  plan,
  revalidate,
  run,
  reconcile,
  describeResult: describeRotation,
};
