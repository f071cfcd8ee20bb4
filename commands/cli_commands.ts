/**
 * Runs one break-glass CLI command in the bot, for the login PostgreSQL authenticated (cli/inbox.ts hands
 * it over): the login is mapped to a Slack user (commands/cli_identity.ts), then the command goes through
 * the same router as Slack (`dispatch`), or, for the CLI's request subcommands, to the gate
 * (commands/cli_requests.ts). Everything is audited as `cli:<login>`; the answer is plain text, JSON and an
 * exit code, ready for the CLI to print.
 *
 * @module
 */

import type { AppDeps } from "../core/deps.ts";
import { actorOf, type Invoker, requireOperator } from "../core/access.ts";
import { asOpsError, InvalidInput, NotPermitted, type OpsError } from "../core/errors.ts";
import { checkCliSignature } from "../core/cli_signature.ts";
import { own } from "../core/lookup.ts";
import type { ApprovalGate, RequestView } from "../gate/gate.ts";
import type { RequestCreated } from "../core/deps.ts";
import { parseArgs, type ParsedArgs } from "./args.ts";
import { auditCommand, dispatch, findSubcommand, prepareCommand, toUserError } from "./router.ts";
import { operatorOfLogin, unmappedInvoker } from "./cli_identity.ts";
import {
  cliOptions,
  type CliOutcome,
  describeRequest,
  EXIT,
  exitCodeOf,
  isRequestCommand,
  runRequestCommand,
} from "./cli_requests.ts";
import type { AuditLogRequest } from "./audit_log.ts";
import { parseSince } from "../ops/_security.ts";
import { plainText } from "../views/plain_text.ts";
import type { Reply } from "../views/reply.ts";

/** What the bot lends a CLI command. */
export interface CliCommandContext {
  deps: AppDeps;
  gate: ApprovalGate;
  /** Shows a progress line to the person waiting at the CLI. */
  progress: (line: string) => Promise<void>;
}

function refusal(e: OpsError): CliOutcome {
  return {
    text: e.userMessage,
    exit: exitCodeOf(e.code),
    json: { ok: false, code: e.code, error: e.userMessage },
  };
}

/**
 * Whether a command must be signed by its login (`access.cli_keys`, or every login with
 * `access.cli_require_keys`) and is not: a superuser of the state database can submit as any login, but
 * cannot sign as one. @returns why it is refused, or undefined
 */
function signatureProblem(
  deps: AppDeps,
  login: string,
  text: string,
  rawOptions: unknown,
): string | undefined {
  const key = own(deps.config.access.cli_keys, login);
  if (typeof key !== "string") {
    return deps.config.access.cli_require_keys
      ? "it carries no signature, and every CLI login signs its commands (access.cli_require_keys) while " +
        `${login} has no key in access.cli_keys`
      : undefined;
  }
  const options = rawOptions && typeof rawOptions === "object" ? rawOptions as Record<string, unknown> : {};
  return checkCliSignature(key, login, text, options, deps.now());
}

/** A router reply as CLI output: plain text, and JSON with the Block Kit blocks. */
export function outcomeOfReply(reply: Reply, ok: boolean, error?: OpsError): CliOutcome {
  return {
    text: plainText(reply.text),
    exit: ok ? EXIT.ok : exitCodeOf(error?.code ?? "internal"),
    json: {
      ok,
      text: reply.text,
      ...(reply.blocks ? { blocks: reply.blocks } : {}),
      ...(error ? { code: error.code } : {}),
    },
  };
}

/**
 * Runs `text` (a `/bisman` command line, or one of the CLI's request subcommands) typed by `login`.
 * Never throws: every failure is an outcome with its exit code.
 */
