/**
 * Structured JSON logs, one line per event, with every known secret scrubbed before it is written.
 *
 * Secrets reach the process from env (Slack tokens, signing secret, Vault token) and from Vault (role
 * passwords). Each is registered with {@link Secrets} when it is read, and the logger replaces any
 * occurrence in a line, so a library error that echoes a connection string cannot leak it. SCRAM verifiers
 * and md5 password hashes are masked in every line too (core/statement_mask.ts), whoever made them.
 *
 * @module
 */

import { AsyncLocalStorage } from "node:async_hooks";
import { describeError } from "./errors.ts";
import { maskSecretTokens } from "./statement_mask.ts";

/** Fields of the request being handled (its `request_id`), carried across awaits to every log line. */
const requestContext = new AsyncLocalStorage<Record<string, unknown>>();

/**
 * Runs `fn` with `fields` (e.g. `{ request_id }`) added to every log line written while it, and any work
 * it starts (a listener's work after its ack included), runs. Nested calls add to the outer fields.
 * @example
 * withLogContext({ request_id: newRequestId() }, () => handle(req));
 */
export function withLogContext<T>(fields: Record<string, unknown>, fn: () => T): T {
  return requestContext.run({ ...requestContext.getStore(), ...fields }, fn);
}

/** The fields of the current request context, if any. */
export function currentLogContext(): Record<string, unknown> | undefined {
  return requestContext.getStore();
}

/** A short random id for one Slack request or alert delivery (not a secret). */
export function newRequestId(): string {
  return crypto.randomUUID().replaceAll("-", "").slice(0, 16);
}

/**
 * Slack's response_urls (`hooks.slack.com/commands/...`, `/actions/...`) and incoming-webhook URLs are bearer
 * links: whoever holds one can post in the channel as the app (a response_url up to 5 times in 30 minutes).
 * The bot never logs one on purpose, but a failed fetch carries its URL in the error's cause ("error sending
 * request for url (https://hooks.slack.com/commands/...)"). The host and kind stay readable, the rest goes.
 */
