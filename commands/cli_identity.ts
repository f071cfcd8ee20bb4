/**
 * Who runs the break-glass CLI: the operating-system login, mapped to a Slack user ID by
 * `access.cli_operators`. The CLI then acts as that person (their operator and approver rights, and the
 * gate's "never the requester" rule judged on the same Slack ID whether they clicked in Slack or typed here);
 * the audit log names the login as `cli:<login>`.
 *
 * The login comes from the process's real user ID (`/etc/passwd`), never from `$USER`, which anyone can
 * set. Root is a shared account: run as root, `--as <login>` (or sudo's `SUDO_USER`) says which person is
 * at the keyboard; root could become that user with `su` anyway, so this grants nothing root lacks.
 *
 * @module
 */

import type { Config } from "../core/config.ts";
import type { Invoker } from "../core/access.ts";
import { NotPermitted } from "../core/errors.ts";
import { own as ownEntry } from "../core/lookup.ts";

const LOGIN = /^[a-z_][a-z0-9_.-]{0,31}$/;

/** The login name of a numeric user ID, from /etc/passwd (undefined when it is not listed). */
export function loginOfUid(uid: number, passwd?: string): string | undefined {
  let text = passwd;
  if (text === undefined) {
    try {
      text = Deno.readTextFileSync("/etc/passwd");
    } catch {
      return undefined;
    }
  }
  for (const line of text.split("\n")) {
    const f = line.split(":");
    if (f.length >= 3 && Number(f[2]) === uid) return f[0];
  }
  return undefined;
}

/** What identity resolution looks at, injectable for tests. */
export interface IdentitySource {
  uid: number | null;
  /** `--as <login>` */
  as?: string;
  /** `SUDO_USER` from the environment */
  sudoUser?: string;
  passwd?: string;
}

/** The current process's identity source. */
export function processIdentity(as?: string): IdentitySource {
  return { uid: Deno.uid(), as, sudoUser: Deno.env.get("SUDO_USER") || undefined };
}

/**
 * Resolves the operator: their login and the Slack ID it maps to, as a CLI invoker.
 * @throws {NotPermitted} when the login is unknown or not in access.cli_operators, or `--as` is used by
 * anyone but root
 */
export function resolveOperator(config: Config, src: IdentitySource): Invoker {
  const own = src.uid === null ? undefined : loginOfUid(src.uid, src.passwd);
  if (!own) {
    throw new NotPermitted(
      `Cannot tell who you are: user ID ${
        src.uid ?? "(none)"
      } has no login name; run the CLI as your own user`,
    );
  }
  let login = own;
  if (src.as !== undefined) {
    if (src.uid !== 0) {
      throw new NotPermitted(
        `--as is for root only (you are ${own}): run the CLI as yourself, it knows who you are`,
      );
    }
    login = src.as;
  } else if (src.uid === 0 && src.sudoUser && src.sudoUser !== "root") {
    login = src.sudoUser;
  }
  if (!LOGIN.test(login)) throw new NotPermitted(`"${login.slice(0, 40)}" is not a login name`);
  const slackId = ownEntry(config.access.cli_operators, login);
  if (!slackId) {
    const hint = src.uid === 0 && src.as === undefined ? " (as root, say who you are with --as <login>)" : "";
    throw new NotPermitted(
      `${login} may not use the break-glass CLI${hint}: an admin adds "${login}: <Slack user ID>" to ` +
        `access.cli_operators`,
    );
  }
  return { via: "cli", userId: slackId, userName: login };
}
