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

/**
 * Waits (at most `timeoutMs`) until `pending` is empty, its members removing themselves as they settle (work
 * started meanwhile is waited for too); returns how many are left.
 */
export async function drainSet(pending: Set<Promise<unknown>>, timeoutMs: number): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  while (pending.size && Date.now() < deadline) {
    await within(Promise.allSettled([...pending]), deadline - Date.now());
  }
  return pending.size;
}
