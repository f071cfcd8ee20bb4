/**
 * `/bisman cancel <id>`: withdraws a pending approval request (the approval message's Cancel button does
 * the same), or stops a running one whose operation can stop safely (the message's Stop button). The
 * requester may cancel their own; operators anyone's. `/bisman cancel restore-test [target]` stops the
 * restore test running for a target that was started without approval.
 *
 * @module
 */

import { z } from "zod";
import { targetArg, validateArgs } from "./args.ts";
import { defineSubcommand, type Reply } from "./types.ts";
import { InvalidInput, NotConfigured, NotPermitted, OpsError } from "../core/errors.ts";
import { actorOf, requireOperator } from "../core/access.ts";
import { resolveTargetName } from "../core/config.ts";
import type { Decision } from "../gate/gate.ts";
import { requestRestoreStop } from "../ops/restore_history.ts";
import { mrkdwnSection } from "../views/blocks.ts";

const USAGE = "/bisman cancel <request id> | /bisman cancel restore-test [target]";

const schema = z.object({
  positional: z.union([
    z.tuple([
      z.string().regex(/^#?[1-9][0-9]{0,9}$/, "a request number such as 12").transform((s) =>
        Number(s.replace("#", ""))
      ),
    ]),
    z.tuple([z.literal("restore-test")]),
    z.tuple([z.literal("restore-test"), targetArg]),
  ]),
  named: z.strictObject({}),
  rest: z.string(),
});

/** What the gate's cancel needs (gate/gate.ts `ApprovalGate.cancel`). */
interface Canceller {
  cancel(id: number, inv: import("../core/access.ts").Invoker): Promise<Decision>;
}

function reply(text: string): Reply {
  return { text, blocks: [mrkdwnSection(text)], visibility: "ephemeral" };
}

export const cancelCommand = defineSubcommand({
  name: "cancel",
  summary: "Withdraw a pending request, or stop a running one that can stop safely (a restore test)",
  usage: USAGE,
  examples: ["/bisman cancel 12", "/bisman cancel restore-test prod"],
  access: "anyone",
  parse: (args, deps) => {
    const a = validateArgs(schema, args, USAGE);
    const [first, second] = a.positional;
    if (first !== "restore-test") return { kind: "request" as const, id: first as number };
    const target = resolveTargetName(deps.config, second as string | undefined);
    if (!target) {
      throw new InvalidInput(
        `Name a target: ${USAGE} (configured: ${Object.keys(deps.config.targets).join(", ")})`,
      );
    }
    return { kind: "restore" as const, target };
  },
  run: async (ctx, args) => {
    const { deps, invoker } = ctx;
    if (args.kind === "restore") {
      // Stopping a restore test started without approval is an operator's call, as starting it was.
      await requireOperator(deps.config, invoker, deps.groupMembers, "Stopping a restore test");
      const run = await requestRestoreStop(deps.state, args.target, actorOf(invoker), deps.now());
      if (!run) {
        throw new OpsError("conflict", `No restore test of ${args.target} is running: nothing to stop`);
      }
      await deps.audit.append({
        actor: actorOf(invoker),
        actorName: invoker.userName,
        action: "restore_test.stop_requested",
        target: args.target,
        outcome: "ok",
        details: { run },
      });
      return reply(
        `:octagonal_sign: Stopping restore test run ${run} of ${args.target}: pg_restore is stopped and the ` +
          `scratch database dropped; its result is recorded as cancelled`,
      );
    }
    const gate = deps.gate as unknown as Partial<Canceller> | undefined;
    if (!gate?.cancel) throw new NotConfigured("The approval gate is not running in this process");
    const d = await gate.cancel(args.id, invoker);
    if (d.status === "refused") {
      if (d.code === "not_permitted") throw new NotPermitted(d.message);
      throw new OpsError(d.code, d.message);
    }
    return reply(
      d.status === "done" && d.state === "running"
        ? `:octagonal_sign: ${d.message}: it stops at a safe point and cleans up`
        : `:heavy_multiplication_x: ${d.message}`,
    );
  },
});
