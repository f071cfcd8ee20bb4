/**
 * The CLI's own subcommands over approval requests: `approve <id>`, `deny <id> <reason>`, `cancel <id>`,
 * `requests` (open ones) and `request <id>` (one in full). In Slack these are the approval message's
 * buttons; the bot runs them for the CLI (cli/inbox.ts) through the same gate calls, so the same rules hold:
 * an eligible approver, never the requester, the policy's number of approvals, typed confirmation where the
 * policy asks for it, and the hash of the plan the approver was shown (`--plan`, or the plan the CLI showed
 * and the person confirmed). The run happens in the bot, once the request is claimed.
 *
 * @module
 */

import { z } from "zod";
import type { Invoker } from "../core/access.ts";
import type { ApprovalGate, Decision, RequestView } from "../gate/gate.ts";
import { ALL_STATES, listRequests, OPEN_STATES } from "../gate/store.ts";
import type { AppDeps } from "../core/deps.ts";
import { type ErrorCode, InvalidInput } from "../core/errors.ts";
import { type ParsedArgs, validateArgs } from "./args.ts";

/** Exit codes scripts can rely on. */
export const EXIT = { ok: 0, failed: 1, refused: 2, notPermitted: 3 } as const;

/** The exit code for an error code: 3 not permitted, 2 bad usage or refused, 1 failed. */
export function exitCodeOf(code: ErrorCode): number {
  switch (code) {
    case "not_permitted":
      return EXIT.notPermitted;
    case "invalid_input":
    case "unknown_subcommand":
    case "approval_closed":
    case "frozen":
    case "state_changed":
    case "conflict":
      return EXIT.refused;
    default:
      return EXIT.failed;
  }
}

/** The options a CLI command carries besides its text (checked again here: anyone may call cli_submit). */
export const cliOptions = z.object({
  /** approve: the hash of the plan the person was shown. */
  planHash: z.string().regex(/^[0-9a-f]{12,64}$/, "a plan hash as the plan shows it").optional(),
  /** approve: the typed confirmation some policies ask for. */
  typed: z.string().max(200).optional(),
  /** How long the CLI waits for a bot to take the command (read by cli_submit). */
  wait_seconds: z.number().optional(),
  /** The person's signature of the command, and when they signed it (core/cli_signature.ts). */
  sig: z.string().max(200).optional(),
  signed_at: z.string().max(40).optional(),
});
export type CliOptions = z.infer<typeof cliOptions>;

/** What one CLI subcommand produced. */
export interface CliOutcome {
  text: string;
  exit: number;
  json: Record<string, unknown>;
}

/** Whether `name` is one of the CLI's request subcommands (own keys only: not "constructor" and the like). */
export function isRequestCommand(name: string): boolean {
  return Object.hasOwn(CLI_REQUEST_COMMANDS, name);
}

/** Names of the CLI-only subcommands, with their usage. */
export const CLI_REQUEST_COMMANDS: Record<string, { usage: string; summary: string }> = {
  approve: {
    usage: "approve <id> [--plan <hash>] [--confirm <text>]",
    summary: "Approve request <id> (not your own) after seeing its plan; the bot runs it once enough agreed",
  },
  deny: { usage: "deny <id> <reason>", summary: "Deny request <id> with a reason" },
  cancel: { usage: "cancel <id>", summary: "Withdraw a pending request (yours, or any as an operator)" },
  requests: { usage: "requests [all]", summary: "Open approval requests (or the last 20 of any state)" },
  request: { usage: "request <id>", summary: "One request in full: plan, approvals, state, result" },
};

const idArg = z.string().regex(/^[1-9][0-9]{0,17}$/, "a request number such as 12").transform(Number);
const idOnly = z.object({ positional: z.tuple([idArg]), named: z.strictObject({}) });
const idAndReason = z.object({ positional: z.tuple([idArg]).rest(z.string()), named: z.strictObject({}) });
const allOrNone = z.object({
  positional: z.tuple([z.literal("all")]).or(z.tuple([])),
  named: z.strictObject({}),
});

function time(d: Date | null | undefined): string {
  return d ? new Date(d).toISOString().replace("T", " ").slice(0, 19) + " UTC" : "-";
}

/** A request as plain text: what the approval message says, without Block Kit. */
export function describeRequest(view: RequestView): string {
  const r = view.request;
  const lines = [
    `Request #${r.id}: ${r.action}${r.target ? ` on ${r.target}` : ""} (${r.state})`,
    `  ${r.plan.summary}`,
    `  requested by ${r.requester_name ?? r.requester_id} via ${r.via} at ${time(r.created_at)}; ` +
    `expires ${time(r.expires_at)}`,
    `  plan ${r.plan_hash}; approvals ${view.approvals.length} of ${r.approvals_needed}` +
    (view.approvals.length
      ? ` (${view.approvals.map((a) => a.approver_name ?? a.approver).join(", ")})`
      : ""),
  ];
  if (r.plan.steps?.length) {
    lines.push("  Steps:", ...r.plan.steps.map((s, i) => `    ${i + 1}. ${s}`));
  }
  for (const w of [...(r.plan.warnings ?? []), ...(r.notes ?? [])]) lines.push(`  ! ${w}`);
  if (r.deny_reason) lines.push(`  denied by ${r.decided_by_name ?? r.decided_by}: ${r.deny_reason}`);
  if (r.summary) lines.push(`  result: ${r.summary}`);
  if (r.error) lines.push(`  error: ${r.error}`);
  if (r.reconcile) lines.push(`  reconcile: ${r.reconcile.status}: ${r.reconcile.note}`);
  return lines.join("\n");
}

