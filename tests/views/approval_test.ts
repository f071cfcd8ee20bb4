import assert from "node:assert/strict";
import { renderApproval, renderDenyModal, renderTypedConfirmationModal } from "../../views/approval.ts";
import type { RequestView } from "../../gate/gate.ts";
import type { RequestRow } from "../../gate/store.ts";
import { ACTIONS, INPUTS, parseModalMetadata, parseRequestButton, VIEWS } from "../../views/actions.ts";

function view(patch: Partial<RequestRow> = {}, approvals: RequestView["approvals"] = []): RequestView {
  const at = new Date("2026-01-02T03:04:05Z");
  return {
    request: {
      id: 12,
      action: "reset_statements",
      target: "prod",
      args: { target: "prod" },
      plan: {
        summary: "Reset pg_stat_statements on prod's primary",
        target: "prod",
        steps: ["Connect", "Run `select pg_stat_statements_reset()`"],
        fingerprint: { statsReset: "x" },
        warnings: ["The history starts again from zero"],
        verify: ["stats_reset moved"],
        undo: ["Nothing to undo"],
      },
      plan_hash: "0123456789ab",
      notes: ["last proven restore: 3 days ago"],
      state: "pending",
      requester_id: "U0ALICE",
      requester_name: "alice",
      via: "slack",
      asked_in: "C0OPS",
      channel: "C0OPS",
      message_ts: "1.2",
      thread_ts: null,
      approvals_needed: 2,
      policy: {
        approvals: 2,
        approvers: { users: [], groups: [] },
        expiry_minutes: 15,
        typed_confirmation: false,
        allowed_during_freeze: false,
        channels: undefined,
      } as unknown as RequestRow["policy"],
      created_at: at,
      expires_at: new Date(at.getTime() + 15 * 60_000),
      started_at: null,
      finished_at: null,
      decided_by: null,
      decided_by_name: null,
      result: null,
      summary: null,
      error: null,
      deny_reason: null,
      run_by: null,
      heartbeat_at: null,
      reconcile: null,
      ...patch,
    },
    approvals,
  };
}

function buttons(blocks: unknown[]): { action_id: string; value: string; confirm?: unknown }[] {
  return (blocks as any[]).flatMap((b) => b.type === "actions" ? b.elements : []);
}

