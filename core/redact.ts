/**
 * Redaction of what the bot shows or exports of a target's data: row data and statement text.
 *
 * - Row data (`/bisman audit` results: a row's old and new values from audit_logs_dml, in Slack and in the
 *   CSV; security_events details): a column is sensitive when its name contains one of
 *   `redaction.sensitive_columns` (case-insensitive: `password` covers `password_hash` and `db_password`);
 *   its value is replaced by `redaction.mark` at every depth of the JSON, so nothing of it reaches a message,
 *   a file or a log. SCRAM verifiers and md5 hashes are masked in every other value too.
 * - Statement text goes through the one statement mask (core/statement_mask.ts) with the config's
 *   `redaction.statement_numbers`: {@link maskStatementFor}.
 *
 * @module
 */

import type { Config } from "./config.ts";
import { type MaskedStatement, maskSecretTokens, maskStatement } from "./statement_mask.ts";

/** The defaults of `redaction.sensitive_columns`: what the BISMAN schema and most ERPs hold. */
export { DEFAULT_SENSITIVE_COLUMNS } from "./config.ts";

/**
 * What a redaction needs: the name parts that make a column sensitive, the mark, and whether statement text
 * keeps its (short) numbers.
 */
export interface Redaction {
  columns: readonly string[];
  mark: string;
  keepNumbers?: boolean;
}

/** The redaction the config asks for. */
export function redactionOf(config: Pick<Config, "redaction">): Redaction {
  return {
    columns: config.redaction.sensitive_columns.map((c) => c.toLowerCase()),
    mark: config.redaction.mark,
    keepNumbers: config.redaction.statement_numbers === "keep",
  };
}

/**
 * Statement text masked as the config asks (core/statement_mask.ts: literals, comments, passwords,
 * verifiers; numbers unless `redaction.statement_numbers: keep`).
 * @example
 * maskStatementFor("update t set card = '4111 1111 1111 1111' where id = 7", redactionOf(config));
 * // "update t set card = '?' where id = ?"
 */
export function maskStatementFor(text: string, r: Pick<Redaction, "keepNumbers">): MaskedStatement {
  return maskStatement(text, { keepNumbers: r.keepNumbers });
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
 * depth: a jsonb column inside a row is redacted too), and SCRAM verifiers and md5 hashes masked in every
 * string left. Other non-objects come back as they are.
 * @example
 * redactRow({ id: 1, iban: "NL91...", meta: { api_token: "x" } }, { columns: ["iban", "token"], mark: "[redacted]" });
 * // { id: 1, iban: "[redacted]", meta: { api_token: "[redacted]" } }
 */
export function redactRow<T>(value: T, r: Redaction): T {
  if (typeof value === "string") return maskSecretTokens(value) as T;
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
