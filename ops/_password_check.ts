/**
 * What a login can prove about a password change, and what it cannot.
 *
 * A login with the new password proves nothing on a connection the server trusts (a `trust` line in
 * pg_hba.conf, or `peer`/`ident`/`cert`): every password logs in there, the old one and a wrong one included.
 * So before trusting any login, one attempt with a random wrong password must be refused with SQLSTATE 28P01
 * ("password authentication failed"): only then does the server check passwords for this role from this
 * address, and the new password logging in and the old one being refused mean something.
 *
 * @module
 */

import type { TargetMember } from "../core/targets.ts";
import { generatePassword } from "./_scram.ts";
import { tryLogin } from "./_role_login.ts";

/**
 * Whether the server checks passwords for `role` from the bot's address: `checked`, or why a login proves
 * nothing there. Never throws.
 */
export async function passwordsChecked(
  m: TargetMember,
  role: string,
): Promise<{ checked: true } | { checked: false; why: string }> {
  const wrong = await tryLogin(m, role, generatePassword());
  if (!wrong.ok && wrong.reason === "wrong_password") return { checked: true };
  const where = `${m.target}/${m.name} (${m.conn.host}:${m.conn.port})`;
  if (wrong.ok) {
    return {
      checked: false,
      why: `${where} let ${role} log in with a random wrong password, so it does not check passwords for ` +
        `${role} from the bot's address (pg_hba.conf trusts this connection: trust, peer, ident or cert); ` +
        `a login there proves nothing about the new or the old password`,
    };
  }
  if (wrong.reason === "cannot_login") {
    return { checked: false, why: `${role} may not log in (NOLOGIN), so no login can test its password` };
  }
  return {
    checked: false,
    why: `a login attempt as ${role} on ${where} says nothing about passwords: ${wrong.detail}`,
  };
}

/** What the verification of one rotated role found. */
export interface PasswordVerification {
  /**
   * `verified`: passwords are checked, the new one logs in and the old one is refused. `partly`: the new one
   * logs in where passwords are checked, the old one could not be tried. `not_verified`: no login can tell
   * (see `why`). `failed`: the new password is refused, or the old one still logs in.
   */
  status: "verified" | "partly" | "not_verified" | "failed";
  /** One sentence for the result and the card: what was checked and what was found. */
  words: string;
}

/**
 * Verifies a password change on `m` over fresh connections: a random wrong password must be refused (else
 * nothing is verified, and the words say why), the new password must log in, and the old one, when known,
 * must be refused. Over SCRAM no password crosses the wire. Never throws; the words hold no password.
 */
export async function verifyPasswordChange(
  m: TargetMember,
  role: string,
  newPassword: string,
  oldPassword: string | undefined,
): Promise<PasswordVerification> {
  const checked = await passwordsChecked(m, role);
  if (!checked.checked) return { status: "not_verified", words: `not verified: ${checked.why}` };
  const fresh = await tryLogin(m, role, newPassword);
  if (!fresh.ok) {
    return {
      status: "failed",
      words: `verification FAILED: the new password does not log in (${fresh.detail})`,
    };
  }
  if (oldPassword === undefined || oldPassword === newPassword) {
    return {
      status: "partly",
      words:
        "the new password logs in (a wrong one is refused); the old password was not tried: Vault held " +
        "no previous value for this key",
    };
  }
  const old = await tryLogin(m, role, oldPassword);
  if (old.ok) {
    return { status: "failed", words: "verification FAILED: the old password still logs in" };
  }
  if (old.reason !== "wrong_password") {
    return {
      status: "partly",
      words:
        `the new password logs in (a wrong one is refused); the old password could not be tried: ${old.detail}`,
    };
  }
  return {
    status: "verified",
    words: "verified: the new password logs in, the old one is refused (and so is a random wrong one)",
  };
}
