import assert from "node:assert/strict";
import { IdleReclaimer } from "../../core/idle_reclaim.ts";

const MiB = 1024 * 1024;

/** A reclaimer over a fake gc and heap size, driven by explicit tick times. */
function fixture(opts: { busy?: () => boolean } = {}) {
  const calls: unknown[] = [];
  let heap = 40 * MiB;
  let rss = 90 * MiB;
  const r = new IdleReclaimer({
    busy: opts.busy ?? (() => false),
    idleMs: 2000,
    growthBytes: 2 * MiB,
    gc: (o) => {
      calls.push(o);
      heap = 28 * MiB;
    },
    memory: () => ({ heapTotal: heap, rss }),
    rssGrowthBytes: 4 * MiB,
    trimAfterBytes: 16 * MiB,
    trim: () => {
      calls.push("trim");
      return true;
    },
  });
  return { r, calls, grow: (b: number) => (heap += b), growNative: (b: number) => (rss += b) };
}

Deno.test("reclaims once after idleMs without requests, with the last-resort flavor", () => {
  const { r, calls } = fixture();
  assert.equal(r.tick(0), false); // first look: the quiet period starts
  assert.equal(r.tick(1000), false);
  assert.equal(r.tick(2000), true);
  // The GC only: a quiet start is no burst, and loading the trim (FFI) would cost more than it gives.
  assert.deepEqual(calls, [{ type: "major", execution: "sync", flavor: "last-resort" }]);
  // The heap did not grow since: no second GC however long it stays idle.
  assert.equal(r.tick(10_000), false);
  assert.equal(calls.length, 1);
});

Deno.test("a request restarts the quiet period; steady requests never reclaim", () => {
  const { r, calls } = fixture();
  for (let t = 0; t <= 20_000; t += 500) {
    r.requests++;
    assert.equal(r.tick(t), false);
  }
  assert.equal(r.tick(21_000), false); // quiet since 20 000 only
  assert.equal(r.tick(22_000), true);
  assert.equal(calls.length, 1);
});

Deno.test("nothing while work runs in the background; after it ends, once the heap grew again", () => {
  let busy = true;
  const { r, calls, grow } = fixture({ busy: () => busy });
  for (let t = 0; t <= 10_000; t += 500) assert.equal(r.tick(t), false);
  busy = false;
  assert.equal(r.tick(10_500), false);
  assert.equal(r.tick(12_500), true);
  grow(1 * MiB);
  assert.deepEqual(r.tick(20_000), false, "grew less than growthBytes");
  grow(2 * MiB);
  assert.equal(r.tick(20_500), true);
  assert.equal(calls.length, 2);
});

Deno.test("without --expose-gc it is disabled and start() sets no timer", () => {
  const r = new IdleReclaimer({ busy: () => false, gc: undefined });
  // `deno test` runs without --expose-gc, so globalThis.gc is absent here.
  assert.deepEqual(typeof (globalThis as { gc?: unknown }).gc, "undefined");
  assert.equal(r.enabled, false);
  r.start();
  assert.equal(r.tick(0), false);
  assert.equal(r.tick(60_000), false);
  r.stop();
});

Deno.test("native memory growing alone (resident size, not V8's heap) gets a reclaim; after a burst's growth, a trim too", () => {
  const gc = { type: "major", execution: "sync", flavor: "last-resort" };
  const { r, calls, growNative } = fixture();
  assert.equal(r.tick(0), false);
  assert.equal(r.tick(2000), true); // the first idle moment after start
  growNative(3 * MiB);
  assert.equal(r.tick(10_000), false, "grew less than rssGrowthBytes");
  growNative(2 * MiB);
  assert.equal(r.tick(10_500), true);
  assert.deepEqual(calls, [gc, gc], "5 MiB is not a burst: no trim");
  growNative(40 * MiB);
  assert.equal(r.tick(20_000), true);
  assert.deepEqual(calls, [gc, gc, gc, "trim"], "after 40 MiB of growth the GC is followed by a trim");
});
