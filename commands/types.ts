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
  /**
   * How many progress updates the entry takes (undefined: a few, as a response_url allows 5 posts in all; the
   * Web API message of long work takes as many as come, paced by the subcommand).
   */
  progressLimit?: number;
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
  /**
   * Whether this run may last longer than a response_url lives (30 minutes, 5 posts): then Slack reports its
   * progress and answer through the Web API, in a message in the asker's channel (slack/answers.ts), never
   * through the response_url. Its answer must be fit for that channel.
   */
  readonly long?: (args: A, deps: AppDeps) => boolean;
  /** Validates arguments. @throws {InvalidInput} */
  parse(args: ParsedArgs, deps: AppDeps): A;
  run(ctx: CommandContext, args: A): Promise<Reply>;
}

/** Defines a subcommand with its argument type inferred from `parse`. */
export function defineSubcommand<A>(s: Subcommand<A>): Subcommand<A> {
  return s;
}
