/**
 * Who typed a break-glass CLI command: the PostgreSQL login that submitted it, mapped to a Slack user ID by
 * `access.cli_operators`. The bot does the mapping, never the CLI: the login is `session_user` of the CLI's
 * own connection to the state database (sql/0009_cli_inbox.sql `cli_submit()`), as PostgreSQL authenticated
 * it (the person's password, client certificate or peer login), so nothing the CLI says about itself counts.
 * The command then runs as that person (their operator and approver rights, and the gate's "never the
 * requester" rule judged on the same Slack ID whether they clicked in Slack or typed here); the audit log
 * names the login as `cli:<login>`.
 *
 * @module
 */

import type { Config } from "../core/config.ts";
import type { Invoker } from "../core/access.ts";
import { NotPermitted } from "../core/errors.ts";
import { own } from "../core/lookup.ts";

/** The logins access.cli_operators may name (core/config.ts validates its keys with the same rule). */
const LOGIN = /^[a-z_][a-z0-9_.-]{0,31}$/;

/** A login as it may be shown: PostgreSQL allows any characters in a quoted role name. */
export function shownLogin(login: string): string {
  return LOGIN.test(login) ? login : JSON.stringify(login.slice(0, 63));
}

/**
 * The CLI invoker of a PostgreSQL login: `{ via: "cli", userId: <Slack ID>, userName: <login> }`.
 * @throws {NotPermitted} when the login is not in access.cli_operators (its message says how to add it)
 */
export function operatorOfLogin(config: Config, login: string): Invoker {
  // Own keys only: a role named "constructor" or "__proto__" must not find Object.prototype's members.
  const slackId = LOGIN.test(login) ? own(config.access.cli_operators, login) : undefined;
  if (typeof slackId !== "string") {
    throw new NotPermitted(
      LOGIN.test(login)
        ? `${login} may not use the break-glass CLI: an admin adds "${login}: <Slack user ID>" to access.cli_operators`
        : `${
          shownLogin(login)
        } may not use the break-glass CLI: access.cli_operators holds only logins such as ` +
          `alice (lower-case letters, digits, _ . -), so this one needs a role with such a name`,
    );
  }
  return { via: "cli", userId: slackId, userName: login };
}

/**
 * The invoker used to audit a refused login (one that maps to nobody): its actor is still `cli:<login>`,
 * and its user ID matches no Slack user.
 */
export function unmappedInvoker(login: string): Invoker {
  const name = LOGIN.test(login) ? login : shownLogin(login);
  return { via: "cli", userId: `cli:${name}`, userName: name };
}