export async function runCliCommand(
  text: string,
  rawOptions: unknown,
  login: string,
  ctx: CliCommandContext,
): Promise<CliOutcome> {
  const { deps } = ctx;
  let inv: Invoker;
  try {
    inv = operatorOfLogin(deps.config, login);
  } catch (err) {
    const e = asOpsError(err);
    await auditCommand(deps, unmappedInvoker(login), text, "refused", e);
    return refusal(e);
  }
  const unsigned = signatureProblem(deps, login, text, rawOptions);
  if (unsigned) {
    const e = new NotPermitted(
      `Not run: this command came in as ${login}, but ${unsigned}. Nothing was done; a command typed by ` +
        `${login} is signed by their CLI (BISMAN_CLI_KEY_FILE), so someone else may have submitted it as them`,
    );
    await auditCommand(deps, inv, text, "refused", e);
    return refusal(e);
  }
  const options = cliOptions.safeParse(rawOptions ?? {});
  let parsed: ParsedArgs;
  try {
    if (!options.success) {
      throw new InvalidInput(`Bad options: ${options.error.issues.map((i) => i.message).join("; ")}`);
    }
    parsed = parseArgs(text);
  } catch (err) {
    const e = toUserError(err, deps);
    await auditCommand(deps, inv, text, "refused", e);
    return refusal(e);
  }

  if (isRequestCommand(parsed.subcommand)) {
    let out: CliOutcome;
    try {
      out = await runRequestCommand(parsed, inv, deps, ctx.gate, options.data);
    } catch (err) {
      out = refusal(toUserError(err, deps));
    }
    await auditCommand(
      deps,
      inv,
      text,
      out.exit === EXIT.ok ? "ok" : out.exit === EXIT.failed ? "failed" : "refused",
    );
    return out;
  }

  if (parsed.subcommand === "audit-log" && parsed.positional[0] === "export") {
    return await approveExport(text, inv, deps);
  }

  // Requests a destructive subcommand creates are caught on their way out of the gate, so the CLI can
  // print the whole request (and its ID for `approve`), which the Slack reply only summarises.
  const created: RequestCreated[] = [];
  const gate = new Proxy(ctx.gate, {
    get(target, prop) {
      if (prop === "request") {
        return async (...args: Parameters<ApprovalGate["request"]>) => {
          const c = await target.request(...args);
          created.push(c);
          return c;
        };
      }
      const v = Reflect.get(target, prop, target);
      return typeof v === "function" ? v.bind(target) : v;
    },
  });
  const result = await dispatch(
    text,
    inv,
    { ...deps, gate },
    (r) => ctx.progress(plainText(r.text).split("\n")[0]),
  );
  const out = outcomeOfReply(result.reply, result.ok, result.error);
  if (parsed.subcommand === "help") out.text = out.text.replaceAll("/bisman ", "deno task ops ");
  const request = created.at(-1);
  if (result.ok && request && findSubcommand(parsed.subcommand).destructive) {
    const view: RequestView | undefined = await ctx.gate.view(request.id);
    if (view) {
      out.text = `${out.text}\n\n${describeRequest(view)}\n\nIt runs once another operator approves it: in ` +
        `Slack, or with \`deno task ops approve ${view.request.id}\`.`;
      out.json = {
        ...out.json,
        request_id: view.request.id,
        plan: view.request.plan,
        state: view.request.state,
      };
    }
  }
  return out;
}

/**
 * `audit-log export` from the CLI: the rows are many, so the CLI reads them itself with its own role's
 * SELECT on the audit log; the bot checks the person may export, records the export as theirs, and says
 * from which time on.
 */
async function approveExport(text: string, inv: Invoker, deps: AppDeps): Promise<CliOutcome> {
  try {
    const prepared = prepareCommand(text, inv, deps);
    const req = prepared.args as AuditLogRequest;
    if (req.kind !== "export") throw new InvalidInput("audit-log export takes only --since and --out");
    await requireOperator(deps.config, inv, deps.groupMembers, "`/bisman audit-log`");
    const since = req.since ? parseSince(req.since, deps.now()) : undefined;
    await deps.audit.append({
      actor: actorOf(inv),
      actorName: inv.userName,
      action: "audit.exported",
      outcome: "ok",
      details: { since: req.since, to: req.out ? "file" : "stdout", read_by: "cli" },
    });
    await auditCommand(deps, inv, text, "ok");
    return {
      text: "export approved",
      exit: EXIT.ok,
      json: { ok: true, since_at: since?.toISOString() ?? null },
    };
  } catch (err) {
    const e = toUserError(err, deps);
    await auditCommand(deps, inv, text, e.code === "internal" ? "failed" : "refused", e);
    return refusal(e);
  }
}
