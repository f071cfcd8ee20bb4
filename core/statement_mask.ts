/**
 * The one masking of SQL statement text before it leaves the bot (a Slack message, a file, a log line, the
 * audit log). Statement text reaches the bot from `pg_stat_statements.query`, `pg_stat_activity.query`,
 * `audit_logs_dml.query_text`, `security_events.details.query` and pgaudit lines, and it carries whatever
 * the client wrote: `pg_stat_statements` keeps utility statements verbatim, so Vault's `rotate-root`
 * (`ALTER ROLE "v" WITH PASSWORD '<new root password>'`) and the bot's own rotations (a SCRAM verifier) sit
 * there in clear, and DML that did not use bind parameters carries its values (a card number in an INSERT).
 *
 * What {@link maskStatement} removes:
 * - every string literal, in every form PostgreSQL reads (`'...'` with doubled quotes, `E'...'` with backslash
 *   escapes, `$$...$$` and `$tag$...$tag$`, `U&'...'`, `B'...'`, `X'...'`, `N'...'`), unterminated ones (text cut short)
 *   to the end: replaced by `'?'`;
 * - every numeric literal: `?` (with `keepNumbers`, numbers of fewer than {@link LONG_NUMBER_DIGITS} digits
 *   stay; longer ones may be card or account numbers and go anyway);
 * - every comment, whose text is free-form (`/*?*\/`, `--?`);
 * - in `CREATE`/`ALTER` `ROLE`/`USER`/`GROUP`, whatever follows `PASSWORD` (a bare word or a quoted
 *   identifier in a statement PostgreSQL refused still shows in `pg_stat_activity`), except `NULL` and a
 *   bind parameter;
 * - SCRAM verifiers and md5 hashes wherever they remain ({@link maskSecretTokens}).
 * Identifiers, keywords, operators and `$n` parameters stay, so a DBA still sees the statement's shape.
 * psql's `\password` sends `ALTER USER ... PASSWORD '<verifier>'`; PostgreSQL has no `SET password`; user
 * mappings and dblink take passwords as string literals: all of these are covered by the literal rule.
 *
 * How: a scanner that follows PostgreSQL's own lexer (src/backend/parser/scan.l: quote, dollar-quote,
 * identifier and comment rules, nested block comments), not pattern matching, so a quote inside a comment,
 * a comment inside a literal or a doubled quote cannot move a literal's end. One ambiguity is left: with
 * `standard_conforming_strings = off` a backslash escapes a quote in a plain `'...'` literal, with `on` it
 * does not, and the text alone does not say which the server used. Text holding a backslash is therefore
 * scanned both ways and whatever either reading calls a literal, a comment or a password is masked.
 *
 * The result is idempotent (masking masked text changes nothing) and typed {@link MaskedStatement}: report
 * fields that carry statement text have that type, so text that skipped the mask does not type-check.
 *
 * @module
 */

declare const maskedBrand: unique symbol;
/** Statement text that went through {@link maskStatement}. */
export type MaskedStatement = string & { readonly [maskedBrand]: true };

/** Options of {@link maskStatement}. */
export interface StatementMaskOptions {
  /**
   * Keep numeric literals of fewer than {@link LONG_NUMBER_DIGITS} digits (config
   * `redaction.statement_numbers: keep`). Default false: numbers are masked too.
   */
  keepNumbers?: boolean;
}

/** What a string literal (and a password argument) becomes. */
export const MASKED_STRING = "'?'";
/** What a numeric literal becomes. */
export const MASKED_NUMBER = "?";
const MASKED_BLOCK_COMMENT = "/*?*/";
const MASKED_LINE_COMMENT = "--?";
/** Numbers with this many digits or more are masked even with `keepNumbers` (card numbers have 12-19). */
export const LONG_NUMBER_DIGITS = 12;

type TokenKind = "space" | "comment" | "string" | "number" | "param" | "ident" | "qident" | "op";
interface Token {
  kind: TokenKind;
  start: number;
  end: number;
}
interface Span {
  start: number;
  end: number;
  with: string;
}

