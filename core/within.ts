/**
 * Bounded waits, as shutdown and drains use them.
 *
 * @module
 */

/** Waits until `p` settles or `ms` pass, whichever comes first; never rejects (callers look at what is left). */
export async function within(p: Promise<unknown>, ms: number): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  await Promise.race([
    p.then(() => undefined, () => undefined),
    new Promise((r) => (timer = setTimeout(r, Math.max(0, ms)))),
  ]);
  clearTimeout(timer);
}