const SLACK_HOOK_URL =
  /(hooks\.slack(?:-gov)?\.com\/(?:commands|actions|app|services|workflows|triggers)\/)[^\s"'<>)\]]+/g;

/** `text` with the secret part of every Slack hook URL replaced by `[redacted]`. */
export function maskSlackHookUrls(text: string): string {
  return text.includes("hooks.slack") ? text.replace(SLACK_HOOK_URL, "$1[redacted]") : text;
}

/**
 * Values that must never be written anywhere. Shared by the logger and the audit log.
 *
 * Each secret is also remembered as JSON writes it: a secret with a quote, a backslash or a control
 * character appears escaped (`pa\"ss`) in a serialised line, and a scrub that looks only for the raw value
 * after serialisation would miss it. The logger scrubs every string before serialising as well.
 */
export class Secrets {
  #values = new Set<string>();

  /** Remembers a secret; values shorter than 6 characters are ignored (they would mask ordinary words). */
  add(value: string | undefined | null): void {
    if (!value || value.length < 6) return;
    this.#values.add(value);
    // How JSON.stringify writes it inside a string ("\"", "\\", "\n", "\u0001", lone surrogates).
    const escaped = JSON.stringify(value).slice(1, -1);
    if (escaped !== value) this.#values.add(escaped);
  }

  /**
   * Replaces every registered secret in `text` with `[redacted]`, and every SCRAM verifier or md5 password
   * hash (which no registry can know: the bot computes some, Vault and people set others) with a mark.
   */
  scrub(text: string): string {
    let out = text;
    for (const v of this.#values) {
      if (out.includes(v)) out = out.split(v).join("[redacted]");
    }
    return maskSlackHookUrls(maskSecretTokens(out));
  }

  /** True when `text` contains a registered secret (used by tests and as a last guard before posting). */
  leaks(text: string): boolean {
    for (const v of this.#values) if (text.includes(v)) return true;
    return false;
  }
}

export type LogLevel = "debug" | "info" | "warn" | "error";
const levelRank: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

/** A logger bound to fixed fields (request id, job, op). */
export interface Logger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
  child(fields: Record<string, unknown>): Logger;
}

/** Where lines go; tests pass a collector to scan logs for secrets. */
export type LogSink = (line: string, level?: LogLevel) => void;

/** Writes a whole buffer to a writer that may take part of it per call. */
function writeAllSync(w: { writeSync(p: Uint8Array): number }, bytes: Uint8Array): void {
  let off = 0;
  while (off < bytes.length) off += w.writeSync(bytes.subarray(off));
}

/**
 * Log lines to a file descriptor (standard error) without making the event loop wait on it.
 *
 * A synchronous write to a pipe whose reader lags (a container runtime's log shim, a busy parent process)
 * blocks until the reader catches up, and with it every Slack ack in flight: under a burst of commands a
 * profile showed the bot stalled in console.error. Here lines are queued and written by one asynchronous
 * write at a time, each taking everything queued meanwhile; no level writes synchronously, since a warning
 * would then block on a stuck reader like any other line. Past `maxQueuedBytes` debug and info lines are
 * dropped and counted (the count is written when the queue drains); warnings and errors are always kept.
 * Before the process exits, {@link drained} waits (bounded) for the write under way and the rest; an
 * uncaught exception leaves time only for {@link flushSync}.
 */
export class AsyncLineWriter {
  #queue: string[] = [];
  #bytes = 0;
  #dropped = 0;
  #writing = false;
  #pumping?: Promise<void>;
  readonly #encoder = new TextEncoder();

  constructor(
    private readonly out: {
      write(p: Uint8Array): Promise<number>;
      writeSync(p: Uint8Array): number;
    } = Deno.stderr,
    private readonly maxQueuedBytes = 8 * 1024 * 1024,
  ) {}

  /** The sink: queues `line`, and starts a write unless one is under way. */
  readonly sink: LogSink = (line, level) => {
    const kept = level === "warn" || level === "error";
    if (!kept && this.#bytes > this.maxQueuedBytes) {
      this.#dropped++;
      return;
    }
    this.#queue.push(`${line}\n`);
    this.#bytes += line.length + 1;
    if (!this.#writing) this.#pumping = this.#pump();
  };

  /** Lines queued and not yet handed to the descriptor. */
  get queued(): number {
    return this.#queue.length;
  }

  /** Takes the queue as one buffer, with the count of dropped lines first. */
  #take(): Uint8Array {
    if (this.#dropped) {
      const note = JSON.stringify({
        time: new Date().toISOString(),
        level: "warn",
        msg: "log lines dropped: standard error was not read fast enough",
        dropped: this.#dropped,
      });
      this.#queue.unshift(`${note}\n`);
      this.#dropped = 0;
    }
    const bytes = this.#encoder.encode(this.#queue.join(""));
    this.#queue = [];
    this.#bytes = 0;
    return bytes;
  }

  async #pump(): Promise<void> {
    this.#writing = true;
    try {
      while (this.#queue.length || this.#dropped) {
        const bytes = this.#take();
        let off = 0;
        while (off < bytes.length) off += await this.out.write(bytes.subarray(off));
      }
    } catch {
      // Standard error is gone (closed by the parent): there is nowhere left to report it.
      this.#queue = [];
      this.#bytes = 0;
    } finally {
      this.#writing = false;
    }
  }

  /**
   * Resolves once everything queued has been handed to the descriptor, or after `timeoutMs` (a reader that
   * never reads must not keep the process from exiting). `Deno.exit` does not wait for a write under way:
   * call this first.
   */
  async drained(timeoutMs = 2000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while ((this.#writing || this.#queue.length) && Date.now() < deadline) {
      if (!this.#writing) this.#pumping = this.#pump();
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([
        this.#pumping,
        new Promise((r) => (timer = setTimeout(r, Math.max(0, deadline - Date.now())))),
      ]);
      clearTimeout(timer);
    }
  }

  /**
   * Writes everything queued now, synchronously: for an uncaught exception, which ends the process before
   * any asynchronous write. With a write still under way on a full pipe, the two writes' bytes can
   * interleave, which beats losing the lines that explain the crash.
   */
  flushSync(): void {
    if (!this.#queue.length && !this.#dropped) return;
    try {
      writeAllSync(this.out, this.#take());
    } catch {
      // As in #pump.
    }
  }
}

/** The process's standard error writer: the default sink of {@link createLogger}. */
export const stderrWriter = new AsyncLineWriter();

/**
 * A copy of `v` as JSON will see it (toJSON applied, as JSON.stringify does), with every string, keys
 * included, scrubbed of registered secrets.
 */
function scrubbedTree(v: unknown, secrets: Secrets, depth = 0): unknown {
  if (typeof v === "string") return secrets.scrub(v);
  if (v === null || typeof v !== "object" || depth > 32) return v;
  const j = (v as { toJSON?: () => unknown }).toJSON;
  if (typeof j === "function") return scrubbedTree(j.call(v), secrets, depth + 1);
  if (Array.isArray(v)) return v.map((x) => scrubbedTree(x, secrets, depth + 1));
  const out: Record<string, unknown> = Object.create(null); // a key "__proto__" stays a key
  for (const [k, x] of Object.entries(v)) out[secrets.scrub(k)] = scrubbedTree(x, secrets, depth + 1);
  return out;
}

/**
 * Creates a JSON-lines logger.
 * @param secrets registry whose values are scrubbed from every line
 * @param opts `level` (default from `LOG_LEVEL` or info), `sink` (default stderr)
 */
export function createLogger(
  secrets: Secrets,
  opts: { level?: LogLevel; sink?: LogSink; fields?: Record<string, unknown> } = {},
): Logger {
  const min = levelRank[opts.level ?? "info"];
  const sink: LogSink = opts.sink ?? stderrWriter.sink;
  const make = (bound: Record<string, unknown>): Logger => {
    const write = (level: LogLevel, msg: string, fields?: Record<string, unknown>) => {
      if (levelRank[level] < min) return;
      const record: Record<string, unknown> = {
        time: new Date().toISOString(),
        level,
        msg,
        ...requestContext.getStore(),
        ...bound,
      };
      for (const [k, v] of Object.entries(fields ?? {})) {
        record[k] = v instanceof Error ? describeError(v) : v;
      }
      let line: string;
      try {
        // Scrubbed before serialising, where every string is still as it was registered; the scrub of
        // the whole line after it catches what spans keys and values.
        line = JSON.stringify(scrubbedTree(record, secrets));
      } catch {
        line = JSON.stringify({
          time: record.time,
          level,
          msg: secrets.scrub(msg),
          note: "fields not serialisable",
        });
      }
      sink(secrets.scrub(line), level);
    };
    return {
      debug: (m, f) => write("debug", m, f),
      info: (m, f) => write("info", m, f),
      warn: (m, f) => write("warn", m, f),
      error: (m, f) => write("error", m, f),
      child: (f) => make({ ...bound, ...f }),
    };
  };
  return make(opts.fields ?? {});
}
