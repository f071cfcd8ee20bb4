/**
 * Reading dumps for `/bisman backups`, the checklist, the digest and the periodic check: each read
 * (`pg_restore --list`, or `pg_restore -f /dev/null` to the end) runs once per version of a file, and at
 * most {@link MAX_CONCURRENT_READS} at a time in the process.
 *
 * A full read of a large dump takes minutes of disk time. Ten people asking `/bisman backups` at once, or the
 * checklist while the digest runs, would otherwise read the same file ten times side by side. A result is
 * kept for the file's identity (device, inode, size, modification and change times): while the file is the
 * same, so is what pg_restore says about it; any write, rename over it or `touch` is a new identity and a
 * new read. A read already under way is shared by everyone who asks for the same identity meanwhile.
 * Outcomes that say nothing about the file (pg_restore missing, timed out, stopped) are not kept.
 *
 * @module
 */

import { listDump, readDumpToEnd, type ToolResult } from "./_pg_tools.ts";

/** Dump reads running at once in this process, whatever the file (others wait their turn). */
export const MAX_CONCURRENT_READS = 2;

/** Results kept (the newest ones); a folder check reads one file, so this covers many targets. */
const MAX_KEPT = 64;

/** What `pg_restore --list` answered, as {@link listDump} returns it. */
export type ListOutcome = Awaited<ReturnType<typeof listDump>>;

/** A counting semaphore: `run()` waits for a free slot. */
class Slots {
  #free: number;
  #waiting: (() => void)[] = [];
  constructor(n: number) {
    this.#free = n;
  }
  async run<T>(fn: () => Promise<T>): Promise<T> {
    if (this.#free > 0) this.#free--;
    else await new Promise<void>((r) => this.#waiting.push(r));
    try {
      return await fn();
    } finally {
      const next = this.#waiting.shift();
      if (next) next();
      else this.#free++;
    }
  }
}

/** The identity of a file's current version, or undefined when it cannot be read. */
async function identity(path: string): Promise<string | undefined> {
  try {
    const st = await Deno.stat(path);
    return [st.dev, st.ino, st.size, st.mtime?.getTime(), st.ctime?.getTime()].join(":");
  } catch {
    return undefined;
  }
}

/** Codes that say nothing about the file: not installed, timed out, stopped. */
const NOT_ABOUT_THE_FILE = new Set([124, 127, 130]);

/** Shared, bounded dump reads (one per process: {@link dumpReads}). */
export class DumpReads {
  readonly #slots: Slots;
  readonly #kept = new Map<string, Promise<unknown>>();
  readonly #running = new Map<string, Promise<unknown>>();
  /** pg_restore runs started (for the benchmark and the log; tests count them from outside). */
  started = 0;

  constructor(maxConcurrent = MAX_CONCURRENT_READS) {
    this.#slots = new Slots(maxConcurrent);
  }

  /** `pg_restore --list <file>`, once per version of the file. */
  list(pgRestore: string, file: string): Promise<ListOutcome> {
    return this.#once(
      `list\0${pgRestore}\0${file}`,
      file,
      () => listDump(pgRestore, file),
      (r) => r.ok || !NOT_ABOUT_THE_FILE.has(r.result.code),
    );
  }

  /** `pg_restore -f /dev/null <file>`, once per version of the file. */
  readToEnd(pgRestore: string, file: string): Promise<ToolResult> {
    return this.#once(
      `full\0${pgRestore}\0${file}`,
      file,
      () => readDumpToEnd(pgRestore, file),
      (r) => !NOT_ABOUT_THE_FILE.has(r.code),
    );
  }

  async #once<T>(
    what: string,
    file: string,
    read: () => Promise<T>,
    keep: (r: T) => boolean,
  ): Promise<T> {
    const before = await identity(file);
    // A file that cannot be stat'ed is read (and fails) every time: nothing to key it by.
    if (before === undefined) return await this.#slots.run(read);
    const key = `${what}\0${before}`;
    const known = this.#kept.get(key) ?? this.#running.get(key);
    if (known) return await (known as Promise<T>);
    const running = this.#slots.run(async () => {
      this.started++;
      return await read();
    }).then(async (r) => {
      // Changed while it was read: the answer may describe neither version, so it is not kept.
      if (keep(r) && (await identity(file)) === before) {
        this.#kept.set(key, Promise.resolve(r));
        while (this.#kept.size > MAX_KEPT) this.#kept.delete(this.#kept.keys().next().value!);
      }
      return r;
    }).finally(() => this.#running.delete(key));
    this.#running.set(key, running);
    return await running;
  }
}

/** The process's dump reads. */
export const dumpReads = new DumpReads();
