// The Slack path of /bisman restore-test (ack, progress, result, refusals, the gate) is tested against a
// real cluster in tests/ops/restore_test_test.ts; this file covers the progress pacing on its own.
import assert from "node:assert/strict";
import { throttleProgress } from "../../commands/restore_test.ts";
import type { Reply } from "../../views/reply.ts";
import type { RestoreProgress } from "../../ops/restore_test.ts";
import { waitFor } from "../../standins/wait.ts";

const progress = (objectsDone: number): RestoreProgress => ({
  target: "main",
  backup: "bisman_x.dump",
  phase: "restoring",
  objectsDone,
  objectsTotal: 100,
  verifyDone: 0,
  verifyTotal: 2,
  elapsedMs: 0,
});

Deno.test("restore-test progress: paced, capped below Slack's 5 response_url uses, never after the answer", async (t) => {
  await t.step("nothing is sent before the first interval, however many updates arrive", async () => {
    const sent: Reply[] = [];
    const th = throttleProgress((r) => Promise.resolve(void sent.push(r)), { firstAfterMs: 10_000 });
    for (let i = 0; i < 50; i++) th.push(progress(i));
    await th.done();
    assert.equal(sent.length, 0);
  });

  await t.step("updates carry the newest state, at growing intervals, at most maxUpdates times", async () => {
    const sent: { at: number; text: string }[] = [];
    const started = performance.now();
    const th = throttleProgress(
      (r) => Promise.resolve(void sent.push({ at: performance.now() - started, text: r.text })),
      { firstAfterMs: 20, maxUpdates: 3 },
    );
    let n = 0;
    const feeder = setInterval(() => th.push(progress(++n)), 2);
    try {
      await waitFor(() => sent.length === 3, { what: "three updates", timeoutMs: 5000 });
      // 20 ms, then 40 and 80 ms later: the gaps double.
      await new Promise((r) => setTimeout(r, 300));
    } finally {
      clearInterval(feeder);
    }
    await th.done();
    assert.equal(sent.length, 3, "capped");
    assert.equal(th.sent(), 3);
    assert.ok(sent[1].at - sent[0].at >= 35 && sent[2].at - sent[1].at >= 75, JSON.stringify(sent));
    const done = sent.map((s) =>
      Number(/: restoring \(step 3 of 5\), (\d+) of 100 objects restored/.exec(s.text)![1])
    );
    assert.ok(done[0] < done[1] && done[1] < done[2], `newest state each time: ${done}`);
  });

  await t.step("done() waits for a post in flight, so the final answer cannot be overtaken", async () => {
    const order: string[] = [];
    let release!: () => void;
    const slow = new Promise<void>((r) => (release = r));
    const th = throttleProgress(async () => {
      order.push("progress started");
      await slow;
      order.push("progress delivered");
    }, { firstAfterMs: 5 });
    th.push(progress(1));
    await waitFor(() => order.length === 1, { what: "a progress post in flight" });
    const finished = th.done().then(() => order.push("final answer"));
    setTimeout(release, 30);
    await finished;
    assert.deepEqual(order, ["progress started", "progress delivered", "final answer"]);
  });

  await t.step("a failing progress post is reported and does not stop the run", async () => {
    const errors: unknown[] = [];
    const th = throttleProgress(() => Promise.reject(new Error("response_url expired")), {
      firstAfterMs: 5,
      onError: (e) => errors.push(e),
    });
    th.push(progress(1));
    await waitFor(() => errors.length === 1, { what: "the error callback" });
    await new Promise((r) => setTimeout(r, 60)); // later ticks (10, 20, 40 ms) would have posted again
    await th.done();
    assert.equal(errors.length, 1, "no more posts after a failed one");
    assert.match(String(errors[0]), /response_url expired/);
  });
});
