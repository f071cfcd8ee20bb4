import assert from "node:assert/strict";
import {
  type AlertView,
  renderAlertEvent,
  renderAlertParent,
  renderStormDetail,
  renderStormParent,
} from "../../views/alerts.ts";
import { ALERT_ACTIONS, parseAlertButton } from "../../views/actions.ts";

/** Checks what the Slack stand-in (and Slack) would refuse: block count, text lengths, buttons. */
function assertWithinLimits(blocks: any[]) {
  assert.ok(blocks.length <= 50, `${blocks.length} blocks`);
  for (const b of blocks) {
    if (b.text) assert.ok(b.text.text.length <= 3000, `section of ${b.text.text.length}`);
    if (b.fields) {
      assert.ok(b.fields.length <= 10);
      for (const f of b.fields) assert.ok(f.text.length <= 2000);
    }
    for (const e of b.elements ?? []) {
      if (e.type === "button") {
        assert.ok(e.text.text.length <= 75);
        assert.ok(e.value.length <= 2000);
      } else assert.ok(e.text.length <= 3000);
    }
  }
}

const hostile: AlertView = {
  fingerprint: "deadbeef00000001",
  alertname: "HighReplicationLag",
  status: "firing",
  labels: Object.fromEntries([
    ["alertname", "HighReplicationLag"],
    ["instance", "<!channel> db1:5432"],
    ...Array.from({ length: 100 }, (_, i) => [`label_${i}`, "x".repeat(5000)]),
  ]),
  annotations: {
    summary: "<@U0ALICE> *lag* " + "y".repeat(10_000),
    description: "z".repeat(10_000),
    other: "o",
  },
  startsAt: "2026-01-01T10:00:00.123456789Z",
  endsAt: null,
  source: "alertmanager",
};

Deno.test("renderAlertParent() keeps hostile labels and annotations within Slack's limits and escapes mentions", () => {
  const body = renderAlertParent(hostile, [
    { key: "show_lag", label: "Show lag", gated: false },
    { key: "promote_replica", label: "Promote replica", gated: true },
  ]);
  assertWithinLimits(body.blocks);
  const shown = JSON.stringify(body.blocks);
  assert.ok(!shown.includes("<!channel>"), "a label cannot ping the channel");
  assert.ok(!shown.includes("<@U0ALICE>"), "an annotation cannot mention a user");
  assert.ok(body.text.length <= 300);
  const actions = body.blocks.find((b: any) => b.type === "actions") as any;
  assert.deepEqual(actions.elements.map((e: any) => e.action_id), [
    ALERT_ACTIONS.show_lag,
    ALERT_ACTIONS.promote_replica,
  ]);
  assert.equal(actions.elements[1].style, "danger", "a gated button looks dangerous");
  assert.deepEqual(parseAlertButton(actions.elements[0].value), { fingerprint: "deadbeef00000001" });
});

Deno.test("renderAlertParent() of a resolved alert says so and drops the buttons; renderAlertEvent() words each change", () => {
  const body = renderAlertParent({ ...hostile, status: "resolved", endsAt: "2026-01-01T11:00:00Z" }, [
    { key: "show_lag", label: "Show lag", gated: false },
  ]);
  assert.match(body.text, /^RESOLVED: HighReplicationLag/);
  assert.equal(body.blocks.some((b: any) => b.type === "actions"), false);
  assert.match(
    renderAlertEvent("resolved", { ...hostile, endsAt: "2026-01-01T11:00:00.5Z" }).text,
    /^Resolved at 2026-01-01T11:00:00Z/,
  );
  assert.match(renderAlertEvent("refiring", hostile).text, /^Firing again since 2026-01-01T10:00:00Z/);
});

Deno.test("renderStormParent() counts and samples a group; renderStormDetail() names every alert it lists", () => {
  const alerts = Array.from(
    { length: 20 },
    (_, i) => ({ ...hostile, fingerprint: `f${i}`, labels: { alertname: "A", instance: `db${i}` } }),
  );
  const parent = renderStormParent(
    {
      id: 7,
      alertname: "A",
      groupKey: '{}:{alertname="A"}',
      firing: 300,
      resolved: 200,
      sample: alerts.slice(0, 15),
    },
    [{ key: "status", label: "Status", gated: false }],
  );
  assertWithinLimits(parent.blocks);
  assert.equal(parent.text, "Alert storm: 300 of 500 A alerts firing");
  assert.match(JSON.stringify(parent.blocks), /and 485 more in the thread/);
  const actions = parent.blocks.find((b: any) => b.type === "actions") as any;
  assert.deepEqual(parseAlertButton(actions.elements[0].value), { storm: 7 });
  const over = renderStormParent({
    id: 7,
    alertname: "A",
    groupKey: "g",
    firing: 0,
    resolved: 500,
    sample: [],
  }, []);
  assert.equal(over.text, "Alert storm over: all 500 A alerts resolved");
  const detail = renderStormDetail(alerts.map((alert) => ({ event: "firing", alert })));
  assertWithinLimits(detail.blocks);
  for (const a of alerts) assert.ok(detail.text.includes(`firing: ${a.fingerprint} `));
});
