/**
 * glibc's `malloc_trim(0)`: gives the free pages inside malloc's heap back to the OS.
 *
 * Under a burst the runtime's native side (the HTTP server, TLS, postgres.js sockets) allocates through
 * glibc, and freed memory in the middle of the main heap stays resident: `MALLOC_TRIM_THRESHOLD_` only trims
 * its top. After the load benchmark's burst the bot sat at 159-170 MiB once idle with a V8 heap of 31 MiB and
 * 60 MiB in glibc's `[heap]` mapping; with this called after the idle reclaimer's GC, 115 MiB
 * (`deno task bench load`, "10 s later, idle"). `malloc_trim(0)` walks the free chunks and madvises their pages
 * away (glibc >= 2.8); it does not move live memory.
 *
 * It needs FFI permission for libc itself and nothing else: the image's CMD grants
 * `--allow-ffi=/lib/x86_64-linux-gnu/libc.so.6,/lib/aarch64-linux-gnu/libc.so.6`. Without that permission,
 * or on a system without glibc there, it does nothing.
 *
 * @module
 */

/** Where Debian (the image's base) keeps glibc, per architecture. */
const LIBC_PATHS = ["/lib/x86_64-linux-gnu/libc.so.6", "/lib/aarch64-linux-gnu/libc.so.6"];

type Trim = (pad: number | bigint) => number;

let trimFn: Trim | null | undefined;

/** The bound `malloc_trim`, or null when it cannot be had here (no permission, no glibc). */
function load(): Trim | null {
  for (const path of LIBC_PATHS) {
    if (Deno.permissions.querySync({ name: "ffi", path }).state !== "granted") continue;
    try {
      Deno.statSync(path);
    } catch {
      continue;
    }
    try {
      const lib = Deno.dlopen(path, { malloc_trim: { parameters: ["usize"], result: "i32" } });
      return (pad) => lib.symbols.malloc_trim(BigInt(pad));
    } catch {
      // Not glibc after all (no such symbol): nothing to trim with.
    }
  }
  return null;
}

/**
 * Runs `malloc_trim(0)` when it is available. @returns true when it ran and released memory, false when
 * it ran and had nothing to release, undefined when it is not available here
 */
export function mallocTrim(): boolean | undefined {
  if (trimFn === undefined) trimFn = load();
  return trimFn ? trimFn(0) === 1 : undefined;
}
