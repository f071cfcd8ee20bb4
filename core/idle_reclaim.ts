/**
 * Gives the heap's spare memory back to the OS once the bot is idle.
 *
 * Under load V8 grows its young generation (semi-spaces up to 16 MiB) and keeps the old-space pages it
 * freed for the next burst: that is what makes it fast, and shrinking the young generation for good
 * (`--max-semi-space-size=1`) cost a fifth of the bot's requests a second (README, "Measured"). At idle
 * the same pages are 20-25 MiB of resident memory nobody uses: the heap stays as large as start-up or the
 * last digest made it. So, when no request has come for `idleMs` and no job or approved operation is
 * running, and the heap grew by `growthBytes` (or the resident size by `rssGrowthBytes`) since the last
 * time, this runs V8's "last resort" full GC once (`gc({ flavor: "last-resort" })`, only with `--expose-gc`,
 * which the image's CMD passes): it also shrinks the young generation and unmaps the free pages; after a
 * burst (`trimAfterBytes`), glibc's `malloc_trim(0)` then gives back the free pages of malloc's heap
 * (core/malloc_trim.ts). The next burst grows it again; under steady load it never runs. Without
 * `--expose-gc` (tests, `deno task start`) it does nothing.
 *
 * @module
 */

import { mallocTrim } from "./malloc_trim.ts";

/** V8's `gc()` under `--expose-gc`, with the options object of V8 >= 11. */
type ExposedGc = (opts?: { type?: "major" | "minor"; execution?: "sync" | "async"; flavor?: string }) => void;

/** Options of {@link IdleReclaimer}. */
export interface IdleReclaimOptions {
  /** True while work the bot started runs in the background (jobs, approved operations). */
  busy: () => boolean;
  /** Idle this long (no request, nothing busy) before a reclaim (default 2000 ms). */
  idleMs?: number;
  /** Only when V8's heap (`heapTotal`) grew this much since the last reclaim (default 2 MiB). */
  growthBytes?: number;
  /** How often idleness is checked (default 500 ms). */
  tickMs?: number;
  /** Called after each reclaim, for the log. */
  onReclaim?: (r: { ms: number; heapBefore: number; heapAfter: number; trimmed?: boolean }) => void;
  /** The gc function (tests); default `globalThis.gc` when `--expose-gc` defined it. */
  gc?: ExposedGc;
  /**
   * V8's committed heap size and the process's resident size, in one reading (tests); default
   * `Deno.memoryUsage()`.
   */
  memory?: () => { heapTotal: number; rss: number };
  /**
   * Or when the resident size grew this much since the last reclaim (default 4 MiB): native memory (sockets,
   * TLS, a digest's connections) grows without V8's heap growing.
   */
  rssGrowthBytes?: number;
  /**
   * `trim` runs only when the resident size grew this much since the last reclaim (default 16 MiB): after a
   * burst it gave back 45-55 MiB, while loading it (FFI, once) costs 2-4 MiB that a quiet bot never earns back.
   */
  trimAfterBytes?: number;
  /**
   * Gives malloc's free pages back after the GC (default core/malloc_trim.ts, glibc's `malloc_trim(0)` when
   * the process may call it); returns true when it released memory, undefined when not available.
   */
  trim?: () => boolean | undefined;
}

/** Counts requests (a number, so the hot path pays one increment) and reclaims at idle; see the module doc. */
export class IdleReclaimer {
  /** Requests seen; the ticker compares it with its last look. */
  requests = 0;
  readonly #opts: Required<Omit<IdleReclaimOptions, "onReclaim" | "gc">> & IdleReclaimOptions;
  readonly #gc?: ExposedGc;
  #timer?: ReturnType<typeof setInterval>;
  #seen = -1;
  #quietSince = 0;
  /** heapTotal after the last reclaim; 0 before the first, so the first idle moment after start reclaims. */
  #baseline = 0;
  /** The resident size after the last reclaim (at construction before the first). */
  #rssBaseline = 0;

  constructor(opts: IdleReclaimOptions) {
    this.#opts = {
      idleMs: 2000,
      growthBytes: 2 * 1024 * 1024,
      tickMs: 500,
      memory: () => Deno.memoryUsage(),
      rssGrowthBytes: 4 * 1024 * 1024,
      trimAfterBytes: 16 * 1024 * 1024,
      trim: mallocTrim,
      ...opts,
    };
    this.#gc = opts.gc ?? (globalThis as { gc?: ExposedGc }).gc;
    // Growth counts from here: start-up itself is not a burst to trim after.
    this.#rssBaseline = this.#opts.memory().rss;
  }

  /** Whether reclaiming is possible here (`--expose-gc` given, or a gc passed in). */
  get enabled(): boolean {
    return typeof this.#gc === "function";
  }

  /** Starts checking; does nothing when not {@link enabled}. The timer never keeps the process alive. */
  start(): this {
    if (!this.enabled || this.#timer) return this;
    this.#timer = setInterval(() => this.tick(performance.now()), this.#opts.tickMs);
    Deno.unrefTimer(this.#timer);
    return this;
  }

  stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  /** One check at time `now` (ms); public for tests. @returns whether it reclaimed */
  tick(now: number): boolean {
    if (!this.#gc) return false;
    if (this.requests !== this.#seen || this.#opts.busy()) {
      this.#seen = this.requests;
      this.#quietSince = now;
      return false;
    }
    if (now - this.#quietSince < this.#opts.idleMs) return false;
    const { heapTotal: before, rss } = this.#opts.memory();
    if (
      before - this.#baseline < this.#opts.growthBytes &&
      rss - this.#rssBaseline < this.#opts.rssGrowthBytes
    ) return false;
    const t = performance.now();
    this.#gc({ type: "major", execution: "sync", flavor: "last-resort" });
    // After the GC, which frees the native memory its dead objects held (sockets' buffers among them).
    const trimmed = rss - this.#rssBaseline >= this.#opts.trimAfterBytes ? this.#opts.trim() : undefined;
    const { heapTotal: after, rss: rssAfter } = this.#opts.memory();
    this.#baseline = after;
    this.#rssBaseline = rssAfter;
    this.#opts.onReclaim?.({ ms: performance.now() - t, heapBefore: before, heapAfter: after, trimmed });
    return true;
  }
}
