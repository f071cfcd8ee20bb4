/**
 * Redaction of sensitive columns in row data the bot shows or exports (`/bisman audit` results: a row's old
 * and new values from audit_logs_dml, in Slack and in the CSV). A column is sensitive when its name contains
 * one of `redaction.sensitive_columns` (case-insensitive: `password` covers `password_hash` and
 * `db_password`); its value is replaced by `redaction.mark` at every depth of the JSON, so nothing of it
 * reaches a message, a file or a log.
 *
 * @module
 */

import type { Config } from "./config.ts";

/** The defaults of `redaction.sensitive_columns`: what the BISMAN schema and most ERPs hold. */
export { DEFAULT_SENSITIVE_COLUMNS } from "./config.ts";

/** What a redaction needs: the name parts that make a column sensitive, and the mark. */
export interface Redaction {
  columns: readonly string[];
  mark: string;
}

/** The redaction the config asks for. */
export function redactionOf(config: Pick<Config, "redaction">): Redaction {
  return {
    columns: config.redaction.sensitive_columns.map((c) => c.toLowerCase()),
    mark: config.redaction.mark,
  };
}

/**
 * Whether a column name is sensitive.
 * @example
 * isSensitive("Password_Hash", { columns: ["password"], mark: "[redacted]" }); // true
 */
export function isSensitive(column: string, r: Redaction): boolean {
  const name = column.toLowerCase();
  return r.columns.some((c) => c && name.includes(c));
}

/**
 * A deep copy of `value` with every sensitive key's value replaced by the mark (JSON objects, at any
 * depth: a jsonb column inside a row is redacted too). Non-objects come back as they are.
 * @example
 * redactRow({ id: 1, iban: "NL91…", meta: { api_token: "x" } }, { columns: ["iban", "token"], mark: "[redacted]" });
 * // { id: 1, iban: "[redacted]", meta: { api_token: "[redacted]" } }
 */
export function redactRow<T>(value: T, r: Redaction): T {
  if (Array.isArray(value)) return value.map((v) => redactRow(v, r)) as T;
  if (value && typeof value === "object" && !(value instanceof Date)) {
    return Object.fromEntries(
      Object.entries(value as Record<string, unknown>).map((
        [k, v],
      ) => [k, isSensitive(k, r) && v !== null ? r.mark : redactRow(v, r)]),
    ) as T;
  }
  return value;
}

/** The names of `columns` that are sensitive (an UPDATE's changed-column list stays, values go). */
export function sensitiveOf(columns: string[], r: Redaction): string[] {
  return columns.filter((c) => isSensitive(c, r));
}
