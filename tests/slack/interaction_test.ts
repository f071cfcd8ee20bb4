import assert from "node:assert/strict";
import { invokerOfInteraction } from "../../slack/interaction.ts";
import { startCluster } from "../../standins/cluster.ts";
import { waitFor } from "../../standins/wait.ts";
import { ACTIONS } from "../../views/actions.ts";
import { OPS_CHANNEL, startTestBot, TEAM, USERS } from "../support/bot.ts";
import { ask, ephemeralTo } from "../support/gate.ts";
import { prepareGateTables, registerGateTest, runsOf } from "../support/gate_op.ts";

const EXTERNAL = "T0EXTERNAL";

Deno.test("invokerOfInteraction(): the clicking user's own workspace decides, not the payload's team", () => {
  const connect = invokerOfInteraction({
    user: { id: USERS.carol, team_id: EXTERNAL },
    team: { id: TEAM },
    channel: { id: OPS_CHANNEL },
  });
  assert.equal(connect.teamId, EXTERNAL);
  assert.equal(invokerOfInteraction({ user: { id: USERS.carol }, team: { id: TEAM } }).teamId, TEAM);
  assert.equal(invokerOfInteraction({ user: { id: USERS.carol, team_id: TEAM }, team: null }).teamId, TEAM);
});

Deno.test("a Slack Connect member of another workspace is refused: a click in the shared channel approves nothing, a command requests nothing", async (t) => {
  registerGateTest();
  await using cluster = await startCluster({ name: "slack-connect" });
  await prepareGateTables(cluster.primary.sql());
  const tb = await startTestBot(cluster);
  try {
    const { id } = await ask(tb, "gate-test connect1");
    assert.ok(id, "a request");
    const m = tb.approvalMessage(id)!;
    const approve = (m.blocks as any[]).flatMap((b) => b.elements ?? []).find((e: any) =>
      e.action_id === ACTIONS.approve
    );

    await t.step(
      "the click carries the shared channel's team and the user's own: refused by the user's",
      async () => {
        // What Slack delivers for a click in a shared channel by a member of another organisation: the payload's
        // team is the channel's side, the user's team_id is their home. The user ID is an approver's, so only the
        // workspace check stands between this click and an approval.
        const payload = {
          type: "block_actions",
          user: { id: USERS.carol, username: "carol", name: "carol", team_id: EXTERNAL },
          api_app_id: "A0BISMAN",
          token: "unused",
          container: { type: "message", message_ts: m.ts, channel_id: m.channel, is_ephemeral: false },
          trigger_id: tb.slack.triggerId(),
          team: { id: TEAM, domain: "bisman-standin" },
          enterprise: null,
          is_enterprise_install: false,
          channel: { id: m.channel, name: "ops" },
          message: { type: "message", ts: m.ts, text: m.text ?? "", blocks: m.blocks },
          state: { values: {} },
          response_url: tb.slack.responseUrl({ user: USERS.carol, channel: m.channel, originTs: m.ts }),
          actions: [{
            action_id: ACTIONS.approve,
            block_id: "b1",
            value: approve.value,
            type: "button",
            action_ts: String(Date.now() / 1000),
          }],
        };
        const body = new URLSearchParams({ payload: JSON.stringify(payload) }).toString();
        const res = await fetch(tb.eventsUrl, {
          method: "POST",
          headers: { "content-type": "application/x-www-form-urlencoded", ...tb.slack.sign(body) },
          body,
        });
        await res.body?.cancel();
        assert.equal(res.status, 200);
        await ephemeralTo(tb, USERS.carol, new RegExp(`workspace ${EXTERNAL}`));
        await tb.bot.gate.idle();
        assert.equal((await tb.bot.gate.view(id!))!.request.state, "pending");
        assert.equal(await runsOf(cluster.primary.sql(), "connect1"), 0);
      },
    );

    await t.step("a command typed by them arrives with their own team_id: refused", async () => {
      const r = await ask(tb, "gate-test connect2", USERS.bob, { team_id: EXTERNAL });
      assert.match(r.text, new RegExp(`workspace ${EXTERNAL}`));
      assert.equal(r.id, undefined);
    });

    await t.step("the same approver from the configured workspace approves, and it runs once", async () => {
      assert.equal(await tb.click(ACTIONS.approve, id!, USERS.carol), 200);
      await tb.waitForState(id!, "succeeded");
      await waitFor(async () => (await runsOf(cluster.primary.sql(), "connect1")) === 1, { what: "one run" });
    });
  } finally {
    await tb.stop();
  }
});
