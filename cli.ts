/**
 * The break-glass CLI: `deno task ops <subcommand> [args]`, for when Slack is down (or for scripts).
 *
 * A thin client of the running bot. It logs in to the bot's state database as the person typing (their own
 * PostgreSQL role, a member of `bisman_cli`; never the bot's `DATABASE_URL`), hands the command in with
 * `bisman_ops.cli_submit()`, and prints what the bot answers. The bot maps that login (`session_user`, as
 * PostgreSQL authenticated it) to a Slack user with `access.cli_operators` and runs the command through the
 * same router and approval gate as Slack (cli/inbox.ts), so the CLI needs no config, Vault token or target
 * credential, and nothing it says about itself decides who it is: there is no `--as`. A destructive
 * subcommand creates the same approval request as Slack would; `deno task ops approve <id>` by another
 * person shows its plan and approves exactly that plan. Everything is in the audit log as `cli:<login>`.
 *
 * Offline, with no database: `help`, and `audit-log verify --file <export>`.
 *
 * Output is plain text, or JSON with `--json`. Exit codes: 0 ok, 1 failed, 2 bad usage or refused,
 * 3 not permitted.
 *
 * @module
 */

import { stderrWriter } from "./core/log.ts";
import { findSubcommand } from "./commands/router.ts";
import { allSubcommands } from "./commands/registry.ts";
import { parseArgs, type ParsedArgs } from "./commands/args.ts";
import { renderHelp, renderHelpOne } from "./views/help.ts";
import { plainText } from "./views/plain_text.ts";
import { asOpsError, OpsError } from "./core/errors.ts";
import {
  CLI_REQUEST_COMMANDS,
  type CliOutcome,
  EXIT,
  exitCodeOf,
  isRequestCommand,
} from "./commands/cli_requests.ts";
import { exportAuditRows, exportLine, parseAnchor } from "./core/audit.ts";
import { verifyExportFile } from "./commands/audit_log.ts";
import { IntegrityKeys, KeyError } from "./core/keys.ts";
import { type CliSession, connectCli, pickCliUrl } from "./cli/connect.ts";
import { submitAndWait } from "./cli/submit.ts";
import { signedOptions } from "./cli/sign.ts";
import { prepareApproval, requestProgress } from "./cli/approve.ts";
import { askSecret, canAsk } from "./cli/prompt.ts";

const USAGE = `Usage: deno task ops [--json] [--db <url> | --env-file <file>] <subcommand> [args]

The break-glass CLI of bisman-ops: the /bisman subcommands without Slack, run by the bot as you. You are the
PostgreSQL login you connect with: your own role on the bot's state database (a member of bisman_cli).
  --json              print JSON instead of text
  --db <url>          your login: postgres://<you>@<host>/<database>[?sslmode=verify-full&sslrootcert=\u2026]
                      (default: BISMAN_CLI_DATABASE_URL); a missing password is asked for at the terminal
  --env-file <file>   read BISMAN_CLI_DATABASE_URL from a KEY=value file (the sandbox writes .data/cli-<person>.env)
  --wait <seconds>    how long a bot has to take the command (default 30)
  --plan <hash>       approve: the plan hash you were shown (at a terminal the CLI shows the plan and asks)
  --confirm <text>    approve: the typed confirmation some policies ask for
Exit codes: 0 ok, 1 failed, 2 bad usage or refused, 3 not permitted.`;

/** Flags handed to the subcommand as `key=value` (`audit-log export --since 7d --out f`, `verify --file f`). */
const PASSED_ON_FLAGS = new Set(["--since", "--file", "--anchor", "--out"]);

/** Global flags, taken from anywhere on the command line. */
export interface CliFlags {
  json: boolean;
  db?: string;
  envFile?: string;
  wait?: number;
  plan?: string;
  confirm?: string;
  help: boolean;
}

