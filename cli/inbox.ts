/**
 * The bot's side of the break-glass CLI: it takes the commands people hand in through
 * `bisman_ops.cli_submit()` (sql/0009_cli_inbox.sql), runs each as the person whose PostgreSQL login
 * submitted it (commands/cli_commands.ts), and writes the answer back to the row for the CLI to read.
 *
 * A notification on channel `bisman_cli` wakes it at once; a sweep every few seconds picks up what a lost
 * notification (or a replica that was down) missed. Each row is claimed with one conditional UPDATE that
 * also requires the row's pickup deadline not to have passed, so several replicas never run one command
 * twice, and a command the CLI already gave up on never starts. While it runs, the row's heartbeat moves, so
 * the CLI can tell a long run from a dead bot; a row left running by a bot that died is closed by a sweep.
 *
 * @module
 */

import type { AppDeps } from "../core/deps.ts";
import type { ApprovalGate } from "../gate/gate.ts";
import { runCliCommand } from "../commands/cli_commands.ts";
import type { CliOutcome } from "../commands/cli_requests.ts";
import { drainSet, within } from "../core/within.ts";

/** The notification channel `cli_submit()` notifies on. */
export const CLI_CHANNEL = "bisman_cli";

/** A reply larger than this keeps its text but drops its Block Kit blocks (the CLI prints the text). */
const MAX_BLOCKS_BYTES = 1_000_000;

export interface CliInboxOptions {
  /** This replica's name in `picked_by`. */
  instanceId: string;
  /** How often waiting rows are swept for (ms, default 3 s: well inside the CLI's 30 s pickup bound). */
  sweepIntervalMs?: number;
  /** How often a running command's heartbeat is written (ms, default 5 s). */
  heartbeatMs?: number;
  /** A running row whose heartbeat is older than this is closed as abandoned (ms, default 120 s). */
  abandonedAfterMs?: number;
}

interface Claimed {
  id: number;
  login: string;
  command: string;
  options: unknown;
}

/** Takes and runs CLI commands from the state database. */
export class CliInbox {
  #timer?: ReturnType<typeof setInterval>;
  #unlisten?: () => Promise<void>;
  #inflight = new Set<Promise<void>>();
  #stopped = false;
  #sweeping?: Promise<void>;

  constructor(
    private readonly deps: AppDeps,
    private readonly gate: ApprovalGate,
    private readonly opts: CliInboxOptions,
  ) {}

