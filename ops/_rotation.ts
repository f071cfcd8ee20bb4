/**
 * The pieces of a credential rotation that surround its transaction: the plan and result types, reading a
 * secret's current version, the Vault write that learns its own outcome when Vault does not answer, and
 * the repairs after a failed COMMIT or an unanswered write. ops/rotate_credentials.ts runs them in order.
 *
 * @module
 */

import type { Sql } from "postgres";
import { OpsError } from "../core/errors.ts";
import { requireVault, type VaultClient, VaultError } from "../core/vault.ts";
import type { OpDeps, PlanBase } from "./types.ts";
import { type RoleState, type SessionGroup, tryLogin } from "./_role_login.ts";
import { passwordsChecked } from "./_password_check.ts";
import { own } from "../core/lookup.ts";

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
    /** `<mount>/<path>` -> version. */
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
  /**
   * True when logins showed the new password works where passwords are checked; false when the new one was
   * refused or the old one still logs in; undefined when no login could tell (NOLOGIN, a trusted connection).
   */
  verified?: boolean;
  /** What the verification checked and found, in words (see ops/_password_check.ts). */
  verification?: string;
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

/** `<mount>/<path>`, the key of a secret in fingerprints and messages. */
export function kvKey(mount: string, path: string): string {
  return `${mount}/${path}`;
}

/** The current version of a secret and its data, or version 0 when it does not exist. */
export async function currentSecret(
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

/** Sessions in words: `member: application from client ×n; ...`. */
export function sessionWords(s: SessionGroup[]): string {
  return s.map((g) => `${g.member}: ${g.application} from ${g.client} ×${g.count}`).join("; ");
}

/** Vault could not take the write; `applied` says whether the new password may be in Vault anyway. */
export class VaultWriteFailed extends Error {
  constructor(readonly error: OpsError, readonly applied: "no" | "unknown") {
    super(error.userMessage);
  }
}

/**
 * Writes with check-and-set; when the outcome is unknown (timeout, lost connection, 5xx), reads back until
 * it is known whether the new password landed.
 */
export async function writeOrLearn(
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
        if (own(cur.data, r.key) === password) return { version: cur.version };
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
export async function serverNow(sql: Sql): Promise<Date> {
  const [{ t }] = await sql<{ t: Date }[]>`select clock_timestamp() as t`;
  return new Date(t);
}

/** Appends a credential event to the audit log; a failure is logged, never fatal. */
export async function audit(
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

/** COMMIT reported an error after Vault was written: find out which password is in force and make Vault match. */
export async function afterCommitFailure(
  p: RotatePlan,
  r: RolePlan,
  written: number,
  prev: Record<string, string>,
  password: string,
  deps: OpDeps,
  base: { role: string; ref: string; fromVersion: number },
): Promise<RoleOutcome & { stop?: boolean; committedAt?: Date }> {
  const primary = deps.targets.member(p.target, "primary");
  const checked = await passwordsChecked(primary, r.role);
  if (!checked.checked) {
    // A trusted connection lets every password in: a login cannot tell which one is in force.
    return {
      ...base,
      status: "inconsistent",
      step: "COMMIT",
      toVersion: written,
      stop: true,
      message:
        `COMMIT failed, and a login cannot tell which password is in force: ${checked.why}. Vault holds ` +
        `the new one at version ${written}; rotate ${r.role} again so PostgreSQL and Vault surely match`,
    };
  }
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
export async function afterUnknownWrite(
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
      if (own(cur.data, r.key) !== password) {
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
