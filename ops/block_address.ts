/**
 * Blocks a client address (the seed's "suspicious queries -> block IP").
 *
 * Where `security.manage_hba` says the bot runs beside the server, it inserts `host all all <addr> reject`
 * (with a marker comment) above every other pg_hba.conf rule, checks the file through pg_hba_file_rules,
 * reloads with pg_reload_conf(), verifies again, then terminates the sessions already open from the address.
 * Otherwise the plan gives the exact pg_hba.conf line and the Kong ip-restriction deny entry for a person
 * to apply, and the run only terminates the open sessions. Only a block the bot applied and saw in
 * pg_hba_file_rules is recorded as `address_blocked`; the other is `address_block_handed_over` (warning) and
 * its result says "handed to a person": the address is not blocked until someone applies the lines.
 * `unblock_address` undoes a managed block.
 *
 * Safety: destructive, through the approval gate. Refuses an address range containing the bot's own
 * client address, ranges wider than /8 (IPv4) or /16 (IPv6), and a configured path that is not the file the
 * server reads. A new pg_hba.conf that does not parse is put back before any reload (ops/_hba.ts).
 *
 * @module
 */

import { z } from "zod";
import { InvalidInput, StepFailed } from "../core/errors.ts";
import type { OpDeps, Operation, PlanBase, Reconciled } from "./types.ts";
import {
  asTargetError,
  clientAddress,
  describeSession,
  parseAddress,
  primaryPool,
  recordSecurityEvent,
  type SessionInfo,
  targetName,
  targetSecurity,
  type TerminateOutcome,
} from "./_security.ts";
import {
  applyHbaChange,
  blockLines,
  blockRule,
  contentHash,
  findBlocks,
  hbaChangedSincePlan,
  insertBlock,
  samePath,
  serverHbaFile,
} from "./_hba.ts";
import { sessionsOnTarget, terminateOnTarget } from "./_security.ts";
import { refuseOwnAddress } from "./terminate_client.ts";

/** Arguments: target, address, and whether to terminate its open sessions. */
export const blockAddressArgs = z.strictObject({
  target: targetName,
  address: clientAddress,
  /** Also terminate sessions already open from the address (default true). */
  terminate: z.boolean().default(true),
});
/** Validated arguments. */
export type BlockAddressArgs = z.infer<typeof blockAddressArgs>;
/** What callers may pass (defaults filled in by the schema). */
export type BlockAddressInput = z.input<typeof blockAddressArgs>;

/** The plan: the exact pg_hba.conf line and Kong entry, and the file's fingerprint when the bot edits it. */
export interface BlockAddressPlan extends PlanBase {
  target: string;
  address: string;
  /** The pg_hba.conf file the bot edits, or undefined when a person applies the lines. */
  hbaPath?: string;
  hbaLine: string;
  kongEntry: string;
  terminate: boolean;
  sessions: SessionInfo[];
  fingerprint: { hbaSha256?: string; address: string };
}

/** What the block did. */
export interface BlockAddressResult {
  target: string;
  address: string;
  /**
   * `blocked`: the bot edited pg_hba.conf, reloaded, and pg_hba_file_rules lists the reject rule first.
   * `handed_to_person`: nothing was blocked; a person must apply `manualSteps`.
   */
  outcome: "blocked" | "handed_to_person";
  /** True when the bot edited and reloaded pg_hba.conf; false when a person must apply the lines. */
  managed: boolean;
  /** The rule's line number in pg_hba.conf after the reload. */
  ruleLine?: number;
  reloadedAt?: string;
  terminated: TerminateOutcome;
  manualSteps: string[];
}

/** The Kong ip-restriction deny entry for `address` (runbook section 7). */
export function kongDenyEntry(address: string): string {
  return [
    "plugins:",
    "  - name: ip-restriction",
    "    config:",
    "      deny:",
    `        - ${address}`,
  ].join("\n");
}

/** Refuses ranges so wide that a typo would lock out whole networks. */
export function checkBreadth(address: string): void {
  const a = parseAddress(address)!;
  if ((a.family === 4 && a.prefix < 8) || (a.family === 6 && a.prefix < 16)) {
    throw new InvalidInput(
      `Refusing to block ${address}: ranges wider than /${
        a.family === 4 ? 8 : 16
      } are for a person to edit by hand`,
    );
  }
}

/** The managed pg_hba.conf path after checking it is the file the server reads. */
export async function managedHbaPath(deps: OpDeps, target: string): Promise<string | undefined> {
  const sec = targetSecurity(deps, target);
  if (!sec.manage_hba) return undefined;
  const sql = await primaryPool(deps, target);
  const server = await serverHbaFile(sql);
  if (!(await samePath(sec.manage_hba.path, server))) {
    throw new InvalidInput(
      `targets.${target}.security.manage_hba.path is ${sec.manage_hba.path}, but the server reads ${server}: fix the config`,
    );
  }
  return sec.manage_hba.path;
}

