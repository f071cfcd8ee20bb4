import assert from "node:assert/strict";
import { createConsoleApp, crossSiteRefusal } from "../../sandbox/console.ts";
import { SlackStandIn } from "../../standins/slack.ts";
import { Hono } from "hono";
import { csrf } from "hono/csrf";

Deno.test("the sandbox console refuses state-changing requests from another origin (403) and acts on its own page's", async (t) => {
  const slack = await SlackStandIn.start({ users: { U0ALICE: { name: "alice" } } });
  // Where the console delivers commands: it only counts them (the console is what is under test).
  const delivered: string[] = [];
  const events = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (req) => {
    delivered.push(await req.text());
    return Response.json({ text: "ok" });
  });
  const troubleRuns: string[] = [];
  const app = createConsoleApp({
    slack,
    eventsUrl: `http://127.0.0.1:${events.addr.port}/slack/events`,
    teamId: "T0TEST",
    channel: { id: "C0OPS", name: "ops" },
    users: [{ id: "U0ALICE", name: "alice", role: "operator", color: "#000" }],
    subcommands: () => [],
    trouble: {
      list: () => [{ id: "pause", label: "Pause replay", description: "", enabled: true }],
      run: (id) => {
        troubleRuns.push(id);
        return Promise.resolve("done");
      },
    },
    longPollMs: 10,
  });
  const self = "http://127.0.0.1:8123";
  const post = (path: string, headers: Record<string, string>, base = self) =>
    app.request(`${base}${path}`, {
      method: "POST",
      headers: { "content-type": "application/json", ...headers },
      body: JSON.stringify({ user: "U0ALICE", text: "help" }),
    });
  try {
    await t.step("the console's own page (same Origin) is served", async () => {
      const res = await post("/api/command", { origin: self, "sec-fetch-site": "same-origin" });
      assert.equal(res.status, 200, await res.text());
      assert.equal(delivered.length, 1);
      assert.equal((await post("/api/trouble/pause", { origin: self })).status, 200);
      assert.deepEqual(troubleRuns, ["pause"]);
      assert.equal(
        (await post("/api/command", {})).status,
        200,
        "no Origin at all: not a browser's cross-site post",
      );
    });

    await t.step(
      "a foreign Origin, a null Origin, a cross-site fetch or a rebound host name: 403, nothing acted on",
      async () => {
        const before = delivered.length;
        const cases: [string, Record<string, string>, string?][] = [
          ["/api/command", { origin: "https://evil.example" }],
          ["/api/command", { origin: "null" }],
          ["/api/command", { origin: "http://127.0.0.1:8124" }],
          ["/api/command", { "sec-fetch-site": "cross-site" }],
          ["/api/command", { origin: self, "sec-fetch-site": "same-site" }],
          ["/api/command", { origin: "http://evil.example:8123" }, "http://evil.example:8123"],
          ["/api/action", { origin: "https://evil.example" }],
          ["/api/view", { origin: "https://evil.example" }],
          ["/api/view/close", { origin: "https://evil.example" }],
          ["/api/trouble/pause", { origin: "https://evil.example", "content-type": "text/plain" }],
        ];
        for (const [path, headers, base] of cases) {
          const res = await post(path, headers, base);
          assert.equal(res.status, 403, `${path} ${JSON.stringify(headers)} ${base ?? ""}`);
          await res.body?.cancel();
        }
        assert.equal(delivered.length, before, "no command reached the bot");
        assert.deepEqual(troubleRuns, ["pause"], "no trouble was made");
      },
    );

    await t.step(
      "why not Hono's csrf middleware: it lets a JSON POST from a foreign Origin through",
      async () => {
        const h = new Hono();
        h.use("*", csrf());
        h.post("/api/command", (c) => c.text("acted"));
        const res = await h.request(`${self}/api/command`, {
          method: "POST",
          headers: { origin: "https://evil.example", "content-type": "application/json" },
          body: "{}",
        });
        assert.equal(res.status, 200, "Hono's csrf() checks form-like content types only");
        assert.equal(await res.text(), "acted");
      },
    );

    await t.step("reading (GET) is never refused", async () => {
      const res = await app.request(`${self}/api/meta`, { headers: { origin: "https://evil.example" } });
      assert.equal(res.status, 200);
      await res.body?.cancel();
      assert.equal(
        crossSiteRefusal(new Request(`${self}/api/feed`, { headers: { origin: "null" } })),
        undefined,
      );
    });
  } finally {
    app.close();
    await events.shutdown();
    await slack.stop();
  }
});
