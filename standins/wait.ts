/**
 * Bounded polling helpers for tests.
 *
 * `waitFor` calls `fn` until it yields something other than `undefined`/`false`, or throws
 * `Timed out after <N>ms waiting for <what>` (with the last error `fn` threw, if any).
 * Errors thrown by `fn` are treated as "not ready yet" so it can poll things that are still
 * starting up (e.g. a server refusing connections).
 */

export interface WaitOptions {
  /** Overall deadline in milliseconds (default 10000). */
  timeoutMs?: number;
  /** Pause between attempts in milliseconds (default 50). */
  intervalMs?: number;
  /** Human description used in the timeout message (default "condition"). */
  what?: string;
}

/** Resolves after `ms` milliseconds. */
export function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)));
}

function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

const NOT_YET = Symbol("not-yet");

/**
 * Polls `fn` until it returns a value other than `undefined` or `false` and returns that value.
 * Each attempt is itself bounded by the remaining time, so the whole wait never exceeds `timeoutMs`
 * (plus scheduling jitter).
 */
export async function waitFor<T>(
  fn: () => Promise<T | undefined | false> | T | undefined | false,
  opts: WaitOptions = {},
): Promise<T> {
  const timeoutMs = opts.timeoutMs ?? 10_000;
  const intervalMs = opts.intervalMs ?? 50;
  const what = opts.what ?? "condition";
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown = undefined;

  while (true) {
    const remaining = deadline - Date.now();
    if (remaining <= 0) break;
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      const attempt = Promise.resolve().then(fn);
      // Never leave an unhandled rejection behind if the attempt loses the race.
      attempt.catch(() => {});
      const value = await Promise.race([
        attempt,
        new Promise<typeof NOT_YET>((resolve) => {
          timer = setTimeout(() => resolve(NOT_YET), remaining);
        }),
      ]);
      if (value !== NOT_YET && value !== undefined && value !== false) return value as T;
    } catch (err) {
      lastError = err;
    } finally {
      if (timer !== undefined) clearTimeout(timer);
    }
    const left = deadline - Date.now();
    if (left <= 0) break;
    await delay(Math.min(intervalMs, left));
  }

  const suffix = lastError === undefined ? "" : `; last error: ${describe(lastError)}`;
  throw new Error(`Timed out after ${timeoutMs}ms waiting for ${what}${suffix}`, { cause: lastError });
}