Deno.test("renderApproval() shows requester, target, plan, steps, expiry, hash and Approve/Deny/Cancel while pending", () => {
  const m = renderApproval(view({}, [{ approver: "U0BOB", approver_name: "bob", at: new Date() }]));
  const json = JSON.stringify(m.blocks);
  for (
    const part of ["<@U0ALICE>", "prod", "pg_stat_statements_reset", "0123456789ab", "<!date^", "1 of 2"]
  ) {
    assert.ok(json.includes(part), `shows ${part}`);
  }
  assert.ok(
    json.includes("stats_reset moved") && json.includes("Nothing to undo") && json.includes("last proven"),
  );
  const b = buttons(m.blocks);
  assert.deepEqual(b.map((x) => x.action_id), [ACTIONS.approve, ACTIONS.deny, ACTIONS.cancel]);
  assert.deepEqual(parseRequestButton(b[0].value), { request: 12, plan: "0123456789ab" });
  assert.ok(b[0].confirm, "Approve carries a confirm dialog");
  assert.match(m.text, /Request #12 \(reset_statements on prod\) waiting for approval \(1 of 2\)/);
});

Deno.test("renderApproval() final states have no buttons and say what happened", () => {
  const cases: [Partial<RequestRow>, RegExp][] = [
    [
      { state: "succeeded", summary: "statistics discarded (12 ms)", decided_by: "U0BOB" },
      /succeeded: statistics/,
    ],
    [{ state: "failed", error: "Reset refused" }, /failed: Reset refused/],
    [
      { state: "denied", decided_by: "U0BOB", decided_by_name: "bob", deny_reason: "not now" },
      /denied by bob: not now/,
    ],
    [{ state: "expired" }, /expired/],
    [{ state: "cancelled", decided_by: "U0ALICE" }, /cancelled/],
    [{ state: "stale", error: "The state changed: reset at X" }, /not run: The state changed: reset at X/],
    [
      { state: "interrupted", reconcile: { status: "not_done", note: "no reset" } },
      /interrupted; reconcile: not_done: no reset/,
    ],
  ];
  for (const [patch, text] of cases) {
    const m = renderApproval(view(patch));
    assert.match(m.text, text);
    assert.equal(buttons(m.blocks).length, 0, `${patch.state} has no buttons`);
  }
  assert.match(
    JSON.stringify(renderApproval(view({ state: "running", decided_by: "U0BOB" })).blocks),
    /Running/,
  );
});

Deno.test("renderApproval() stays within Slack's limits for a huge plan and escapes mrkdwn", () => {
  const steps = Array.from({ length: 2000 }, (_, i) => `step ${i} <!channel> & ${"x".repeat(200)}`);
  const m = renderApproval(view({
    plan: { summary: "s".repeat(5000), steps, fingerprint: {}, warnings: ["w".repeat(4000)] },
  }));
  assert.ok(m.blocks.length <= 50);
  assert.ok(m.text.length <= 3000);
  for (const b of m.blocks as any[]) {
    if (b.text?.text) assert.ok(b.text.text.length <= (b.type === "header" ? 150 : 3000));
  }
  assert.ok(!JSON.stringify(m.blocks).includes("<!channel>"), "no @channel from a plan");
  assert.equal(buttons(m.blocks).length, 3, "the buttons survive the cap");
  assert.match(JSON.stringify(m.blocks), /more sections of steps/);
  assert.match(JSON.stringify(m.blocks), /www/, "the warning survives the cap");
});

Deno.test("renderDenyModal() and renderTypedConfirmationModal() carry their request and ask for the right input", () => {
  const meta = { request: 12, plan: "0123456789ab", channel: "C0OPS" };
  const deny = renderDenyModal(meta, view()) as any;
  assert.equal(deny.callback_id, VIEWS.denyReason);
  assert.deepEqual(parseModalMetadata(deny.private_metadata), meta);
  assert.equal(deny.blocks[1].block_id, INPUTS.reason.block);
  assert.ok(deny.title.text.length <= 24);
  const typed = renderTypedConfirmationModal({ ...meta, expected: "prod" }, view()) as any;
  assert.equal(typed.callback_id, VIEWS.typedConfirmation);
  assert.equal(typed.blocks[1].block_id, INPUTS.typed.block);
  assert.match(JSON.stringify(typed.blocks), /Type \*prod\* to approve/);
});

Deno.test("renderApproval() says 'handed to a person', never 'Succeeded', when the run only handed its work over", () => {
  const approvals = [{ approver: "U0BOB", approver_name: "bob", at: new Date("2026-01-02T03:05:00Z") }];
  const handed = renderApproval(view({
    action: "block_address",
    state: "succeeded",
    summary: "203.0.113.7/32 is NOT blocked yet: handed to a person",
    result: { outcome: "handed_to_person", managed: false },
  }, approvals));
  const text = JSON.stringify(handed.blocks);
  assert.match(text, /Handed to a person: block_address on prod/);
  assert.match(text, /\*Handed to a person\*: 203\.0\.113\.7\/32 is NOT blocked yet/);
  assert.doesNotMatch(text, /Succeeded/);
  assert.match(handed.text, /handed to a person: /);
  const blocked = renderApproval(view({
    action: "block_address",
    state: "succeeded",
    summary: "203.0.113.7/32 blocked",
    result: { outcome: "blocked", managed: true },
  }, approvals));
  assert.match(JSON.stringify(blocked.blocks), /\*Succeeded\*: 203\.0\.113\.7\/32 blocked/);
});
