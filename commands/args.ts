/**
 * Splits the text after `/bisman` into a subcommand, positional arguments and `key=value` options.
 *
 * Only the shape is checked here; each subcommand validates its own values with zod. Quotes group words
 * ("a b"), so a reason can hold spaces.
 *
 * @module
 */

import { z } from "zod";
import { type Config, resolveTargetName } from "../core/config.ts";
import { InvalidInput } from "../core/errors.ts";

/** The tokens of one command line. */
export interface ParsedArgs {
  subcommand: string;
  positional: string[];
  named: Record<string, string>;
  /** The text after the subcommand, verbatim (for free-text arguments such as a freeze reason). */
  rest: string;
}

/** Longest command text accepted; Slack itself caps slash-command text at 4,000 characters. */
export const MAX_TEXT = 4000;

/**
 * Tokenises command text.
 * @throws {InvalidInput} on unbalanced quotes, control characters or overlong text
 * @example
 * parseArgs('audit prod table=clients since=24h');
 * // { subcommand: "audit", positional: ["prod"], named: { table: "clients", since: "24h" }, rest: "prod table=clients since=24h" }
 */
export function parseArgs(text: string): ParsedArgs {
  if (text.length > MAX_TEXT) {
    throw new InvalidInput(`Command too long: ${text.length} characters, at most ${MAX_TEXT}`);
  }
  // deno-lint-ignore no-control-regex
  if (/[\u0000-\u0008\u000b-\u001f\u007f]/.test(text)) {
    throw new InvalidInput("Command contains control characters: type it as plain text");
  }
  const tokens: string[] = [];
  let cur = "";
  let quote: string | undefined;
  let inToken = false;
  for (const ch of text.replace(/[\u201c\u201d]/g, '"').replace(/[\u2018\u2019]/g, "'")) {
    if (quote) {
      if (ch === quote) quote = undefined;
      else cur += ch;
    } else if (ch === '"' || ch === "'") {
      quote = ch;
      inToken = true;
    } else if (/\s/.test(ch)) {
      if (inToken) tokens.push(cur);
      cur = "";
      inToken = false;
    } else {
      cur += ch;
      inToken = true;
    }
  }
  if (quote) throw new InvalidInput(`Unbalanced ${quote} quote: close it or remove it`);
  if (inToken) tokens.push(cur);
  const [subcommand = "", ...restTokens] = tokens;
  const positional: string[] = [];
  const named: Record<string, string> = {};
  for (const t of restTokens) {
    const m = /^([a-z_]+)=(.*)$/s.exec(t);
    if (m) {
      if (m[1] in named) throw new InvalidInput(`Option ${m[1]}= is given twice`);
      named[m[1]] = m[2];
    } else positional.push(t);
  }
  const trimmed = text.trim();
  const rest = trimmed.slice(trimmed.indexOf(subcommand) + subcommand.length).trim();
  return { subcommand: subcommand.toLowerCase(), positional, named, rest };
}

/**
 * Validates parsed arguments against a zod schema of `{ positional, named }` and turns zod's issues into
 * one readable InvalidInput that names the argument.
 */
export function validateArgs<T>(schema: z.ZodType<T>, args: ParsedArgs, usage: string): T {
  const result = schema.safeParse({ positional: args.positional, named: args.named, rest: args.rest });
  if (result.success) return result.data;
  const issue = result.error.issues[0];
  const path = issue.path;
  let where = "argument";
  if (path[0] === "positional" && typeof path[1] === "number") where = `argument ${path[1] + 1}`;
  else if (path[0] === "positional") where = "arguments";
  else if (path[0] === "named" && path[1] !== undefined) where = `option ${String(path[1])}=`;
  else if (path[0] === "named") where = "options";
  throw new InvalidInput(`Bad ${where}: ${issue.message}. Usage: \`${usage}\``);
}

/** A target name as typed: same rule as config's identifiers, so nothing odd reaches a lookup. */
export const targetArg = z.string().regex(
  /^[a-z_][a-z0-9_]{0,62}$/,
  "a target name (lower-case letters, digits, _)",
);

/** No arguments at all. */
export const noArgs = z.object({ positional: z.tuple([]), named: z.strictObject({}) });

/** An optional `[target]` as the only positional argument. */
export const optionalTarget = z.tuple([targetArg]).or(z.tuple([]));

/** `[target]`: no positional arguments but an optional target. */
export const optionalTargetOnly = z.object({
  positional: optionalTarget,
  named: z.strictObject({}),
  rest: z.string(),
});

/**
 * The target a `[target]` argument means (the only one configured when none is named), or a clear error
 * naming the configured ones (and, when none was named and `usage` is given, the usage).
 */
export function resolveTarget(config: Config, named: string | undefined, usage?: string): string {
  const target = resolveTargetName(config, named);
  if (target) return target;
  const names = Object.keys(config.targets).join(", ");
  if (!named && usage) throw new InvalidInput(`Name a target: ${usage} (configured: ${names})`);
  throw new InvalidInput(
    `${named ? `Unknown target "${named}"` : "Name a target"}: configured targets are ${names}`,
  );
}
