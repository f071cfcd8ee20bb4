/**
 * Structured JSON logs, one line per event, with every known secret scrubbed before it is written.
 *
 * Secrets reach the process from env (Slack tokens, signing secret, Vault token) and from Vault (role
 * passwords). Each is registered with {@link Secrets} when it is read, and the logger replaces any
 * occurrence in a line, so a library error that echoes a connection string cannot leak it.
 *
 * @module
 */

import { AsyncLocalStorage } from "node:async_hooks";
import { describeError } from "./errors.ts";

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

/** Values that must never be written anywhere. Shared by the logger and the audit log. */
export class Secrets {
  #values = new Set<string>();

  /** Remembers a secret; values shorter than 6 characters are ignored (they would mask ordinary words). */
  add(value: string | undefined | null): void {
    if (value && value.length >= 6) this.#values.add(value);
  }

  /** Replaces every registered secret in `text` with `[redacted]`. */
  scrub(text: string): string {
    let out = text;
    for (const v of this.#values) {
      if (out.includes(v)) out = out.split(v).join("[redacted]");
    }
    return out;
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
export type LogSink = (line: string) => void;

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
  const sink: LogSink = opts.sink ?? ((line) => console.error(line));
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
        line = JSON.stringify(record);
      } catch {
        line = JSON.stringify({ time: record.time, level, msg, note: "fields not serialisable" });
      }
      sink(secrets.scrub(line));
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
