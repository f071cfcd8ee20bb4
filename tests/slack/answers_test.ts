import assert from "node:assert/strict";
import { WebClient } from "@slack/web-api";
import { SlackStandIn } from "../../standins/slack.ts";
import { postToAsker, WorkMessage } from "../../slack/answers.ts";
import type { Reply } from "../../views/reply.ts";

const deps = {
  secrets: { scrub: (s: string) => s.replaceAll("s3cret", "[redacted]") },
  log: { warn: () => {}, error: () => {} },
} as never;

Deno.test("slack/answers: long work and late answers reach the asker through the Web API", async (t) => {
  const slack = await SlackStandIn.start({
    users: { U0ALICE: { name: "alice" } },
    channels: { C0AWAY: { name: "away", is_member: false } },
  });
  const web = new WebClient(slack.botToken, { slackApiUrl: slack.apiUrl, retryConfig: { retries: 0 } });
  const reply = (text: string, visibility?: Reply["visibility"]): Reply => ({
    text,
    blocks: [{ type: "section", text: { type: "mrkdwn", text } }],
    ...(visibility ? { visibility } : {}),
  });
  try {
    await t.step(
      "a private answer is an ephemeral message to the asker, a shared one a channel message",
      async () => {
        await postToAsker(web, deps, { channel: "C0OPS", user: "U0ALICE" }, reply("only for alice s3cret"));
        const eph = slack.ephemerals.at(-1)!;
        assert.deepEqual([eph.channel, eph.ephemeral_user, eph.text], [
          "C0OPS",
          "U0ALICE",
          "only for alice [redacted]",
        ]);
        await postToAsker(
          web,
          deps,
          { channel: "C0OPS", user: "U0ALICE" },
          reply("for everyone", "in_channel"),
        );
        assert.equal(slack.messages.at(-1)?.text, "for everyone");
      },
    );

    await t.step(
      "where the channel refuses the bot, the answer goes to the asker's direct messages",
      async () => {
        await postToAsker(web, deps, { channel: "C0AWAY", user: "U0ALICE" }, reply("in a DM"));
        const dm = slack.messages.at(-1)!;
        assert.deepEqual([dm.channel, dm.text], ["D0ALICE", "in a DM"]);
      },
    );

    await t.step(
      "a Web API call on long work's message that never settles fails at its bound and is logged",
      async () => {
        // A client without a timeout of its own, and a Slack that holds chat.update without answering.
        const patient = new WebClient(slack.botToken, {
          slackApiUrl: slack.apiUrl,
          retryConfig: { retries: 0 },
        });
        const warnings: string[] = [];
        const logged = { ...deps as object, log: { warn: (m: string) => warnings.push(m), error: () => {} } };
        const work = await WorkMessage.start(
          patient,
          logged as never,
          { channel: "C0OPS", user: "U0ALICE" },
          "/bisman restore-test main",
          { deadlineMs: 500 },
        );
        slack.failNext("chat.update", { delayMs: 600_000 }, 2);
        slack.failNext("chat.postMessage", { delayMs: 600_000 });
        await work.progress(reply("restoring"));
        assert.deepEqual(warnings, ["could not show progress"]);
        await assert.rejects(work.finish(reply("passed")), /did not settle within 500 ms/);
      },
    );

    await t.step(
      "long work: one message, edited with progress, then the answer, and the asker mentioned in its thread",
      async () => {
        const work = await WorkMessage.start(
          web,
          deps,
          { channel: "C0OPS", user: "U0ALICE" },
          "/bisman restore-test main",
        );
        assert.equal(work.channel, "C0OPS");
        for (let i = 1; i <= 12; i++) await work.progress(reply(`phase ${i}`));
        const m = () => slack.messages.find((x) => x.ts === work.ts)!;
        assert.equal(m().text, "phase 12");
        assert.equal(m().edits, 12, "progress edits the message: no limit like a response_url's five posts");
        await work.finish(reply(":white_check_mark: Restore test of main passed s3cret\nmore lines"));
        assert.match(m().text!, /^:white_check_mark: Restore test of main passed \[redacted\]/);
        assert.match(JSON.stringify(m().blocks), /<@U0ALICE> asked for `\/bisman restore-test main`/);
        const mention = slack.messages.find((x) => x.thread_ts === work.ts)!;
        assert.equal(
          mention.text,
          "<@U0ALICE> `/bisman restore-test main` finished: :white_check_mark: Restore test of main passed [redacted]",
        );
      },
    );

    await t.step("long work asked where the bot is not a member lives in the asker's DM", async () => {
      const work = await WorkMessage.start(
        web,
        deps,
        { channel: "C0AWAY", user: "U0ALICE" },
        "/bisman restore-test",
      );
      assert.equal(work.channel, "D0ALICE");
      await work.finish(reply("done"));
      assert.equal(slack.messages.find((x) => x.ts === work.ts)?.text, "done");
    });

    await t.step(
      "a 4-hour run's answer arrives although Slack's clock moved past every response_url",
      async () => {
        const work = await WorkMessage.start(
          web,
          deps,
          { channel: "C0OPS", user: "U0ALICE" },
          "/bisman restore-test",
        );
        slack.advanceClock(4 * 3600_000);
        await work.finish(reply("late but here"));
        assert.equal(slack.messages.find((x) => x.ts === work.ts)?.text, "late but here");
      },
    );
  } finally {
    await slack.stop();
  }
});
