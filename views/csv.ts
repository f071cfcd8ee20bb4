/**
 * CSV for the files the bot sends (audit search, audit-log export): RFC 4180, safe to open in a spreadsheet.
 *
 * @module
 */

/**
 * A CSV field: quoted when it holds a comma, quote, newline or leading space; quotes doubled (RFC 4180).
 * Fields that a spreadsheet would run as a formula (`=`, `+`, `-`, `@` first) get a leading apostrophe.
 * @example
 * csvField('say "hi", bob'); // '"say ""hi"", bob"'
 */
export function csvField(v: unknown): string {
  let s = v === null || v === undefined ? "" : typeof v === "object" ? JSON.stringify(v) : String(v);
  if (/^[=+\-@\t\r]/.test(s)) s = `'${s}`;
  return /[",\n\r]|^\s/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

/** Rows as CSV with a header line (CRLF line ends, as RFC 4180 says). */
export function toCsv(header: string[], rows: unknown[][]): string {
  return [header, ...rows].map((r) => r.map(csvField).join(",")).join("\r\n") + "\r\n";
}