async function planBlock(input: BlockAddressInput, deps: OpDeps): Promise<BlockAddressPlan> {
  const args = blockAddressArgs.parse(input);
  checkBreadth(args.address);
  await refuseOwnAddress(deps, args.target, args.address, "block");
  const address = parseAddress(args.address)!;
  const path = await managedHbaPath(deps, args.target);
  let hbaSha256: string | undefined;
  if (path) {
    const content = await Deno.readTextFile(path);
    if (findBlocks(content).some((b) => b.address === address.text)) {
      throw new InvalidInput(`${address.text} is already blocked in ${path}`);
    }
    hbaSha256 = await contentHash(content);
  }
  const sessions = args.terminate ? await sessionsOnTarget(deps, args.target, { address: address.text }) : [];
  const hbaLine = blockRule(address);
  const kongEntry = kongDenyEntry(address.text);
  const replicas = deps.targets.members(args.target).filter((m) => m.role === "replica");
  const steps = path
    ? [
      `Insert above every rule of ${path}:\n${hbaLine}`,
      "Check the file through pg_hba_file_rules (put the old file back if it does not parse)",
      "SELECT pg_reload_conf(), wait for the reload, verify the rule is loaded first",
    ]
    : [
      `A person adds above every rule of the server's pg_hba.conf, then runs SELECT pg_reload_conf():\n${hbaLine}`,
      `A person adds to Kong's ip-restriction plugin:\n${kongEntry}`,
    ];
  if (args.terminate) {
    steps.push(
      `Terminate the sessions open from ${address.text} (now ${sessions.length}${
        sessions.length ? `: ${sessions.slice(0, 5).map(describeSession).join("; ")}` : ""
      })`,
    );
  }
  steps.push("Record address_blocked in security_events");
  const warnings: string[] = [];
  if (!path) {
    warnings.push(
      "The bot does not manage this server's pg_hba.conf: the block takes effect once a person applies it",
    );
  }
  if (path && replicas.length) {
    warnings.push(
      `Only the primary's pg_hba.conf is edited: add the line on ${
        replicas.map((r) => r.name).join(", ")
      } too`,
    );
  }
  if (path) warnings.push(`Also deny it at the gateway (Kong ip-restriction):\n${kongEntry}`);
  return {
    summary: `Block ${address.text} on ${args.target}${
      path ? ` (pg_hba.conf reject line, reload)` : " (lines for a person to apply)"
    }`,
    target: args.target,
    address: address.text,
    hbaPath: path,
    hbaLine,
    kongEntry,
    terminate: args.terminate,
    sessions,
    steps,
    fingerprint: { hbaSha256, address: address.text },
    warnings,
  };
}

/** The operation. */
export const blockAddress: Operation<BlockAddressInput, BlockAddressPlan, BlockAddressResult> = {
  name: "block_address",
  destructive: true,
  args: blockAddressArgs,
  plan: planBlock,
  revalidate: hbaChangedSincePlan,
  async run(plan, deps) {
    const m = deps.targets.member(plan.target, "primary");
    const address = parseAddress(plan.address)!;
    let ruleLine: number | undefined;
    let reloadedAt: string | undefined;
    if (plan.hbaPath) {
      let inserted = 0;
      try {
        const sql = await primaryPool(deps, plan.target);
        const r = await applyHbaChange(sql, plan.hbaPath, (current) => {
          const next = insertBlock(current, blockLines(address, { actor: deps.actor, at: deps.now() }));
          inserted = next.ruleLine;
          return next.content;
        }, { expectedHash: plan.fingerprint.hbaSha256 });
        reloadedAt = r.reloadedAt;
        // The server must now list the reject rule first, where it was inserted.
        const first = r.rules[0];
        if (!first || first.line !== inserted || first.auth !== "reject") {
          throw new StepFailed(
            "hba.verify",
            `pg_hba_file_rules does not show the reject rule for ${plan.address} first (line ${inserted}): check ${plan.hbaPath}`,
          );
        }
        ruleLine = first.line;
      } catch (err) {
        throw asTargetError(m, err, `block ${plan.address}`);
      }
    }
    const terminated = plan.terminate
      ? await terminateOnTarget(
        deps,
        plan.target,
        await sessionsOnTarget(deps, plan.target, { address: plan.address }),
      )
      : { terminated: [], failed: [] };
    // Only what the bot applied and saw in pg_hba_file_rules is a block; lines handed over are not one yet.
    const blocked = !!plan.hbaPath && ruleLine !== undefined;
    await recordSecurityEvent(await primaryPool(deps, plan.target), deps, {
      eventType: blocked ? "address_blocked" : "address_block_handed_over",
      severity: blocked ? "critical" : "warning",
      targetAddress: plan.address,
      details: {
        managed: !!plan.hbaPath,
        hba_file: plan.hbaPath ?? null,
        hba_line: plan.hbaLine,
        rule_line: ruleLine ?? null,
        kong_deny: plan.address,
        terminated: terminated.terminated,
        failed: terminated.failed,
      },
    });
    return {
      target: plan.target,
      address: plan.address,
      outcome: blocked ? "blocked" : "handed_to_person",
      managed: !!plan.hbaPath,
      ruleLine,
      reloadedAt,
      terminated,
      manualSteps: plan.hbaPath ? [plan.kongEntry] : [plan.hbaLine, plan.kongEntry],
    };
  },
  async reconcile(plan): Promise<Reconciled<BlockAddressResult>> {
    if (!plan.hbaPath) {
      return { status: "needs_human", note: "The block is applied by a person: check pg_hba.conf and Kong" };
    }
    const content = await Deno.readTextFile(plan.hbaPath);
    if (!findBlocks(content).some((b) => b.address === plan.address)) {
      return { status: "not_done", note: `${plan.hbaPath} has no block line for ${plan.address}` };
    }
    return {
      status: "needs_human",
      note: `${plan.hbaPath} has the block line for ${plan.address}, but the reload may not have run: ` +
        "run SELECT pg_reload_conf() and check pg_hba_file_rules",
    };
  },
  describeResult: (r) =>
    r.managed
      ? `${r.address} blocked (pg_hba.conf line ${
        r.ruleLine ?? "?"
      }, reloaded); ${r.terminated.terminated.length} session(s) terminated`
      : `${r.address} is NOT blocked yet: handed to a person, who must add the pg_hba.conf line (then ` +
        `SELECT pg_reload_conf()) and the Kong deny entry shown in the plan; until then new connections from ` +
        `it are accepted. ${r.terminated.terminated.length} open session(s) terminated`,
};
