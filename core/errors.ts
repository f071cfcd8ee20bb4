/**
 * One error type for everything the bot reports to a person.
 *
 * `code` is stable (tests, metrics and the audit log branch on it); `userMessage` is safe to show in Slack
 * and says what to do next; `cause` carries the underlying failure for the log only.
 *
 * @module
 */

/** Stable error codes. Add one only when a caller or a test branches on it. */
export type ErrorCode =
  | "invalid_input"
  | "not_permitted"
  | "not_configured"
  | "unknown_subcommand"
  | "approval_closed"
  | "frozen"
  | "state_changed"
  | "plan_tampered"
  | "step_failed"
  | "unreachable"
  | "conflict"
  | "internal";

/** An error whose message may be shown to the person who asked. Never put a secret in `userMessage`. */
export class OpsError extends Error {
  /**
   * @param code stable machine-readable code
   * @param userMessage Slack-safe text: the failed action, then the state after a colon, then what to do
   * @param options `cause` for the log, never rendered
   */
  constructor(readonly code: ErrorCode, readonly userMessage: string, options?: ErrorOptions) {
    super(userMessage, options);
    this.name = "OpsError";
  }
}

/** Bad arguments or a malformed request: the asker can fix it. */
export class InvalidInput extends OpsError {
  constructor(message: string, options?: ErrorOptions) {
    super("invalid_input", message, options);
    this.name = "InvalidInput";
  }
}

/** The asker may not do this (not an operator, not an eligible approver, wrong workspace or channel). */
export class NotPermitted extends OpsError {
  constructor(message: string, options?: ErrorOptions) {
    super("not_permitted", message, options);
    this.name = "NotPermitted";
  }
}

/** A feature whose configuration (Vault, alerts token, a target key) is absent. */
export class NotConfigured extends OpsError {
  constructor(message: string, options?: ErrorOptions) {
    super("not_configured", message, options);
    this.name = "NotConfigured";
  }
}

/** A step of an operation failed; `step` names it so the report says how far it got. */
export class StepFailed extends OpsError {
  constructor(readonly step: string, message: string, options?: ErrorOptions) {
    super("step_failed", message, options);
    this.name = "StepFailed";
  }
}

/**
 * Turns anything thrown into an OpsError, so renderers see one shape.
 * Unknown errors become "internal" with a reference the log also carries; their text is not shown,
 * because driver and library messages can echo connection strings or statement text.
 */
export function asOpsError(err: unknown, reference?: string): OpsError {
  if (err instanceof OpsError) return err;
  if (isStateUnavailable(err)) {
    return new OpsError(
      "unreachable",
      "State database unavailable: the bot cannot record or check this right now, so nothing was done. " +
        "Try again in a minute (/readyz shows when it is back)",
      { cause: err },
    );
  }
  const ref = reference ? ` (reference ${reference})` : "";
  return new OpsError("internal", `Internal error${ref}: see the bot's log`, { cause: err });
}

/**
 * Error codes that mean "the server did not answer", not "the statement was wrong": socket errors,
 * postgres.js's own connection codes, and PostgreSQL's shutdown / not-accepting-connections SQLSTATEs.
 */
const CONNECTION_CODES = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "EPIPE",
  "ETIMEDOUT",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "ENOTFOUND",
  "EAI_AGAIN",
  "CONNECTION_CLOSED",
  "CONNECTION_ENDED",
  "CONNECTION_DESTROYED",
  "CONNECT_TIMEOUT",
]);

/**
 * Where the bot's own state database listens: its host name and the addresses it resolves to, by port.
 * (A process normally has one; tests run several bots in one process.)
 */
const stateDatabases = new Map<number, Set<string>>();

/**
 * Names the bot's own state database (bot.ts, at start-up), so that failing to reach it reads "State
 * database unavailable" instead of an internal error. Targets' failures are told apart by address and port.
 */
export async function setStateDatabase(url: string): Promise<void> {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return;
  }
  const host = u.hostname.replace(/^\[|\]$/g, "");
  const addresses = new Set([host]);
  if (host === "localhost") ["127.0.0.1", "::1"].forEach((a) => addresses.add(a));
  else if (!/^[\d.]+$|:/.test(host)) {
    for (const type of ["A", "AAAA"] as const) {
      try {
        for (const a of await Deno.resolveDns(host, type)) addresses.add(a);
      } catch { /* a name that does not resolve now is only compared as written */ }
    }
  }
  const port = Number(u.port || 5432);
  const known = stateDatabases.get(port) ?? new Set<string>();
  for (const a of addresses) known.add(a);
  stateDatabases.set(port, known);
}

/** True when `err`, or one of its causes, is a failure to reach the state database. */
export function isStateUnavailable(err: unknown): boolean {
  let e: unknown = err;
  for (let depth = 0; e && typeof e === "object" && depth < 5; depth++) {
    const x = e as { code?: unknown; port?: unknown; address?: unknown; cause?: unknown };
    if (
      typeof x.code === "string" && CONNECTION_CODES.has(x.code) && typeof x.address === "string" &&
      stateDatabases.get(Number(x.port))?.has(x.address)
    ) return true;
    e = x.cause;
  }
  return false;
}

/** A short message for logs: the error's class and message, never a stack with locals. */
export function describeError(err: unknown): string {
  if (err instanceof Error) {
    const cause = err.cause ? `; cause: ${describeError(err.cause)}` : "";
    return `${err.name}: ${err.message}${cause}`;
  }
  return String(err);
}