// Character classes of scan.l. Bytes \200-\377 count as identifier characters there, so in UTF-16 every
// code unit from 0x80 up does (each byte of a multi-byte character is one of them).
const isSpace = (c: string) =>
  c === " " || c === "\t" || c === "\n" || c === "\r" || c === "\f" || c === "\v";
const isDigit = (c: string | undefined) => c !== undefined && c >= "0" && c <= "9";
const isIdentStart = (c: string | undefined) =>
  c !== undefined && ((c >= "a" && c <= "z") || (c >= "A" && c <= "Z") || c === "_" || c >= "\x80");
/** ident_cont: also digits and `$` (so `a$$b$$` is one identifier, not a dollar quote). */
const isIdentCont = (c: string | undefined) => isIdentStart(c) || isDigit(c) || c === "$";
/** dolq_cont: a dollar-quote tag is an identifier without `$`. */
const isDolqCont = (c: string | undefined) => isIdentStart(c) || isDigit(c);

/** End (exclusive) of a `'...'` literal whose opening quote is at `q`; `escapes`: backslash escapes a char. */
function quotedEnd(s: string, q: number, escapes: boolean): number {
  let j = q + 1;
  while (j < s.length) {
    const c = s[j];
    if (c === "\\" && escapes) j += 2;
    else if (c === "'") {
      if (s[j + 1] !== "'") return j + 1;
      j += 2;
    } else j++;
  }
  return s.length;
}

/** B'...' and X'...' end at the first quote (scan.l's xbinside/xhinside: `[^']*`). */
function bitStringEnd(s: string, q: number): number {
  const close = s.indexOf("'", q + 1);
  return close < 0 ? s.length : close + 1;
}

/** End of a `"..."` identifier (doubled quotes inside). */
function quotedIdentEnd(s: string, q: number): number {
  let j = q + 1;
  for (;;) {
    const close = s.indexOf('"', j);
    if (close < 0) return s.length;
    if (s[close + 1] !== '"') return close + 1;
    j = close + 2;
  }
}

/** End of a (nested) block comment starting at `i`. */
function blockCommentEnd(s: string, i: number): number {
  let depth = 0;
  let j = i;
  while (j < s.length) {
    if (s[j] === "/" && s[j + 1] === "*") {
      depth++;
      j += 2;
    } else if (s[j] === "*" && s[j + 1] === "/") {
      depth--;
      j += 2;
      if (depth === 0) return j;
    } else j++;
  }
  return s.length;
}

/** End of a `--` comment: the line's end (the newline itself is whitespace). */
function lineCommentEnd(s: string, i: number): number {
  let j = i + 2;
  while (j < s.length && s[j] !== "\n" && s[j] !== "\r") j++;
  return j;
}

/** The `$tag$` / `$$` delimiter starting at `i`, if one does (scan.l's dolqdelim). */
function dollarDelimiter(s: string, i: number): string | undefined {
  let j = i + 1;
  if (s[j] === "$") return "$$";
  if (!isIdentStart(s[j])) return undefined;
  while (isDolqCont(s[j])) j++;
  return s[j] === "$" ? s.slice(i, j + 1) : undefined;
}

/**
 * End of a numeric literal at `i`: digits (and PostgreSQL 16's `_` separators), a fraction, an exponent,
 * and any letters or digits glued on (16's `0x...`/`0o...`/`0b...`; junk PostgreSQL 15 would read as a
 * following identifier is masked with it, which only over-masks).
 */
function numberEnd(s: string, i: number): number {
  let j = i;
  while (isDigit(s[j]) || s[j] === "_") j++;
  if (s[j] === "." && s[j + 1] !== ".") {
    j++;
    while (isDigit(s[j]) || s[j] === "_") j++;
  }
  if (
    (s[j] === "e" || s[j] === "E") &&
    (isDigit(s[j + 1]) || ((s[j + 1] === "+" || s[j + 1] === "-") && isDigit(s[j + 2])))
  ) {
    j += 2;
    while (isDigit(s[j])) j++;
  }
  while (j < s.length && /[A-Za-z0-9_]/.test(s[j])) j++;
  return j;
}

