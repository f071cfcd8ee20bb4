/**
 * The break-glass CLI: `deno task ops <subcommand> [args]`, for when Slack is down (or for scripts).
 *
 * The same subcommands, parser and operations as `/bisman` (commands/router.ts `dispatch()`), run as the
 * operator the OS login maps to (`access.cli_operators`, see commands/cli_identity.ts). Read-only
 * subcommands run at once; a destructive one creates the same approval request as Slack would and prints
 * its ID and plan; it runs after approval, in Slack or with `deno task ops approve <id>` by a different
 * operator. Everything is in the audit log as `cli:<login>`.
 *
 * Output is plain text, or JSON with `--json`. Exit codes: 0 ok, 1 failed, 2 bad usage or refused,
 * 3 not permitted.
 *
 * Environment: the bot's (`BISMAN_CONFIG`, `DATABASE_URL`, `VAULT_*`, optional `SLACK_BOT_TOKEN`), or
 * `--env-file <file>`; with neither, the running sandbox's `.data/sandbox.env` when it exists.
 *
 * @module
 */

import { fileURLToPath } from "node:url";
import { stderrWriter } from "./core/log.ts";
import { dispatch, findSubcommand } from "./commands/router.ts";
import { allSubcommands } from "./commands/registry.ts";
import { parseArgs, type ParsedArgs } from "./commands/args.ts";
import { renderHelp } from "./views/help.ts";
import { ConfigError } from "./core/config.ts";
import { EnvError } from "./core/env.ts";
import { asOpsError, OpsError } from "./core/errors.ts";
import type { Reply } from "./views/reply.ts";
import { processIdentity, resolveOperator } from "./commands/cli_identity.ts";
import { buildCliRuntime, type CliRuntime } from "./cli/deps.ts";
import {
  CLI_REQUEST_COMMANDS,
  type CliOutcome,
  describeRequest,
  EXIT,
  exitCodeOf,
  runRequestCommand,
} from "./commands/cli_requests.ts";
import { actorOf } from "./core/access.ts";
import { parseAnchor } from "./core/audit.ts";
import { exportToCli, verifyExportFile } from "./commands/audit_log.ts";

const SANDBOX_ENV = fileURLToPath(new URL("./.data/sandbox.env", import.meta.url));

const USAGE = `Usage: deno task ops [--json] [--as <login>] [--env-file <file>] <subcommand> [args]

The break-glass CLI of bisman-ops: the /bisman subcommands without Slack.
  --json              print JSON instead of text
  --as <login>        run as root: say which operator you are (access.cli_operators)
  --env-file <file>   read BISMAN_CONFIG, DATABASE_URL, VAULT_* … from a KEY=value file
  --confirm <text>    approve: the typed confirmation some policies ask for
Exit codes: 0 ok, 1 failed, 2 bad usage or refused, 3 not permitted.`;

/** Flags handed to the subcommand as `key=value` (`audit-log export --since 7d --out f`, `verify --file f`). */
const PASSED_ON_FLAGS = new Set(["--since", "--file", "--anchor", "--out"]);

/** Global flags, taken from anywhere on the command line. */
export interface CliFlags {
  json: boolean;
  as?: string;
  envFile?: string;
  confirm?: string;
  help: boolean;
}

/** Splits the command line into flags and the subcommand text. @throws {OpsError} on a bad flag */
export function parseCommandLine(argv: string[]): { flags: CliFlags; text: string } {
  const flags: CliFlags = { json: false, help: false };
  const rest: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const [flag, inline] = arg.startsWith("--") ? arg.split(/=(.*)/s, 2) : [arg, undefined];
    const value = () => {
      const v = inline ?? argv[++i];
      if (v === undefined) throw new OpsError("invalid_input", `${flag} needs a value`);
      return v;
    };
    if (flag === "--json") flags.json = true;
    else if (flag === "--as") flags.as = value();
    else if (flag === "--env-file") flags.envFile = value();
    else if (flag === "--confirm") flags.confirm = value();
    else if (flag === "--help" || flag === "-h") flags.help = true;
    // audit-log export/verify options, passed on to the subcommand as key=value.
    else if (PASSED_ON_FLAGS.has(flag)) rest.push(`${flag.slice(2)}=${JSON.stringify(value())}`);
    else if (arg.startsWith("--")) throw new OpsError("invalid_input", `Unknown flag ${flag}\n${USAGE}`);
    // A word with spaces came quoted from the shell: keep it one argument for the router's parser.
    else rest.push(/\s/.test(arg) ? `"${arg.replaceAll('"', "")}"` : arg);
  }
  return { flags, text: rest.join(" ") };
}