/** Said to anyone who still passes `--as`: identity is no longer something the CLI is told. */
export const AS_IS_GONE =
  "--as is gone: the CLI does not take anyone's word for who is typing. It logs in to the " +
  "state database as you (BISMAN_CLI_DATABASE_URL, --db <url> or --env-file <file>), and the bot takes that " +
  "PostgreSQL login as the person. Nothing was done.";

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
    else if (flag === "--as") throw new OpsError("invalid_input", AS_IS_GONE);
    else if (flag === "--db") flags.db = value();
    else if (flag === "--env-file") flags.envFile = value();
    else if (flag === "--plan") flags.plan = value();
    else if (flag === "--confirm") flags.confirm = value();
    else if (flag === "--wait") {
      const v = value();
      const n = Number(v);
      if (!/^\d{1,3}$/.test(v) || n < 1 || n > 300) {
        throw new OpsError("invalid_input", `--wait takes seconds from 1 to 300, not ${v.slice(0, 20)}`);
      }
      flags.wait = n;
    } else if (flag === "--help" || flag === "-h") flags.help = true;
    // audit-log export/verify options, passed on to the subcommand as key=value.
    else if (PASSED_ON_FLAGS.has(flag)) rest.push(`${flag.slice(2)}=${JSON.stringify(value())}`);
    else if (arg.startsWith("--")) throw new OpsError("invalid_input", `Unknown flag ${flag}\n${USAGE}`);
    else {
      // One line (the database takes one-line commands); a word with spaces came quoted from the shell:
      // keep it one argument for the router's parser.
      const word = arg.replace(/[\t\r\n]+/g, " ");
      rest.push(/\s/.test(word) ? `"${word.replaceAll('"', "")}"` : word);
    }
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

function helpText(): string {
  const reply = renderHelp(allSubcommands());
  const extra = Object.values(CLI_REQUEST_COMMANDS).map((c) => `  ${c.usage}  ${c.summary}`);
  return `${USAGE}\n\n${plainText(reply.text).replaceAll("/bisman ", "deno task ops ")}\n\n` +
    `Approval requests (CLI):\n${extra.join("\n")}`;
}

function failure(e: OpsError): CliOutcome {
  return {
    text: e.userMessage,
    exit: exitCodeOf(e.code),
    json: { ok: false, code: e.code, error: e.userMessage },
  };
}

/** What runCli needs from its surroundings; tests pass their own. */
export interface CliIo {
  /** A line for the person (stderr). */
  report: (line: string) => void;
  /** Writes export data (stdout). */
  write?: (chunk: string) => Promise<void>;
  /** The environment (default: the process's). */
  env?: Record<string, string | undefined>;
  /** Whether a person can be asked at a terminal (default: stdin and stderr are terminals). */
  ask?: boolean;
}

/** Runs one command line and returns what to print and the exit code. Never throws. */
export async function runCli(
  argv: string[],
  io: CliIo = { report: (l) => console.error(l) },
): Promise<CliOutcome & { json_mode: boolean }> {
  let flags: CliFlags = { json: false, help: false };
  let session: CliSession | undefined;
  try {
    const line = parseCommandLine(argv);
    flags = line.flags;
    const out = await runParsed(line.text.trim(), flags, io, (s) => (session = s));
    return { ...out, json_mode: flags.json };
  } catch (err) {
    const e = err instanceof OpsError ? err : asOpsError(err);
    const out = err instanceof OpsError ? failure(e) : {
      text: `bisman-ops CLI: ${err instanceof Error ? err.message : err}`,
      exit: EXIT.failed,
      json: { ok: false, error: String(err instanceof Error ? err.message : err) },
    };
    return { ...out, json_mode: flags.json };
  } finally {
    await session?.close();
  }
}