/**
 * Splits `s` into tokens as PostgreSQL's lexer would. `backslashQuotes`: plain `'...'` literals take
 * backslash escapes (`standard_conforming_strings = off`).
 */
function scanSql(s: string, backslashQuotes: boolean): Token[] {
  const out: Token[] = [];
  const n = s.length;
  let i = 0;
  while (i < n) {
    const start = i;
    const c = s[i];
    const d = s[i + 1];
    let kind: TokenKind;
    if (isSpace(c)) {
      while (i < n && isSpace(s[i])) i++;
      kind = "space";
    } else if (c === "-" && d === "-") {
      i = lineCommentEnd(s, i);
      kind = "comment";
    } else if (c === "/" && d === "*") {
      i = blockCommentEnd(s, i);
      kind = "comment";
    } else if ((c === "e" || c === "E") && d === "'") {
      i = quotedEnd(s, i + 1, true);
      kind = "string";
    } else if ((c === "b" || c === "B" || c === "x" || c === "X") && d === "'") {
      i = bitStringEnd(s, i + 1);
      kind = "string";
    } else if ((c === "n" || c === "N") && d === "'") {
      // NCHAR keyword, then an ordinary literal (scan.l: yyless(1)).
      i = quotedEnd(s, i + 1, backslashQuotes);
      kind = "string";
    } else if ((c === "u" || c === "U") && d === "&" && s[i + 2] === "'") {
      i = quotedEnd(s, i + 2, false);
      kind = "string";
    } else if ((c === "u" || c === "U") && d === "&" && s[i + 2] === '"') {
      i = quotedIdentEnd(s, i + 2);
      kind = "qident";
    } else if (c === "'") {
      i = quotedEnd(s, i, backslashQuotes);
      kind = "string";
    } else if (c === '"') {
      i = quotedIdentEnd(s, i);
      kind = "qident";
    } else if (c === "$" && isDigit(d)) {
      i++;
      while (isDigit(s[i])) i++;
      kind = "param";
    } else if (c === "$" && dollarDelimiter(s, i)) {
      const delim = dollarDelimiter(s, i)!;
      const close = s.indexOf(delim, i + delim.length);
      i = close < 0 ? n : close + delim.length;
      kind = "string";
    } else if (isDigit(c) || (c === "." && isDigit(d))) {
      i = numberEnd(s, i);
      kind = "number";
    } else if (isIdentStart(c)) {
      i++;
      while (isIdentCont(s[i])) i++;
      kind = "ident";
    } else {
      i++;
      kind = "op";
    }
    out.push({ kind, start, end: i });
  }
  return out;
}

/** The spans of `s` to replace, for one reading of it. */
function spansOf(s: string, tokens: Token[], opts: StatementMaskOptions): Span[] {
  const spans: Span[] = [];
  // The first two words of the current statement decide whether PASSWORD introduces a password.
  let position = 0;
  let first = "";
  let roleStatement = false;
  let awaitingPassword = false;
  for (const t of tokens) {
    if (t.kind === "space") continue;
    const text = s.slice(t.start, t.end);
    if (t.kind === "comment") {
      spans.push({
        start: t.start,
        end: t.end,
        with: text.startsWith("--") ? MASKED_LINE_COMMENT : MASKED_BLOCK_COMMENT,
      });
      continue;
    }
    const word = t.kind === "ident" ? text.toLowerCase() : "";
    if (t.kind === "op" && text === ";") {
      position = 0;
      roleStatement = false;
      awaitingPassword = false;
      continue;
    }
    if (position === 0) first = word;
    if (position === 1) {
      roleStatement = (first === "create" || first === "alter") && ["role", "user", "group"].includes(word);
    }
    position++;
    if (t.kind === "string") {
      spans.push({ start: t.start, end: t.end, with: MASKED_STRING });
      awaitingPassword = false;
      continue;
    }
    if (awaitingPassword) {
      if (t.kind === "op") {
        // `PASSWORD = ...` is not PostgreSQL, but what follows is still the password; a list ends it.
        if (text === "," || text === ")") awaitingPassword = false;
        continue;
      }
      awaitingPassword = false;
      if (word !== "null" && t.kind !== "param") {
        spans.push({ start: t.start, end: t.end, with: MASKED_STRING });
        continue;
      }
    }
    if (t.kind === "number") {
      const digits = text.replace(/[^0-9]/g, "").length;
      if (!opts.keepNumbers || digits >= LONG_NUMBER_DIGITS) {
        spans.push({ start: t.start, end: t.end, with: MASKED_NUMBER });
      }
      continue;
    }
    if (roleStatement && word === "password") awaitingPassword = true;
  }
  return spans;
}

