import assert from "node:assert/strict";
import { WebClient } from "@slack/web-api";
import { SlackStandIn } from "../../standins/slack.ts";
import { sendFile, slackApiOf, UploadFailed } from "../../slack/files.ts";
import { Secrets } from "../../core/log.ts";

Deno.test("sendFile() uploads through Slack's external flow and shares the file in the person's DM only", async (t) => {
  const slack = await SlackStandIn.start({ users: { U0BOB: { name: "bob" } } });
  const client = new WebClient(slack.botToken, { slackApiUrl: slack.apiUrl, retryConfig: { retries: 0 } });
  const secrets = new Secrets();
  secrets.add("hunter2-very-secret");
  try {
    await t.step(
      "files.uploadV2's calls in order; the bytes arrive whole; registered secrets are scrubbed",
      async () => {
        const content = "a,b\r\nü,hunter2-very-secret\r\n";
        const r = await sendFile(client, secrets, {
          user: "U0BOB",
          filename: "x.csv",
          title: "X",
          content,
          comment: "here hunter2-very-secret",
        });
        assert.equal(r.channel, "D0BOB");
        assert.deepEqual(slack.calls.map((c) => c.method), [
          "conversations.open",
          "files.getUploadURLExternal",
          "files.completeUploadExternal",
        ]);
        const f = slack.files.find((x) => x.id === r.fileId)!;
        assert.equal(f.completed, true);
        assert.equal(f.channel, "D0BOB");
        assert.equal(f.title, "X");
        assert.equal(f.filename, "x.csv");
        assert.ok(!f.content!.includes("hunter2"), "the content is scrubbed");
        assert.equal(f.content, "a,b\r\nü,[redacted]\r\n", "and otherwise whole");
        assert.ok(!f.initial_comment!.includes("hunter2"), "so is the comment");
        assert.equal(
          new TextEncoder().encode(f.content!).length,
          f.length,
          "announced and uploaded lengths agree",
        );
      },
    );

    await t.step("a step Slack refuses is named, with Slack's error", async () => {
      slack.failNext("files.completeUploadExternal", { error: "not_in_channel" });
      await assert.rejects(
        sendFile(client, secrets, { user: "U0BOB", filename: "y.csv", title: "Y", content: "1" }),
        (err) =>
          err instanceof UploadFailed && err.step === "files.uploadV2" && /not_in_channel/.test(err.message),
      );
      await assert.rejects(
        sendFile(client, secrets, { user: "U0NOBODY", filename: "z.csv", title: "Z", content: "1" }),
        (err) =>
          err instanceof UploadFailed && err.step === "conversations.open" &&
          /user_not_found/.test(err.message),
      );
    });

    await t.step(
      "an upload whose bytes do not match the announced length fails, and nothing is shared",
      async () => {
        // The HTTP layer under the client loses bytes on their way to the upload URL.
        const lossy = ((input: string | URL | Request, init?: RequestInit) =>
          String(input).includes("/upload/")
            ? fetch(input, { ...init, body: new Uint8Array([1]) })
            : fetch(input, init)) as typeof fetch;
        const lossyClient = new WebClient(slack.botToken, {
          slackApiUrl: slack.apiUrl,
          retryConfig: { retries: 0 },
          fetch: lossy,
        } as never);
        const before = slack.files.filter((f) =>
          f.completed
        ).length;
        await assert.rejects(
          sendFile(lossyClient, secrets, { user: "U0BOB", filename: "w.csv", title: "W", content: "abc" }),
          (err) => err instanceof UploadFailed && err.step === "files.uploadV2",
        );
        assert.equal(slack.files.filter((f) => f.completed).length, before);
      },
    );

    await t.step(
      "permalink() answers a message's link, and undefined for one Slack does not know",
      async () => {
        const api = slackApiOf(client, secrets);
        const posted = await client.chat.postMessage({ channel: "C0OPS", text: "hi" });
        assert.match(
          (await api.permalink("C0OPS", posted.ts!))!,
          /^https:\/\/bisman-standin\.slack\.com\/archives\/C0OPS\/p\d+$/,
        );
        assert.equal(await api.permalink("C0OPS", "1.000001"), undefined);
      },
    );
  } finally {
    await slack.stop();
  }
});
