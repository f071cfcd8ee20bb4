/**
 * `/bisman help [subcommand]`: every subcommand with its usage line and an example.
 *
 * @module
 */

import { z } from "zod";
import { validateArgs } from "./args.ts";
import { defineSubcommand, type Subcommand } from "./types.ts";
import { renderHelp, renderHelpOne } from "../slack/render/help.ts";
import { InvalidInput } from "../core/errors.ts";

/** Builds help over the given registry (passed in to avoid an import cycle with the registry). */
export function helpCommand(all: () => readonly Subcommand<any>[]) {
  return defineSubcommand({
    name: "help",
    summary: "List the subcommands, or show one in detail",
    usage: "/bisman help [subcommand]",
    examples: ["/bisman help", "/bisman help rotate"],
    access: "anyone",
    instant: true,
    parse: (args) =>
      validateArgs(
        z.object({
          positional: z.tuple([z.string().regex(/^[a-z-]{1,40}$/, "a subcommand name")]).or(z.tuple([])),
          named: z.strictObject({}),
        }),
        args,
        "/bisman help [subcommand]",
      ),
    run: (_ctx, args) => {
      const name = args.positional[0];
      if (!name) return Promise.resolve(renderHelp(all()));
      const one = all().find((s) => s.name === name);
      if (!one) throw new InvalidInput(`No subcommand "${name}": \`/bisman help\` lists them all`);
      return Promise.resolve(renderHelpOne(one));
    },
  });
}
