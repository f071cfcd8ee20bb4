/**
 * Hands one command to the running bot and waits for its answer: `bisman_ops.cli_submit()` as the person
 * logged in, then `bisman_ops.cli_reply()` until the bot has answered (sql/0009_cli_inbox.sql).
 *
 * The waits are bounded. A bot must take the command within the pickup bound (`--wait`, default 30 s);
 * past it the database closes the command, so it can never start later, and the CLI says no bot is running.
 * Once taken, the CLI waits as long as the bot's heartbeat on the command moves (every 5 s), printing its
 * progress, and gives up when the heartbeat stops for 30 s (the bot died) or after two hours.
 *
 * @module
 */

import type { Sql } from "postgres";
import { OpsError } from "../core/errors.ts";
import { type CliOutcome, EXIT } from "../commands/cli_requests.ts";

/** How long a bot has to take a command by default (s). */
export const PICKUP_SECONDS = 30;
/** A taken command whose heartbeat is older than this counts as abandoned by a dead bot (s). */
export const STALLED_SECONDS = 30;
/** The longest the CLI waits for a taken command (s). */
export const MAX_RUN_SECONDS = 2 * 3600;

/** What cli_reply() answers. */
interface ReplyState {
  id: number;
  state: "waiting" | "running" | "done" | "expired";
  progress: string | null;
  exit_code: number | null;
  reply: { text?: string; json?: Record<string, unknown>; expired?: boolean } | null;
  heartbeat_age_seconds: number | null;
}

export interface WaitOptions {
  /** Seconds a bot has to take the command. */
  pickupSeconds?: number;
  /** Called with each new progress line. */
  onProgress: (line: string) => void;
  /** Called on every poll while the command runs; a line it returns is shown when it changed. */
  watch?: () => Promise<string | undefined>;
}

function submitError(err: unknown): OpsError {
  const e = err as { code?: string; message?: string };
  // SQLSTATEs raised by cli_submit(): 42501 not a CLI user, 22023 bad arguments, 54000 too many waiting.
  if (e.code === "42501") return new OpsError("not_permitted", e.message ?? "Not permitted", { cause: err });
  if (e.code === "22023") return new OpsError("invalid_input", e.message ?? "Bad command", { cause: err });
  if (e.code === "54000") {
    return new OpsError("conflict", e.message ?? "Too many commands waiting", { cause: err });
  }
  return new OpsError("unreachable", `The state database did not take the command: ${e.message ?? err}`, {
    cause: err,
  });
}

/**
 * Submits `text` with `options` and returns the bot's answer as CLI output.
 * @throws {OpsError} when the database refuses the command or stops answering
 */
export async function submitAndWait(
  sql: Sql,
  text: string,
  options: Record<string, unknown>,
  opts: WaitOptions,
): Promise<CliOutcome> {
  const pickup = opts.pickupSeconds ?? PICKUP_SECONDS;
  let id: number;
  try {
    const [row] = await sql<{ id: string }[]>`
      select bisman_ops.cli_submit(${text}, ${
      sql.json({ ...options, wait_seconds: pickup } as never)
    }) as id`;
    id = Number(row.id);
  } catch (err) {
    throw submitError(err);
  }
  const started = Date.now();
  let pause = 25;
  let progress: string | null = null;
  let watched: string | undefined;
  for (;;) {
    const [{ r }] = await sql<{ r: ReplyState | null }[]>`select bisman_ops.cli_reply(${id}) as r`;
    if (!r) throw new OpsError("internal", `Command #${id} is not yours or does not exist`);
    if (r.state === "expired") {
      const msg = `No bot took the command within ${pickup} s: is the bot running? Nothing was done, and ` +
        `command #${id} is closed, so it will not run later.`;
      return { text: msg, exit: EXIT.failed, json: { ok: false, code: "no_bot", error: msg, command: id } };
    }
    if (r.state === "done") {
      const reply = r.reply ?? {};
      const exit = r.exit_code ?? EXIT.failed;
      return {
        text: reply.text ?? "",
        exit,
        json: { ...(reply.json ?? { ok: exit === EXIT.ok }), command: id },
      };
    }
    if (r.state === "running") {
      if (r.progress && r.progress !== progress) opts.onProgress(r.progress);
      progress = r.progress;
      const line = await opts.watch?.().catch(() => undefined);
      if (line && line !== watched) opts.onProgress(line);
      watched = line ?? watched;
      const age = Number(r.heartbeat_age_seconds ?? 0);
      if (age > STALLED_SECONDS || Date.now() - started > MAX_RUN_SECONDS * 1000) {
        const msg = age > STALLED_SECONDS
          ? `The bot that took command #${id} stopped answering (no sign of life for ${
            Math.round(age)
          } s): ` +
            "it may have stopped. What it did is in the audit log; an approval it was running is reconciled " +
            "by the gate (`deno task ops requests`)."
          : `Command #${id} still runs after ${MAX_RUN_SECONDS / 3600} h; the bot goes on with it, and ` +
            "its result will be in the audit log.";
        return {
          text: msg,
          exit: EXIT.failed,
          json: { ok: false, code: "no_answer", error: msg, command: id },
        };
      }
    }
    await new Promise((res) => setTimeout(res, pause));
    pause = Math.min(500, pause * 1.5);
  }
}
