/**
 * The shape of a `/bisman` subcommand. Entry points (Slack, CLI) share these; a subcommand never knows
 * which one called it.
 *
 * @module
 */

import type { Invoker } from "../core/access.ts";
import type { AppDeps } from "../core/deps.ts";
import type { ParsedArgs } from "./args.ts";

export type { Block, Reply } from "../views/reply.ts";
import type { Reply } from "../views/reply.ts";

/** What a running subcommand may use. */
export interface CommandContext {
  invoker: Invoker;
  deps: AppDeps;
  /** Shows interim progress of long work (Slack edits the reply; the CLI prints a line). */
  progress?: (reply: Reply) => Promise<void>;
}

/** Who may run a subcommand: anyone in the allowed channels, or configured operators only. */
export type Access = "anyone" | "operator";

/** One `/bisman` subcommand. */
export interface Subcommand<A = unknown> {
  readonly name: string;
  readonly summary: string;
  /** e.g. `/bisman rotate <role> [target]` */
  readonly usage: string;
  readonly examples: readonly string[];
  readonly access: Access;
  /** Shown in help; destructive subcommands only ever create approval requests. */
  readonly destructive?: boolean;
  /** Answered inside the acknowledgement (no I/O beyond memory). */
  readonly instant?: boolean;
  /** Validates arguments. @throws {InvalidInput} */
  parse(args: ParsedArgs, deps: AppDeps): A;
  run(ctx: CommandContext, args: A): Promise<Reply>;
}

/** Defines a subcommand with its argument type inferred from `parse`. */
export function defineSubcommand<A>(s: Subcommand<A>): Subcommand<A> {
  return s;
}