async function runParsed(
  text: string,
  flags: CliFlags,
  io: CliIo,
  opened: (s: CliSession) => void,
): Promise<CliOutcome> {
  const parsed: ParsedArgs = parseArgs(text);
  if (flags.help || !parsed.subcommand || (parsed.subcommand === "help" && !parsed.positional.length)) {
    return { text: helpText(), exit: EXIT.ok, json: { ok: true, text: helpText() } };
  }
  if (parsed.subcommand === "help") {
    const name = parsed.positional[0];
    const cli = isRequestCommand(name) ? CLI_REQUEST_COMMANDS[name] : undefined;
    const t = cli
      ? `deno task ops ${cli.usage}\n${cli.summary}`
      : plainText(renderHelpOne(findSubcommand(name)).text).replaceAll("/bisman ", "deno task ops ");
    return { text: t, exit: EXIT.ok, json: { ok: true, text: t } };
  }
  // Offline: an export is checked with no database at all.
  if (parsed.subcommand === "audit-log" && parsed.positional[0] === "verify" && parsed.named.file) {
    const anchor = parsed.named.anchor ? parseAnchor(parsed.named.anchor) : undefined;
    if (parsed.named.anchor && !anchor) {
      throw new OpsError(
        "invalid_input",
        "--anchor takes <row>:<hash> (64 hex digits), as the anchor message shows it",
      );
    }
    // With the bot's key in the environment the MACs are checked too: without them a rewrite whose plain
    // hashes were recomputed passes.
    let keys: IntegrityKeys | undefined;
    try {
      keys = IntegrityKeys.fromEnv(io.env ?? Deno.env.toObject());
    } catch (err) {
      throw new OpsError("invalid_input", err instanceof KeyError ? err.message : String(err));
    }
    const v = await verifyExportFile(parsed.named.file, anchor, keys);
    return { text: v.text, exit: v.ok ? EXIT.ok : EXIT.failed, json: { ok: v.ok, text: v.text } };
  }
  // A typo is answered here, without a bot; the bot checks everything again.
  if (!isRequestCommand(parsed.subcommand)) findSubcommand(parsed.subcommand);

  const env = io.env ?? Deno.env.toObject();
  const fileEnv = flags.envFile
    ? await readEnvFile(flags.envFile).catch((err) => {
      throw new OpsError("invalid_input", `Cannot read --env-file ${flags.envFile}: ${err.message}`);
    })
    : {};
  const ask = io.ask ?? canAsk();
  const session = await connectCli(pickCliUrl(flags, { ...env, ...fileEnv }), {
    env: { ...env, ...fileEnv },
    ask: ask ? askSecret : undefined,
    warn: io.report,
  });
  opened(session);

  let options: Record<string, unknown> = {};
  let watch: (() => Promise<string | undefined>) | undefined;
  if (parsed.subcommand === "approve" && /^[1-9][0-9]{0,17}$/.test(parsed.positional[0] ?? "")) {
    const id = Number(parsed.positional[0]);
    const prep = await prepareApproval(session.sql, id, flags, { ask, show: io.report });
    if ("outcome" in prep) return prep.outcome;
    options = prep.options;
    watch = () => requestProgress(session.sql, id);
  } else if (parsed.subcommand !== "approve" && (flags.plan !== undefined || flags.confirm !== undefined)) {
    throw new OpsError(
      "invalid_input",
      "--plan and --confirm belong to approve: deno task ops approve <id> --plan <hash>",
    );
  }

  options = await signedOptions({ ...env, ...fileEnv }, session.login, text, options);
  const out = await submitAndWait(session.sql, text, options, {
    pickupSeconds: flags.wait,
    onProgress: (l) => io.report(`\u2026 ${plainText(l).split("\n")[0]}`),
    watch,
  });
  if (out.exit === EXIT.ok && parsed.subcommand === "audit-log" && parsed.positional[0] === "export") {
    return await exportHere(session, out, parsed.named.out, io);
  }
  return out;
}

/**
 * `audit-log export`: the bot recorded the export as this person's; the rows are read here, with the
 * person's own SELECT on the audit log, and written batch by batch to `--out` or stdout.
 */
async function exportHere(
  session: CliSession,
  approved: CliOutcome,
  out: string | undefined,
  io: CliIo,
): Promise<CliOutcome> {
  const sinceAt = approved.json.since_at;
  const write = io.write ??
    ((chunk: string) => Deno.stdout.write(new TextEncoder().encode(chunk)).then(() => {}));
  const file = out
    ? await Deno.open(out, { write: true, create: true, truncate: true, mode: 0o600 })
    : undefined;
  const enc = new TextEncoder();
  let rows = 0;
  try {
    for await (
      const batch of exportAuditRows(session.sql, {
        since: typeof sinceAt === "string" ? new Date(sinceAt) : undefined,
      })
    ) {
      const chunk = batch.map(exportLine).join("\n") + "\n";
      if (file) await file.write(enc.encode(chunk));
      else await write(chunk);
      rows += batch.length;
    }
  } finally {
    file?.close();
  }
  const text = `${rows} audit-log row(s) exported${out ? ` to ${out}` : ""}`;
  io.report(text);
  return { text: "", exit: EXIT.ok, json: { ok: true, rows, text } };
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