function requestJson(view: RequestView): Record<string, unknown> {
  const r = view.request;
  return {
    id: r.id,
    action: r.action,
    target: r.target,
    state: r.state,
    summary: r.plan.summary,
    steps: r.plan.steps,
    warnings: r.plan.warnings ?? [],
    plan_hash: r.plan_hash,
    requester: r.requester_name ?? r.requester_id,
    via: r.via,
    approvals: view.approvals.map((a) => a.approver_name ?? a.approver),
    approvals_needed: r.approvals_needed,
    expires_at: r.expires_at,
    result: r.summary,
    error: r.error,
  };
}

function decisionOutcome(d: Decision, view: RequestView | undefined): CliOutcome {
  if (d.status === "refused") {
    return {
      text: d.message,
      exit: exitCodeOf(d.code),
      json: { ok: false, code: d.code, error: d.message, ...(view ? { request: requestJson(view) } : {}) },
    };
  }
  if (d.status === "confirm") {
    return {
      text: `${d.message}: run again with --confirm ${d.expected}`,
      exit: EXIT.refused,
      json: { ok: false, code: "confirmation_needed", expected: d.expected, error: d.message },
    };
  }
  const failed = d.state === "failed" || d.state === "stale" || d.state === "interrupted";
  return {
    text: view ? `${d.message}\n${describeRequest(view)}` : d.message,
    exit: failed ? EXIT.failed : EXIT.ok,
    json: {
      ok: !failed,
      message: d.message,
      state: d.state,
      ...(view ? { request: requestJson(view) } : {}),
    },
  };
}

/**
 * Runs one CLI-only request subcommand.
 * @throws {InvalidInput} on bad arguments (the caller turns it into exit code 2)
 */
export async function runRequestCommand(
  parsed: ParsedArgs,
  inv: Invoker,
  deps: AppDeps,
  gate: ApprovalGate,
  options: CliOptions,
): Promise<CliOutcome> {
  const name = parsed.subcommand;
  const usage = `deno task ops ${isRequestCommand(name) ? CLI_REQUEST_COMMANDS[name].usage : name}`;
  switch (name) {
    case "approve": {
      const a = validateArgs(
        idOnly,
        parsed,
        usage,
      );
      const id = a.positional[0];
      // What runs must be what this person was shown: the CLI sends the hash of the plan it displayed.
      if (!options.planHash) {
        throw new InvalidInput(
          `An approval names the plan it approves: \`deno task ops approve ${id}\` shows the plan and asks, ` +
            `or pass the hash you were shown with --plan <hash>`,
        );
      }
      const d = await gate.approve(id, inv, {
        planHash: options.planHash,
        ...(options.typed !== undefined ? { typed: options.typed } : {}),
      });
      return decisionOutcome(d, await gate.view(id));
    }
    case "deny": {
      const a = validateArgs(
        idAndReason,
        parsed,
        usage,
      );
      const reason = a.positional.slice(1).join(" ").trim();
      if (!reason) throw new InvalidInput(`A denial needs a reason. Usage: \`${usage}\``);
      const id = a.positional[0];
      return decisionOutcome(await gate.deny(id, inv, reason), await gate.view(id));
    }
    case "cancel": {
      const a = validateArgs(
        idOnly,
        parsed,
        usage,
      );
      const id = a.positional[0];
      return decisionOutcome(await gate.cancel(id, inv), await gate.view(id));
    }
    case "request": {
      const a = validateArgs(
        idOnly,
        parsed,
        usage,
      );
      const view = await gate.view(a.positional[0]);
      if (!view) throw new InvalidInput(`There is no request #${a.positional[0]}`);
      return { text: describeRequest(view), exit: EXIT.ok, json: { ok: true, request: requestJson(view) } };
    }
    case "requests": {
      const a = validateArgs(
        allOrNone,
        parsed,
        usage,
      );
      const all = a.positional[0] === "all";
      const rows = await listRequests(
        deps.state,
        all ? ALL_STATES : OPEN_STATES,
        all ? 20 : 100,
      );
      const views: RequestView[] = [];
      for (const r of rows) {
        const v = await gate.view(r.id);
        if (v) views.push(v);
      }
      const text = views.length
        ? views.map(describeRequest).join("\n\n")
        : all
        ? "No requests yet."
        : "No open requests.";
      return { text, exit: EXIT.ok, json: { ok: true, requests: views.map(requestJson) } };
    }
    default:
      throw new InvalidInput(`Unknown CLI subcommand "${name}"`);
  }
}
