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
  const ref = reference ? ` (reference ${reference})` : "";
  return new OpsError("internal", `Internal error${ref}: see the bot's log`, { cause: err });
}

/** A short message for logs: the error's class and message, never a stack with locals. */
export function describeError(err: unknown): string {
  if (err instanceof Error) {
    const cause = err.cause ? `; cause: ${describeError(err.cause)}` : "";
    return `${err.name}: ${err.message}${cause}`;
  }
  return String(err);
}
