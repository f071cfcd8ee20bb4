/**
 * `/bisman help [subcommand]`: every subcommand with its usage line and an example.
 *
 * @module
 */

import { z } from "zod";
import { validateArgs } from "./args.ts";
import { defineSubcommand, type Reply, type Subcommand } from "./types.ts";
import { renderHelp, renderHelpOne } from "../views/help.ts";
import { InvalidInput } from "../core/errors.ts";

/** `[subcommand]` (built once at load: zod compiles every schema it builds, too dear per request). */
const helpArgs = z.object({
  positional: z.tuple([z.string().regex(/^[a-z-]{1,40}$/, "a subcommand name")]).or(z.tuple([])),
  named: z.strictObject({}),
});

/** Builds help over the given registry (passed in to avoid an import cycle with the registry). */
export function helpCommand(all: () => readonly Subcommand<any>[]) {
  // The full list changes only when a module registers subcommands: render it once per registry size,
  // not for every `/bisman help` (it is the most frequent command and its reply the biggest).
  let cached: { count: number; reply: Reply } | undefined;
  const fullHelp = (): Reply => {
    const list = all();
    if (cached?.count !== list.length) cached = { count: list.length, reply: renderHelp(list) };
    return cached.reply;
  };
  return defineSubcommand({
    name: "help",
    summary: "List the subcommands, or show one in detail",
    usage: "/bisman help [subcommand]",
    examples: ["/bisman help", "/bisman help rotate"],
    access: "anyone",
    instant: true,
    parse: (args) => validateArgs(helpArgs, args, "/bisman help [subcommand]"),
    run: (_ctx, args) => {
      const name = args.positional[0];
      if (!name) return Promise.resolve(fullHelp());
      const one = all().find((s) => s.name === name);
      if (!one) throw new InvalidInput(`No subcommand "${name}": \`/bisman help\` lists them all`);
      return Promise.resolve(renderHelpOne(one));
    },
  });
}
