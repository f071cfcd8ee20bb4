import assert from "node:assert/strict";
import { startCluster } from "../../standins/cluster.ts";
import { OPS_CHANNEL, startTestBot, testConfig, USERS } from "../support/bot.ts";
import { prepareGateTables, registerGateTest, runsOf } from "../support/gate_op.ts";
import { ask, ephemeralTo } from "../support/gate.ts";
import { waitFor } from "../../standins/wait.ts";
import { ACTIONS, SHARE_ACTION } from "../../views/actions.ts";
import { approverMentions } from "../../views/approval.ts";

registerGateTest();

/** The value of the first button with `action` in a list of blocks. */
function buttonValue(blocks: unknown[] | undefined, action: string): string | undefined {
  for (const b of (blocks ?? []) as any[]) {
    for (const e of [...(b.elements ?? []), ...(b.accessory ? [b.accessory] : [])]) {
      if (e.action_id === action) return e.value;
    }
  }
  return undefined;
}

Deno.test("/bisman requests, cancel, approver mentions and the one reminder, through signed Slack requests", async (t) => {
  await using cluster = await startCluster({ name: "requests" });
  const target = cluster.primary.sql();
  await prepareGateTables(target);
  const config = testConfig(cluster, (doc) => {
    doc.policies = { gate_test: { expiry_minutes: 30 } };
  });
  // Both replicas read the same clock, which the test moves forward to reach two thirds of the expiry.
  let shift = 0;
  const now = () => new Date(Date.now() + shift);
  const stateDb = await cluster.createDatabase("reqstate");
  const tb = await startTestBot(cluster, { config, stateDb, start: { now } });
  const tb2 = await startTestBot(cluster, { config, stateDb, slack: tb.slack, start: { now } });
  const mentionPosts = (id: number) =>
    tb.slack.calls.filter((c) =>
      c.method === "chat.postMessage" && /<@U0CAROL>/.test(JSON.stringify(c.args)) &&
      (JSON.stringify(c.args).includes(`"request_id":${id}`) ||
        JSON.stringify(c.args).includes(`request #${id} `))
    );
  try {
    let r1 = 0;
    await t.step(
      "a request's message mentions its eligible approvers (not the requester), once",
      async () => {
        r1 = (await ask(tb, "gate-test q1", USERS.alice)).id!;
        const msg = tb.approvalMessage(r1)!;
        const text = JSON.stringify(msg.blocks);
        assert.match(text, /Approvers: <@U0BOB> <@U0CAROL> <!subteam\^S0DBAS>/);
        assert.ok(!text.includes("<@U0ALICE> <@"), "the requester is not pinged");
        assert.equal(mentionPosts(r1).length, 1, "posted once; edits do not ping again");
        const view = (await tb.bot.gate.view(r1))!;
        assert.equal(
          approverMentions({ ...view.request, requester_id: USERS.bob }),
          "<@U0CAROL> <!subteam^S0DBAS>",
        );
      },
    );

    let r2 = 0;
    await t.step(
      "requests lists pending ones with state, action, target, requester, approvals, age, link",
      async () => {
        r2 = (await ask(tb, "gate-test q2", USERS.bob)).id!;
        assert.equal(await tb.click(ACTIONS.approve, r2, USERS.carol), 200);
        await tb.waitForState(r2, "succeeded");
        const r = await ask(tb, "requests", USERS.dave);
        assert.equal(r.visibility, "ephemeral");
        assert.match(r.text, /^Pending requests: 1$/m);
        const line = new RegExp(
          `^#${r1} pending gate_test on main by U0ALICE, 0/1 approvals, \\d+ s old ` +
            `https://bisman-standin\\.slack\\.com/archives/C0OPS/p\\d+$`,
          "m",
        );
        assert.match(r.text, line);
        assert.ok(!r.text.includes(`#${r2} `), "a finished request is not pending");
      },
    );

    await t.step("requests all and mine show finished requests with their final state", async () => {
      const all = await ask(tb, "requests all since=1h", USERS.dave);
      assert.match(all.text, new RegExp(`^#${r2} succeeded gate_test on main by U0BOB, 1/1 approvals`, "m"));
      assert.match(all.text, new RegExp(`^#${r1} pending gate_test`, "m"));
      const mine = await ask(tb, "requests mine", USERS.bob);
      assert.match(mine.text, new RegExp(`^#${r2} succeeded`, "m"));
      assert.ok(!mine.text.includes(`#${r1} `), "alice's request is not bob's");
      const bad = await ask(tb, "requests yesterday", USERS.bob);
      assert.match(bad.text, /Bad argument 1: pending, mine or all/);
    });

    await t.step("an outsider cannot cancel, by command or button; nothing changes", async () => {
      const r = await ask(tb, `cancel ${r1}`, USERS.dave);
      assert.match(r.text, /Cancelling someone else's request is for operators/);
      const before = tb.slack.ephemerals.length;
      assert.equal(await tb.click(ACTIONS.cancel, r1, USERS.dave), 200);
      await ephemeralTo(tb, USERS.dave, /for operators/, before);
      assert.equal((await tb.bot.gate.view(r1))!.request.state, "pending");
    });

    await t.step("the requester cancels: state, message and audit say so", async () => {
      const r = await ask(tb, `cancel #${r1}`, USERS.alice);
      assert.match(r.text, new RegExp(`Request #${r1} cancelled`));
      await tb.waitForState(r1, "cancelled");
      assert.match(tb.approvalMessage(r1)!.text!, /cancelled/);
      assert.ok(!JSON.stringify(tb.approvalMessage(r1)!.blocks).includes(ACTIONS.approve), "no buttons left");
      const rows = await tb.bot.deps.audit.rows({ requestId: r1 });
      const cancelled = rows.filter((x) => x.action === "request.cancelled");
      assert.equal(cancelled.length, 1);
      assert.equal(cancelled[0].actor, USERS.alice);
      const refused = rows.filter((x) => x.action === "approval.refused" && x.actor === USERS.dave);
      assert.equal(refused.length, 2, "both of the outsider's attempts are on record");
    });

    await t.step("a cancelled request cannot be approved, nor cancelled again", async () => {
      const before = tb.slack.ephemerals.length;
      assert.equal(await tb.click(ACTIONS.approve, r1, USERS.carol), 200);
      await ephemeralTo(tb, USERS.carol, new RegExp(`Request #${r1} was cancelled by alice`), before);
      assert.equal(await runsOf(target, "q1"), 0);
      assert.match((await ask(tb, `cancel ${r1}`, USERS.alice)).text, /was cancelled/);
    });

    await t.step("a running operation that cannot stop safely says so instead of stopping", async () => {
      const r3 = (await ask(tb, "gate-test q3 hold=3000", USERS.alice)).id!;
      assert.equal(await tb.click(ACTIONS.approve, r3, USERS.carol), 200);
      await waitFor(async () => (await tb.bot.gate.view(r3))?.request.state === "running", {
        what: "q3 running",
      });
      await waitFor(() => /cannot stop safely mid-way/.test(JSON.stringify(tb.approvalMessage(r3)?.blocks)), {
        what: "the running message to say it cannot stop",
      });
      assert.ok(!buttonValue(tb.approvalMessage(r3)!.blocks, ACTIONS.cancel), "no Stop button");
      const r = await ask(tb, `cancel ${r3}`, USERS.alice);
      assert.match(r.text, /is running and cannot stop safely mid-way: it runs to its end/);
      await tb.waitForState(r3, "succeeded");
      assert.equal(await runsOf(target, "q3"), 1);
    });

    await t.step(
      "exactly one reminder at two thirds of the expiry, in the thread, from two replicas",
      async () => {
        const r4 = (await ask(tb, "gate-test q4", USERS.alice)).id!;
        const msg = tb.approvalMessage(r4)!;
        assert.deepEqual(
          await Promise.all([tb.bot.gate.remind(), tb2.bot.gate.remind()]),
          [0, 0],
          "not yet due",
        );
        shift = 21 * 60_000; // 21 of 30 minutes
        const sent = await Promise.all([
          tb.bot.gate.remind(),
          tb2.bot.gate.remind(),
          tb.bot.gate.remind(),
          tb2.bot.gate.remind(),
        ]);
        assert.equal(sent.reduce((a, b) => a + b, 0), 1, `one claim in all: ${sent}`);
        const run = await tb2.bot.scheduler.runNow("approval_expiry", {
          userId: USERS.bob,
          via: "slack",
          teamId: "T0TEST",
        });
        assert.match(run.summary ?? "", /0 reminded/, "the scheduled sweep finds it already reminded");
        const reminders = tb.slack.messages.filter((m) =>
          m.thread_ts === msg.ts && /still needs/.test(m.text ?? "")
        );
        assert.equal(reminders.length, 1);
        assert.match(
          reminders[0].text!,
          new RegExp(
            `<@U0BOB> <@U0CAROL> <!subteam\\^S0DBAS>: request #${r4} \\(gate_test on main\\) still needs 1 approval\\(s\\); it expires in about 9 min`,
          ),
        );
        assert.equal(mentionPosts(r4).length, 2, "the message and its one reminder: no other pings");
        const audit = (await tb.bot.deps.audit.rows({ requestId: r4 })).filter((x) =>
          x.action === "request.reminded"
        );
        assert.equal(audit.length, 1);
        assert.equal(
          (await tb.bot.gate.view(r4))!.request.state,
          "pending",
          "a reminder changes nothing else",
        );
      },
    );

    await t.step(
      "a query result is ephemeral with Post to channel; only its asker posts it, once",
      async () => {
        const before = tb.slack.responses.length;
        await ask(tb, "requests all since=1h", USERS.bob);
        const reply = tb.slack.responses.slice(before).at(-1)!.body as {
          blocks?: unknown[];
          response_type?: string;
        };
        assert.equal(reply.response_type, "ephemeral");
        const value = buttonValue(reply.blocks, SHARE_ACTION);
        assert.ok(value, "the answer carries Post to channel");
        const click = async (user: string) => {
          const res = await tb.slack.sendBlockAction(tb.eventsUrl, {
            user_id: user,
            action_id: SHARE_ACTION,
            value: value!,
            channel_id: OPS_CHANNEL,
            message_ts: "1700000000.000100",
          });
          await res.body?.cancel();
        };
        const eph = tb.slack.ephemerals.length;
        await click(USERS.dave);
        await ephemeralTo(tb, USERS.dave, /Only the person who asked can post it/, eph);
        await click(USERS.bob);
        const posted = await waitFor(
          () =>
            tb.slack.messages.find((m) =>
              /posted this answer to `\/bisman requests`/.test(JSON.stringify(m.blocks))
            ),
          { what: "the shared answer in the channel" },
        );
        assert.equal(posted.channel, OPS_CHANNEL);
        assert.match(posted.text!, /All requests: \d+/);
        await click(USERS.bob);
        await ephemeralTo(tb, USERS.bob, /already in the channel/, eph);
        const shared = (await tb.bot.deps.audit.rows()).filter((x) => x.action === "reply.shared");
        assert.equal(shared.length, 1);
      },
    );
  } finally {
    await tb2.stop();
    await tb.stop();
  }
});