/** Every span of every list, overlapping ones merged; a merge of different spans becomes a string mask. */
function unionOf(...lists: Span[][]): Span[] {
  const all = lists.flat().sort((x, y) => x.start - y.start || y.end - x.end);
  const out: Span[] = [];
  for (const s of all) {
    const last = out.at(-1);
    if (last && s.start < last.end) {
      if (s.start !== last.start || s.end !== last.end || s.with !== last.with) {
        last.end = Math.max(last.end, s.end);
        last.with = MASKED_STRING;
      }
    } else out.push({ ...s });
  }
  return out;
}

function applySpans(s: string, spans: Span[]): string {
  let out = "";
  let at = 0;
  for (const sp of spans) {
    out += s.slice(at, sp.start) + sp.with;
    at = sp.end;
  }
  return out + s.slice(at);
}

/**
 * Masks the literals, comments and password arguments of SQL text, then any SCRAM verifier or md5 hash
 * left (module doc). Never throws; any text is accepted (a truncated statement, several statements,
 * something that is not SQL at all).
 * @example
 * maskStatement(`ALTER ROLE "v" WITH PASSWORD 'n3w-r00t'`); // `ALTER ROLE "v" WITH PASSWORD '?'`
 * maskStatement("insert into cards values (7, '4111 1111 1111 1111')"); // "insert into cards values (?, '?')"
 * maskStatement("select * from t where id = 42", { keepNumbers: true }); // unchanged
 */
export function maskStatement(text: string, opts: StatementMaskOptions = {}): MaskedStatement {
  const spans = unionOf(
    spansOf(text, scanSql(text, false), opts),
    text.includes("\\") ? spansOf(text, scanSql(text, true), opts) : [],
    // Found in the text as it is, not in the masked result: outside a literal (after a PASSWORD the server
    // refused, say) the scanner cuts a verifier into words and numbers, and some would stay.
    secretSpans(text),
  );
  return maskSecretTokens(applySpans(text, spans)) as MaskedStatement;
}

const SCRAM_VERIFIER = /SCRAM-SHA-256\$[A-Za-z0-9+/=:$]+/gi;
const MD5_HASH = /md5[0-9a-f]{32}/gi;
const MASKED_VERIFIER = "[redacted SCRAM verifier]";
const MASKED_MD5 = "[redacted md5 hash]";

/** Verifiers and md5 hashes in statement text, masked like the literal they should have been in. */
function secretSpans(text: string): Span[] {
  const out: Span[] = [];
  for (const re of [SCRAM_VERIFIER, MD5_HASH]) {
    for (const m of text.matchAll(re)) {
      out.push({ start: m.index, end: m.index + m[0].length, with: MASKED_STRING });
    }
  }
  return out;
}