/** Reads a KEY=value file (values may be JSON-quoted), ignoring blank lines and # comments. */
export async function readEnvFile(path: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const raw of (await Deno.readTextFile(path)).split("\n")) {
    const line = raw.trim();
    if (!line || line.startsWith("#")) continue;
    const m = /^(?:export\s+)?([A-Z_][A-Z0-9_]*)=(.*)$/.exec(line);
    if (!m) continue;
    let v = m[2].trim();
    if (v.startsWith('"')) {
      try {
        v = JSON.parse(v);
      } catch {
        v = v.slice(1, -1);
      }
    } else if (v.startsWith("'") && v.endsWith("'")) v = v.slice(1, -1);
    out[m[1]] = v;
  }
  return out;
}

/** Slack mrkdwn to terminal text: links and mentions unwrapped, emoji codes and bold markers dropped. */
export function plainText(text: string): string {
  return text
    .replace(/<([#@!])([^|>]+)\|([^>]+)>/g, (_m, k, _id, label) => `${k === "!" ? "@" : k}${label}`)
    .replace(/<([#@])([^>]+)>/g, "$1$2")
    .replace(/<!([^>]+)>/g, "@$1")
    .replace(/<(https?:[^|>]+)\|([^>]+)>/g, "$2 ($1)")
    .replace(/<(https?:[^>]+)>/g, "$1")
    .replace(/(^|\s):[a-z0-9_+-]+:\s?/g, "$1")
    .replace(/(^|[\s(])\*([^*\n]+)\*/g, "$1$2")
    .replace(/&lt;/g, "<").replace(/&gt;/g, ">").replace(/&amp;/g, "&");
}

function outcomeOfReply(reply: Reply, ok: boolean, code?: string): CliOutcome {
  return {
    text: plainText(reply.text),
    exit: ok ? EXIT.ok : exitCodeOf((code ?? "internal") as never),
    json: {
      ok,
      text: reply.text,
      ...(reply.blocks ? { blocks: reply.blocks } : {}),
      ...(code ? { code } : {}),
    },
  };
}

function helpText(): string {
  const reply = renderHelp(allSubcommands());
  const extra = Object.values(CLI_REQUEST_COMMANDS).map((c) => `  ${c.usage}  ${c.summary}`);
  return `${USAGE}\n\n${reply.text.replaceAll("/bisman ", "deno task ops ")}\n\nApproval requests (CLI):\n${
    extra.join("\n")
  }`;
}

/** Loads the environment: the process's, an --env-file, or the running sandbox's. */
async function loadEnv(
  flags: CliFlags,
  report: (l: string) => void,
): Promise<Record<string, string | undefined>> {
  const env: Record<string, string | undefined> = Deno.env.toObject();
  if (flags.envFile) return { ...env, ...(await readEnvFile(flags.envFile)) };
  if (!env.BISMAN_CONFIG && !env.DATABASE_URL) {
    try {
      const sandbox = await readEnvFile(SANDBOX_ENV);
      report(`Using the running sandbox (${SANDBOX_ENV}).`);
      return { ...env, ...sandbox };
    } catch {
      // no sandbox: readEnv below names what is missing
    }
  }
  return env;
}

/** Runs one command line and returns what to print and the exit code. Never throws. */
export async function runCli(
  argv: string[],
  io: { report: (line: string) => void; write?: (chunk: string) => Promise<void> } = {
    report: (l) => console.error(l),
  },
): Promise<CliOutcome & { json_mode: boolean }> {
  let flags: CliFlags = { json: false, help: false };
  let runtime: CliRuntime | undefined;
  try {
    const parsedLine = parseCommandLine(argv);
    flags = parsedLine.flags;
    const text = parsedLine.text.trim();
    let parsed: ParsedArgs;
    try {
      parsed = parseArgs(text);
    } catch (err) {
      const e = asOpsError(err);
      return {
        text: e.userMessage,
        exit: EXIT.refused,
        json: { ok: false, code: e.code, error: e.userMessage },
        json_mode: flags.json,
      };
    }
    if (flags.help || !parsed.subcommand || (parsed.subcommand === "help" && !parsed.positional.length)) {
      return { text: helpText(), exit: EXIT.ok, json: { ok: true, text: helpText() }, json_mode: flags.json };
    }
    // Offline: an export is checked with no config, environment or database.
    if (parsed.subcommand === "audit-log" && parsed.positional[0] === "verify" && parsed.named.file) {
      const anchor = parsed.named.anchor ? parseAnchor(parsed.named.anchor) : undefined;
      if (parsed.named.anchor && !anchor) {
        const msg = "--anchor takes <row>:<hash> (64 hex digits), as the anchor message shows it";
        return { text: msg, exit: EXIT.refused, json: { ok: false, error: msg }, json_mode: flags.json };
      }
      const v = await verifyExportFile(parsed.named.file, anchor);
      return {
        text: v.text,
        exit: v.ok ? EXIT.ok : EXIT.failed,
        json: { ok: v.ok, text: v.text },
        json_mode: flags.json,
      };
    }
    const env = await loadEnv(flags, io.report);
    runtime = await buildCliRuntime(env, { report: io.report });
    const { deps, gate, notifier } = runtime;
    let inv;
    try {
      inv = resolveOperator(deps.config, processIdentity(flags.as));
    } catch (err) {
      const e = asOpsError(err);
      await deps.audit.append({
        actor: `cli:${flags.as ?? Deno.env.get("SUDO_USER") ?? `uid ${Deno.uid()}`}`,
        action: "command.received",
        outcome: "refused",
        details: { via: "cli", text: text.slice(0, 500), code: e.code, error: e.userMessage },
      }).catch(() => {});
      return {
        text: e.userMessage,
        exit: exitCodeOf(e.code),
        json: { ok: false, code: e.code, error: e.userMessage },
        json_mode: flags.json,
      };
    }
    runtime.slack.announceIfUnconfigured();

    if (parsed.subcommand in CLI_REQUEST_COMMANDS) {
      try {
        const out = await runRequestCommand(parsed, inv, deps, gate, { confirm: flags.confirm });
        await deps.audit.append({
          actor: actorOf(inv),
          actorName: inv.userName,
          action: "command.received",
          outcome: out.exit === EXIT.ok ? "ok" : out.exit === EXIT.failed ? "failed" : "refused",
          details: { subcommand: parsed.subcommand, text: text.slice(0, 500), via: "cli" },
        }).catch((err) => deps.log.error("audit append failed", { error: err }));
        return { ...out, json_mode: flags.json };
      } catch (err) {
        const e = asOpsError(err);
        return {
          text: e.userMessage,
          exit: exitCodeOf(e.code),
          json: { ok: false, code: e.code, error: e.userMessage },
          json_mode: flags.json,
        };
      }
    }

    if (parsed.subcommand === "audit-log" && parsed.positional[0] === "export") {
      const write = io.write ??
        ((chunk: string) => Deno.stdout.write(new TextEncoder().encode(chunk)).then(() => {}));
      const rows = await exportToCli(deps, inv, { since: parsed.named.since, out: parsed.named.out, write });
      const text = `${rows} audit-log row(s) exported${parsed.named.out ? ` to ${parsed.named.out}` : ""}`;
      io.report(text);
      return { text: "", exit: EXIT.ok, json: { ok: true, rows, text }, json_mode: flags.json };
    }

    const progress = (r: Reply) => {
      io.report(`… ${plainText(r.text).split("\n")[0]}`);
      return Promise.resolve();
    };
    const before = notifier.posted.length;
    const result = await dispatch(text, inv, deps, progress);
    const out = outcomeOfReply(result.reply, result.ok, result.error?.code);
    if (parsed.subcommand === "help") out.text = out.text.replaceAll("/bisman ", "deno task ops ");
    const created = notifier.posted.slice(before).at(-1);
    if (result.ok && created && findSubcommand(parsed.subcommand).destructive) {
      const view = await gate.view(created.request.id) ?? created;
      out.text =
        `${out.text}\n\n${describeRequest(view)}\n\nIt runs once another operator approves it: in Slack, ` +
        `or with \`deno task ops approve ${view.request.id}\`.`;
      out.json = {
        ...out.json,
        request_id: view.request.id,
        plan: view.request.plan,
        state: view.request.state,
      };
    }
    return { ...out, json_mode: flags.json };
  } catch (err) {
    const msg = err instanceof EnvError
      ? `${err.message}\n(Set them, pass --env-file <file>, or start the sandbox with \`deno task dev\`: the CLI ` +
        `then finds it by itself.)`
      : err instanceof ConfigError
      ? err.message
      : err instanceof OpsError
      ? err.userMessage
      : `bisman-ops CLI: ${err instanceof Error ? err.message : err}`;
    const bad = err instanceof ConfigError || err instanceof EnvError ||
      (err instanceof OpsError && exitCodeOf(err.code) === EXIT.refused);
    return {
      text: msg,
      exit: bad ? EXIT.refused : err instanceof OpsError ? exitCodeOf(err.code) : EXIT.failed,
      json: { ok: false, error: msg },
      json_mode: flags.json,
    };
  } finally {
    await runtime?.close().catch(() => {});
  }
}

if (import.meta.main) {
  const out = await runCli(Deno.args);
  if (out.json_mode) console.log(JSON.stringify({ ...out.json, exit_code: out.exit }, null, 2));
  else if (out.exit === EXIT.ok) {
    if (out.text) console.log(out.text);
  } else console.error(out.text);
  await stderrWriter.drained(); // log lines are written asynchronously (core/log.ts)
  Deno.exit(out.exit);
}
