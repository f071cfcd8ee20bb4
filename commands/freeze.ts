/**
 * `/bisman freeze <reason>` stops every destructive action at once (operators; immediate, audited);
 * `/bisman unfreeze` lifts it through the approval gate. The freeze shows in `/bisman status`.
 *
 * @module
 */

import { z } from "zod";
import { noArgs, validateArgs } from "./args.ts";
import { defineSubcommand } from "./types.ts";
import { registerStatusLine } from "./status.ts";
import { describeFreeze } from "../gate/hooks.ts";
import { readFreeze } from "../gate/store.ts";
import { NotConfigured } from "../core/errors.ts";
import type { AppDeps } from "../core/deps.ts";
import type { ApprovalGate } from "../gate/gate.ts";
import { mrkdwnSection } from "../views/blocks.ts";
import { renderRequestCreated } from "../views/approval.ts";

const FREEZE_USAGE = "/bisman freeze <reason>";

/** The gate with its freeze switch (bot.ts always builds an ApprovalGate). */
function gateOf(deps: AppDeps): ApprovalGate {
  const gate = deps.gate as ApprovalGate | undefined;
  if (!gate || typeof gate.freeze !== "function") {
    throw new NotConfigured("The approval gate is not running in this process: freeze from the bot");
  }
  return gate;
}

/** `<reason...>` (built once at load: zod compiles every schema it builds, too dear per request). */
const freezeArgs = z.object({
  positional: z.array(z.string()).min(1, "give a reason"),
  named: z.record(z.string(), z.string()),
  rest: z.string().trim().min(3, "give a reason of at least 3 characters").max(500, "at most 500 characters"),
});

export const freezeCommand = defineSubcommand({
  name: "freeze",
  summary: "Stop every destructive action at once: new requests are refused, pending ones cannot be approved",
  usage: FREEZE_USAGE,
  examples: ['/bisman freeze "incident 42: replica lag, hands off"', "/bisman freeze migration window"],
  access: "operator",
  parse: (args) => validateArgs(freezeArgs, args, FREEZE_USAGE).rest.trim().replace(/^(["'])(.*)\1$/s, "$2"),
  run: async (ctx, reason) => {
    const { changed, state } = await gateOf(ctx.deps).freeze(ctx.invoker, reason);
    const text = changed
      ? `:ice_cube: ${
        describeFreeze(state)
      }. New destructive requests are refused and pending ones cannot be ` +
        "approved; `/bisman unfreeze` lifts it (needs approval)."
      : `:ice_cube: Already frozen: ${describeFreeze(state)}. The first freeze and its reason stay; ` +
        "`/bisman unfreeze` lifts it (needs approval).";
    return { text, blocks: [mrkdwnSection(text)], visibility: changed ? "in_channel" : "ephemeral" };
  },
});

export const unfreezeCommand = defineSubcommand({
  name: "unfreeze",
  summary: "Lift the freeze on destructive actions (through the approval gate)",
  usage: "/bisman unfreeze",
  examples: ["/bisman unfreeze"],
  access: "operator",
  destructive: true,
  parse: (args) => validateArgs(noArgs, args, "/bisman unfreeze"),
  run: async (ctx) =>
    renderRequestCreated(
      await ctx.deps.gate!.request({ action: "unfreeze", args: {}, invoker: ctx.invoker }),
    ),
});

/** The freeze line of `/bisman status` (and the digest): shown only while frozen. */
export async function freezeStatusLine(deps: AppDeps): Promise<string | undefined> {
  const f = await readFreeze(deps.state);
  return f.frozen ? `:ice_cube: ${describeFreeze(f)}` : undefined;
}

registerStatusLine(freezeStatusLine);
