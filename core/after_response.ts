/**
 * Work that must not hold a response: a request's log line, its counter, an audit entry. Queued work runs in
 * one timer task, after the microtasks in which `Deno.serve` takes the handlers' Responses, so under a burst
 * many requests' work shares one timer.
 *
 * @module
 */

/** Work queued by {@link afterResponse}, run together in one timer task. */
const afterResponseQueue: (() => void)[] = [];

function runAfterResponse(): void {
  for (const fn of afterResponseQueue.splice(0)) {
    try {
      fn();
    } catch {
      // A log line or a counter that fails must not take the others with it.
    }
  }
}

/**
 * Runs `fn` after the responses being produced now are handed to the socket: a timer task comes after the
 * microtasks in which `Deno.serve` takes a handler's Response. Several requests' work shares one timer.
 */
export function afterResponse(fn: () => void): void {
  if (afterResponseQueue.push(fn) === 1) setTimeout(runAfterResponse, 0);
}
