/**
 * A per-minute budget for reporting refused requests.
 *
 * Both entry points anyone can reach (`/slack/events` with a forged signature, `/alerts` with a wrong
 * token) audit what they refuse. Without a bound, each forged request would be a write to the audit log:
 * a flood could fill it and crowd out the entries that matter. Within the budget each refusal is reported;
 * past it they are only counted, and reported as one `suppressed` refusal when the minute is over.
 *
 * @module
 */

/** Where reported refusals go (the caller audits them). */
export type RefusalSink = (reason: string, detail: Record<string, unknown>) => void;

/** Reports refusals to a sink, at most `perMinute` a minute; the rest are summed up per minute. */
export class RefusalBudget {
  #window = { start: 0, reported: 0, suppressed: 0 };
  #flushTimer?: ReturnType<typeof setTimeout>;

  constructor(
    private readonly sink: RefusalSink | undefined,
    private readonly perMinute = 60,
    private readonly now: () => number = Date.now,
  ) {}

  /** Passes a refusal on within the budget; counts it otherwise. */
  report(reason: string, detail: Record<string, unknown>): void {
    const now = this.now();
    if (now - this.#window.start >= 60_000) {
      this.flush();
      this.#window = { start: now, reported: 0, suppressed: 0 };
    }
    const w = this.#window;
    if (w.reported < this.perMinute) {
      w.reported++;
      this.sink?.(reason, detail);
      return;
    }
    w.suppressed++;
    if (!this.#flushTimer) {
      this.#flushTimer = setTimeout(() => this.flush(), Math.max(0, w.start + 60_000 - now));
      Deno.unrefTimer(this.#flushTimer);
    }
  }

  /** Reports the refusals counted but not reported in the current minute, as one (also at shutdown). */
  flush(): void {
    clearTimeout(this.#flushTimer);
    this.#flushTimer = undefined;
    const w = this.#window;
    if (!w.suppressed) return;
    this.sink?.("suppressed", { count: w.suppressed, window_seconds: 60 });
    w.suppressed = 0;
  }
}