  /** Listens on `bisman_cli`, sweeps once now and then every `sweepIntervalMs`. */
  async start(): Promise<void> {
    const { state, log } = this.deps;
    const listening = await state.listen(CLI_CHANNEL, (payload) => {
      const id = Number(payload);
      if (Number.isSafeInteger(id) && id > 0) this.#take(id);
    });
    this.#unlisten = listening.unlisten;
    this.#timer = setInterval(() => this.#sweep(), this.opts.sweepIntervalMs ?? 3_000);
    Deno.unrefTimer(this.#timer);
    this.#sweep();
    log.info("cli inbox: listening", { channel: CLI_CHANNEL });
  }

  /**
   * Stops taking commands and waits up to `graceMs` for those running.
   * @returns how many were still running (they end with the process; the CLI sees the heartbeat stop)
   */
  async stop(graceMs = 10_000): Promise<number> {
    if (this.#stopped) return 0;
    this.#stopped = true;
    clearInterval(this.#timer);
    // UNLISTEN waits for the connection; with the state database down that could be forever. Closing the
    // pool (bot.ts, after this) ends the listening connection anyway.
    await within(this.#unlisten?.() ?? Promise.resolve(), 2_000);
    await this.#sweeping;
    return await drainSet(this.#inflight, graceMs);
  }

  #sweep(): void {
    if (this.#stopped || this.#sweeping) return;
    this.#sweeping = (async () => {
      const { state } = this.deps;
      const abandonedSeconds = (this.opts.abandonedAfterMs ?? 120_000) / 1000;
      await state`
        update bisman_ops.cli_inbox
           set done_at = clock_timestamp(), exit_code = 1,
               reply = ${
        state.json({
          text: "The bot running this command stopped answering before it finished. What it did is in the " +
            "audit log; an approval request it was running is reconciled by the gate.",
          json: { ok: false, code: "interrupted" },
        })
      }
         where picked_by is not null and done_at is null
           and heartbeat_at < clock_timestamp() - make_interval(secs => ${abandonedSeconds})`;
      const rows = await state<{ id: number }[]>`
        select id::int as id from bisman_ops.cli_inbox
         where picked_by is null and done_at is null and pickup_deadline > clock_timestamp()
         order by id limit 50`;
      for (const r of rows) this.#take(r.id);
    })().catch((err) => this.deps.log.warn("cli inbox: sweep failed", { error: err }))
      .finally(() => (this.#sweeping = undefined));
  }

  /** Claims row `id` (once across replicas) and runs it in the background. */
  #take(id: number): void {
    if (this.#stopped) return;
    const work = (async () => {
      const { state } = this.deps;
      const [row] = await state<Claimed[]>`
        update bisman_ops.cli_inbox
           set picked_by = ${this.opts.instanceId}, picked_at = clock_timestamp(), heartbeat_at = clock_timestamp()
         where id = ${id} and picked_by is null and done_at is null and clock_timestamp() < pickup_deadline
         returning id::int as id, login, command, options`;
      if (row) await this.#run(row);
    })().catch((err) => this.deps.log.error("cli inbox: command failed", { id, error: err }))
      .finally(() => this.#inflight.delete(work));
    this.#inflight.add(work);
  }

  async #run(row: Claimed): Promise<void> {
    const { state, log } = this.deps;
    const me = this.opts.instanceId;
    log.info("cli command taken", { id: row.id, login: row.login, subcommand: row.command.split(/\s+/)[0] });
    const beat = setInterval(() => {
      state`update bisman_ops.cli_inbox set heartbeat_at = clock_timestamp()
             where id = ${row.id} and picked_by = ${me} and done_at is null`
        .catch((err) => log.warn("cli inbox: heartbeat failed", { id: row.id, error: err }));
    }, this.opts.heartbeatMs ?? 5_000);
    let out: CliOutcome;
    try {
      out = await runCliCommand(row.command, row.options, row.login, {
        deps: this.deps,
        gate: this.gate,
        progress: async (line) => {
          await state`update bisman_ops.cli_inbox set progress = ${
            line.slice(0, 500)
          }, heartbeat_at = clock_timestamp()
                       where id = ${row.id} and picked_by = ${me} and done_at is null`
            .catch((err) => log.warn("cli inbox: progress not written", { id: row.id, error: err }));
        },
      });
    } finally {
      clearInterval(beat);
    }
    let json = out.json;
    if (JSON.stringify(json).length > MAX_BLOCKS_BYTES && "blocks" in json) {
      const { blocks: _dropped, ...rest } = json;
      json = { ...rest, blocks_omitted: "too large for the CLI's reply; the text holds everything" };
    }
    await this.#answer(row.id, { text: out.text, json }, out.exit);
  }

  /** Writes the answer; retried briefly, since the person is waiting for exactly this. */
  async #answer(
    id: number,
    reply: { text: string; json: Record<string, unknown> },
    exit: number,
  ): Promise<void> {
    const { state, log } = this.deps;
    for (let attempt = 1;; attempt++) {
      try {
        const rows = await state`
          update bisman_ops.cli_inbox
             set reply = ${state.json(reply as never)}, exit_code = ${exit},
                 done_at = clock_timestamp(), heartbeat_at = clock_timestamp()
           where id = ${id} and picked_by = ${this.opts.instanceId} and done_at is null`;
        if (!rows.count) log.warn("cli inbox: the command was closed before its answer was written", { id });
        return;
      } catch (err) {
        if (attempt >= 5) throw err;
        log.warn("cli inbox: answer not written, retrying", { id, attempt, error: err });
        await new Promise((r) => setTimeout(r, 1_000 * attempt));
      }
    }
  }
}
