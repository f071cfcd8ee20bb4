import assert from "node:assert/strict";
import { WebClient } from "@slack/web-api";
import { createConsoleApp } from "../../sandbox/console.ts";
import { SlackStandIn } from "../../standins/slack.ts";

Deno.test("the console shows and serves a shared file only to who may see it in Slack", async (t) => {
  const slack = await SlackStandIn.start({ users: { U0ALICE: { name: "alice" }, U0BOB: { name: "bob" } } });
  const web = new WebClient(slack.botToken, { slackApiUrl: slack.apiUrl, retryConfig: { retries: 0 } });
  const app = createConsoleApp({
    slack,
    eventsUrl: "http://127.0.0.1:9/slack/events", // nothing is delivered in this test
    teamId: "T0TEST",
    channel: { id: "C0OPS", name: "ops" },
    users: [
      { id: "U0ALICE", name: "alice", role: "operator", color: "#000" },
      { id: "U0BOB", name: "bob", role: "approver", color: "#000" },
    ],
    subcommands: () => [],
    trouble: { list: () => [], run: () => Promise.resolve("") },
    longPollMs: 10,
  });
  /** Uploads `name` and shares it in `channel` (or leaves it private, or not even completed). */
  const upload = async (name: string, channel: string | "private" | "incomplete") => {
    const bytes = new TextEncoder().encode(`a,b\n1,${name}\n`);
    const u = await web.files.getUploadURLExternal({ filename: name, length: bytes.length });
    await (await fetch(u.upload_url!, { method: "POST", body: bytes })).body?.cancel();
    if (channel === "incomplete") return u.file_id!;
    await web.files.completeUploadExternal({
      files: [{ id: u.file_id!, title: name }],
      ...(channel === "private" ? {} : { channel_id: channel, initial_comment: `here is ${name}` }),
    });
    return u.file_id!;
  };
  const feed = async (user: string) => {
    const res = await app.request(`http://127.0.0.1/api/feed?user=${user}&since=-1`);
    const body = await res.json();
    const names = (entries: { file?: { name: string } }[]) =>
      entries.flatMap((e) => e.file ? [e.file.name] : []);
    return { channel: names(body.entries), dm: names(body.dm.entries), dmId: body.dm.id };
  };
  const download = (id: string, user: string) => app.request(`http://127.0.0.1/api/files/${id}?user=${user}`);
  try {
    const aliceDm = (await web.conversations.open({ users: "U0ALICE" })).channel!.id!;
    const ids = {
      alice: await upload("alice.csv", aliceDm),
      ops: await upload("ops.csv", "C0OPS"),
      private: await upload("private.csv", "private"),
      incomplete: await upload("incomplete.csv", "incomplete"),
    };

    await t.step(
      "listed: alice's DM file for alice, the channel's for both, the others for nobody",
      async () => {
        assert.deepEqual(await feed("U0ALICE"), { channel: ["ops.csv"], dm: ["alice.csv"], dmId: aliceDm });
        assert.deepEqual(await feed("U0BOB"), { channel: ["ops.csv"], dm: [], dmId: undefined });
      },
    );

    await t.step(
      "downloaded by the same rule; every refusal is the 404 of a file that does not exist",
      async () => {
        const res = await download(ids.alice, "U0ALICE");
        assert.equal(res.status, 200);
        assert.equal(await res.text(), "a,b\n1,alice.csv\n");
        assert.match(res.headers.get("content-disposition") ?? "", /attachment; filename="alice.csv"/);
        assert.equal(res.headers.get("content-type"), "text/csv; charset=utf-8");
        assert.equal((await download(ids.ops, "U0BOB")).status, 200);
        for (
          const [id, user] of [
            [ids.alice, "U0BOB"],
            [ids.private, "U0ALICE"],
            [ids.incomplete, "U0ALICE"],
            ["FNOSUCHFILE", "U0ALICE"],
          ]
        ) {
          const r = await download(id, user);
          assert.equal(r.status, 404, `${id} as ${user}`);
          assert.deepEqual(await r.json(), { error: "no such file" });
        }
        assert.equal((await download(ids.alice, "U0MALLORY")).status, 400, "an unknown person is refused");
      },
    );
  } finally {
    app.close();
    await slack.stop();
  }
});
