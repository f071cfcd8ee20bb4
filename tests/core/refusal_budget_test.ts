import assert from "node:assert/strict";
import { RefusalBudget } from "../../core/refusal_budget.ts";

Deno.test("RefusalBudget reports at most N refusals a minute and sums up the rest as one", () => {
  let now = 1_000_000;
  const seen: { reason: string; detail: Record<string, unknown> }[] = [];
  const budget = new RefusalBudget((reason, detail) => seen.push({ reason, detail }), 3, () => now);
  for (let i = 0; i < 10; i++) budget.report("bad_token", { i });
  assert.deepEqual(seen.map((s) => s.detail.i), [0, 1, 2], "the first three, one by one");
  now += 60_000;
  budget.report("bad_token", { i: 10 });
  assert.deepEqual(seen.slice(3), [
    { reason: "suppressed", detail: { count: 7, window_seconds: 60 } },
    { reason: "bad_token", detail: { i: 10 } },
  ], "a new minute first reports what the last one suppressed");
  for (let i = 11; i < 15; i++) budget.report("bad_token", { i });
  budget.flush();
  assert.deepEqual(seen.at(-1), { reason: "suppressed", detail: { count: 2, window_seconds: 60 } });
  budget.flush();
  assert.equal(seen.filter((s) => s.reason === "suppressed").length, 2, "nothing twice");
});
