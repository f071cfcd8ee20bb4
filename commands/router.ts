/**
 * Turns `/bisman <text>` into a checked call of one subcommand: parse, find, authorise, validate, run.
 * Shared by Slack and the CLI; it returns a Reply and never talks to Slack itself.
 *
 * @module
 */

import type { AppDeps } from "../core/deps.ts";
import { actorOf, checkChannel, checkWorkspace, type Invoker, requireOperator } from "../core/access.ts";
import { asOpsError, OpsError } from "../core/errors.ts";
import { parseArgs, type ParsedArgs } from "./args.ts";
import { allSubcommands } from "./registry.ts";
import type { CommandContext, Reply, Subcommand } from "./types.ts";
import { renderError } from "../views/error.ts";

/** A command that passed the checks that need no I/O, ready to run. */
export interface PreparedCommand {
  sub: Subcommand<any>;
  args: unknown;
  parsed: ParsedArgs;
}

/** Edit distance, for "did you mean". */
function distance(a: string, b: string): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) => [i, ...Array(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) d[0][j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
  }
  return d[a.length][b.length];
}

/** Finds the subcommand; unknown names get the closest known one and a pointer to help. */
export function findSubcommand(name: string): Subcommand<any> {
  const all = allSubcommands();
  const hit = all.find((s) => s.name === name);
  if (hit) return hit;
  const shown = name.length > 40 ? `${name.slice(0, 40)}\u2026` : name;
  const best = all.map((s) => ({ s, d: distance(name, s.name) })).sort((a, b) => a.d - b.d)[0];
  const hint = best && best.d <= Math.max(2, Math.floor(name.length / 3))
    ? ` Did you mean \`/bisman ${best.s.name}\`?`
    : "";
  throw new OpsError(
    "unknown_subcommand",
    `Unknown subcommand "${shown}".${hint} \`/bisman help\` lists them all.`,
  );
}

/**
 * Checks that need no network: workspace, channel, subcommand, arguments.
 * @throws {OpsError} with a message for the asker
 */
export function prepareCommand(text: string, inv: Invoker, deps: AppDeps): PreparedCommand {
  checkWorkspace(deps.config, inv);
  const parsed = parseArgs(text);
  if (!parsed.subcommand) parsed.subcommand = "help";
  const sub = findSubcommand(parsed.subcommand);
  if (sub.name !== "help") checkChannel(deps.config, inv);
  const args = sub.parse(parsed, deps);
  return { sub, args, parsed };
}

/**
 * Whether the asker may run a prepared command (operators only, for operator and destructive subcommands; may
 * call Slack for group membership).
 * @throws {OpsError} not_permitted
 */
export async function authorizePrepared(p: PreparedCommand, inv: Invoker, deps: AppDeps): Promise<void> {
  if (p.sub.access === "operator" || p.sub.destructive) {
    await requireOperator(deps.config, inv, deps.groupMembers, `\`/bisman ${p.sub.name}\``);
  }
}

/** Runs a prepared command: operator check (may call Slack for groups), audit, then the subcommand. */
export async function runPrepared(
  p: PreparedCommand,
  inv: Invoker,
  deps: AppDeps,
  progress?: CommandContext["progress"],
  opts: { progressLimit?: number } = {},
): Promise<Reply> {
  await authorizePrepared(p, inv, deps);
  const started = performance.now();
  try {
    const reply = await p.sub.run(
      { invoker: inv, deps, progress, progressLimit: opts.progressLimit },
      p.args,
    );
    deps.metrics.inc(
      "bisman_commands_total",
      { subcommand: p.sub.name, outcome: "ok" },
      1,
      "Subcommands run",
    );
    return reply;
  } finally {
    deps.metrics.observe(
      "bisman_command_seconds",
      { subcommand: p.sub.name },
      (performance.now() - started) / 1000,
      "Time to answer a subcommand (after the ack)",
    );
  }
}

/** Records a received command in the audit log; a failing audit write is logged, never shown as the command's error. */
export async function auditCommand(
  deps: AppDeps,
  inv: Invoker,
  text: string,
  outcome: "ok" | "refused" | "failed",
  error?: OpsError,
): Promise<void> {
  const sub = text.trim().split(/\s+/)[0] ?? "";
  try {
    await deps.audit.append({
      actor: actorOf(inv),
      actorName: inv.userName,
      action: "command.received",
      outcome,
      details: {
        subcommand: sub.slice(0, 40),
        text: text.slice(0, 500),
        channel: inv.channelId,
        via: inv.via,
        ...(error ? { code: error.code, error: error.userMessage } : {}),
      },
    });
  } catch (err) {
    deps.log.error("audit append failed", { error: err });
  }
}

/**
 * The whole path for one command line, for entry points that do not split ack and work (the CLI).
 * Errors become an error Reply; unknown ones are logged with a reference.
 */
export async function dispatch(
  text: string,
  inv: Invoker,
  deps: AppDeps,
  progress?: CommandContext["progress"],
): Promise<
  { reply: Reply; ok: boolean; error?: OpsError }
> {
  try {
    const p = prepareCommand(text, inv, deps);
    const reply = await runPrepared(p, inv, deps, progress);
    await auditCommand(deps, inv, text, "ok");
    return { reply, ok: true };
  } catch (err) {
    const e = toUserError(err, deps);
    await auditCommand(deps, inv, text, e.code === "internal" ? "failed" : "refused", e);
    return { reply: renderError(e), ok: false, error: e };
  }
}

/** Converts anything thrown into an OpsError, logging unknown ones with a reference shown to the user. */
export function toUserError(err: unknown, deps: AppDeps): OpsError {
  if (err instanceof OpsError) return err;
  const ref = crypto.randomUUID().slice(0, 8);
  deps.log.error("unexpected error", { reference: ref, error: err });
  return asOpsError(err, ref);
}