/**
 * Replaces SCRAM-SHA-256 verifiers (`SCRAM-SHA-256$<iter>:<salt>$<StoredKey>:<ServerKey>`, or any part of
 * one) and md5 password hashes (`md5` + 32 hex digits) anywhere in free text: a verifier logs in over md5
 * directly and lets anyone run an offline guess against SCRAM, so it is as secret as the password. Used by
 * {@link maskStatement}, by row redaction and by the scrubbing of every log line and audit row.
 * @example
 * maskSecretTokens("rolpassword=md50123456789abcdef0123456789abcdef"); // "rolpassword=[redacted md5 hash]"
 */
export function maskSecretTokens(text: string): string {
  if (!/scram-sha-256\$|md5/i.test(text)) return text;
  return text.replace(SCRAM_VERIFIER, () => MASKED_VERIFIER).replace(MD5_HASH, () => MASKED_MD5);
}

/** pgaudit's markers in its STATEMENT and PARAMETER fields, which carry nothing to mask. */
const PGAUDIT_MARKERS = new Set(["<not logged>", "<none>", "<previously logged>"]);

/** Splits a CSV record (`"` quoting, `""` inside); an unterminated quoted field runs to the end. */
function csvFields(s: string): string[] {
  const fields: string[] = [];
  let i = 0;
  for (;;) {
    let value = "";
    if (s[i] === '"') {
      let j = i + 1;
      for (;;) {
        const close = s.indexOf('"', j);
        if (close < 0) {
          value += s.slice(j);
          j = s.length;
          break;
        }
        value += s.slice(j, close);
        if (s[close + 1] === '"') {
          value += '"';
          j = close + 2;
        } else {
          j = close + 1;
          break;
        }
      }
      // Anything between the closing quote and the next comma belongs to this field too.
      const comma = s.indexOf(",", j);
      value += s.slice(j, comma < 0 ? s.length : comma);
      i = comma < 0 ? s.length : comma;
    } else {
      const comma = s.indexOf(",", i);
      value = s.slice(i, comma < 0 ? s.length : comma);
      i = comma < 0 ? s.length : comma;
    }
    fields.push(value);
    if (i >= s.length) return fields;
    i++; // the comma
  }
}

function csvField(v: string): string {
  return /[",\r\n]/.test(v) ? `"${v.replaceAll('"', '""')}"` : v;
}

/**
 * Masks one pgaudit record (`... AUDIT: SESSION,1,1,ROLE,ALTER ROLE,,,<statement>,<parameter>`, the record
 * possibly spanning lines when the statement does). The statement field (CSV-quoted by pgaudit when it holds a
 * comma, quote or newline: read as SQL only after unquoting, or a literal would hide inside the CSV quotes)
 * goes through {@link maskStatement}; the parameter field (and any field after it) is bind values and is
 * replaced whole unless it is one of pgaudit's markers. pgaudit itself writes `<REDACTED>` for the password of
 * CREATE/ALTER ROLE, but not for user mappings or dblink strings (pgaudit/pgaudit#166, #201), nor for its
 * parameters. Text that is not a pgaudit record goes through {@link maskStatement} whole. The prefix
 * (log_line_prefix) is kept, with verifiers masked.
 * @example
 * maskPgauditRecord(`LOG:  AUDIT: SESSION,3,1,WRITE,INSERT,,,"insert into t values ('4111 1111')",<not logged>`);
 * // `LOG:  AUDIT: SESSION,3,1,WRITE,INSERT,,,insert into t values ('?'),<not logged>`
 */
export function maskPgauditRecord(record: string, opts: StatementMaskOptions = {}): string {
  const at = record.indexOf("AUDIT: ");
  if (at < 0) return maskStatement(record, opts);
  const head = maskSecretTokens(record.slice(0, at + "AUDIT: ".length));
  const fields = csvFields(record.slice(at + "AUDIT: ".length));
  const masked = fields.map((f, i) => {
    if (i < 7) return maskSecretTokens(f);
    if (PGAUDIT_MARKERS.has(f)) return f;
    return i === 7 ? maskStatement(f, opts) : MASKED_STRING;
  });
  return head + masked.map(csvField).join(",");
}
