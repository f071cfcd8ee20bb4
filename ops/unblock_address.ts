/**
 * Undoes `block_address`: removes the bot's marked reject line for the address from pg_hba.conf (checked,
 * reloaded, verified as for block) where the bot manages the file, or hands a person the lines to remove;
 * records `address_unblocked` in security_events. Lines a person added by hand are never touched.
 *
 * @module
 */

import { z } from "zod";
import { InvalidInput } from "../core/errors.ts";
import type { OpDeps, Operation, PlanBase, Reconciled } from "./types.ts";
import {
  asTargetError,
  clientAddress,
  parseAddress,
  primaryPool,
  recordSecurityEvent,
  targetName,
} from "./_security.ts";
import {
  applyHbaChange,
  blockRule,
  contentHash,
  findBlocks,
  hbaChangedSincePlan,
  removeBlock,
} from "./_hba.ts";
import { kongDenyEntry, managedHbaPath } from "./block_address.ts";

/** Arguments: target and address. */
export const unblockAddressArgs = z.strictObject({ target: targetName, address: clientAddress });
/** Validated arguments. */
export type UnblockAddressArgs = z.infer<typeof unblockAddressArgs>;

/** The plan: the bot's block lines that will go. */
export interface UnblockAddressPlan extends PlanBase {
  target: string;
  address: string;
  hbaPath?: string;
  /** The marker comments of the lines that will go. */
  blocks: string[];
  fingerprint: { hbaSha256?: string; address: string };
}

/** What the unblock did. */
export interface UnblockAddressResult {
  target: string;
  address: string;
  managed: boolean;
  removed: number;
  reloadedAt?: string;
  manualSteps: string[];
}

async function planUnblock(input: UnblockAddressArgs, deps: OpDeps): Promise<UnblockAddressPlan> {
  const args = unblockAddressArgs.parse(input);
  const address = parseAddress(args.address)!;
  const path = await managedHbaPath(deps, args.target);
  const kong = kongDenyEntry(address.text);
  if (!path) {
    return {
      summary: `Unblock ${address.text} on ${args.target} (lines for a person to remove)`,
      target: args.target,
      address: address.text,
      blocks: [],
      steps: [
        `A person removes from the server's pg_hba.conf, then runs SELECT pg_reload_conf():\n${
          blockRule(address)
        }`,
        `A person removes ${address.text} from the deny list of Kong's ip-restriction plugin:\n${kong}`,
        "Record address_unblocked in security_events",
      ],
      fingerprint: { address: address.text },
      warnings: ["The bot does not manage this server's pg_hba.conf"],
    };
  }
  const content = await Deno.readTextFile(path);
  const blocks = findBlocks(content).filter((b) => b.address === address.text);
  if (!blocks.length) {
    throw new InvalidInput(`${address.text} is not blocked by the bot in ${path}: nothing to remove`);
  }
  return {
    summary: `Unblock ${address.text} on ${args.target} (remove the bot's reject line, reload)`,
    target: args.target,
    address: address.text,
    hbaPath: path,
    blocks: blocks.map((b) => b.comment),
    steps: [
      `Remove from ${path} (lines ${blocks.map((b) => `${b.markerLine}-${b.markerLine + 1}`).join(", ")}):\n${
        blocks.map((b) => `${b.comment}\n${blockRule(address)}`).join("\n")
      }`,
      "Check the file through pg_hba_file_rules (put the old file back if it does not parse)",
      "SELECT pg_reload_conf(), wait for the reload",
      "Record address_unblocked in security_events",
    ],
    fingerprint: { hbaSha256: await contentHash(content), address: address.text },
    warnings: [`Remove ${address.text} from Kong's ip-restriction deny list too, if it was added there`],
  };
}

/** The operation. */
export const unblockAddress: Operation<UnblockAddressArgs, UnblockAddressPlan, UnblockAddressResult> = {
  name: "unblock_address",
  destructive: true,
  args: unblockAddressArgs,
  plan: planUnblock,
  revalidate: hbaChangedSincePlan,
  async run(plan, deps) {
    const m = deps.targets.member(plan.target, "primary");
    const address = parseAddress(plan.address)!;
    let removed = 0;
    let reloadedAt: string | undefined;
    if (plan.hbaPath) {
      try {
        const sql = await primaryPool(deps, plan.target);
        const r = await applyHbaChange(sql, plan.hbaPath, (current) => {
          const next = removeBlock(current, address);
          removed = next.removed;
          return next.content;
        }, { expectedHash: plan.fingerprint.hbaSha256 });
        reloadedAt = r.reloadedAt;
      } catch (err) {
        throw asTargetError(m, err, `unblock ${plan.address}`);
      }
    }
    await recordSecurityEvent(await primaryPool(deps, plan.target), deps, {
      eventType: "address_unblocked",
      severity: "warning",
      targetAddress: plan.address,
      details: { managed: !!plan.hbaPath, hba_file: plan.hbaPath ?? null, removed, blocks: plan.blocks },
    });
    return {
      target: plan.target,
      address: plan.address,
      managed: !!plan.hbaPath,
      removed,
      reloadedAt,
      manualSteps: plan.hbaPath ? [] : plan.steps.slice(0, 2),
    };
  },
  async reconcile(plan): Promise<Reconciled<UnblockAddressResult>> {
    if (!plan.hbaPath) return { status: "needs_human", note: "The unblock is applied by a person" };
    const content = await Deno.readTextFile(plan.hbaPath);
    if (findBlocks(content).some((b) => b.address === plan.address)) {
      return { status: "not_done", note: `${plan.hbaPath} still has the block line for ${plan.address}` };
    }
    return {
      status: "needs_human",
      note:
        `The block line is gone from ${plan.hbaPath}, but the reload may not have run: run SELECT pg_reload_conf()`,
    };
  },
  describeResult: (r) =>
    r.managed
      ? `${r.address} unblocked (${r.removed} line pair removed, reloaded)`
      : `${r.address}: lines handed to a person`,
};
