import assert from "node:assert/strict";
import { startCluster } from "../../standins/cluster.ts";
import { OPS_CHANNEL, startTestBot, TEAM, USERS } from "../support/bot.ts";
import { waitFor } from "../../standins/wait.ts";
import { allSubcommands } from "../../commands/registry.ts";
import { parseArgs } from "../../commands/args.ts";
import { registerGateTest } from "../support/gate_op.ts";

Deno.test("/bisman help, unknown subcommands and /bisman status against a real primary and replica", async (t) => {
  await using cluster = await startCluster({ name: "router", replica: true });
  const tb = await startTestBot(cluster);
  try {
    await t.step("help answers inside the ack, well within 3 s, listing every subcommand", async () => {
      const r = await tb.command("help");
      assert.equal(r.status, 200);
      assert.ok(r.ms < 3000, `ack took ${r.ms} ms`);
      assert.equal(r.body.response_type, "ephemeral");
      const shown = JSON.stringify(r.body.blocks);
      for (const s of allSubcommands()) {
        assert.ok(r.body.text.includes(s.usage), `help text lists ${s.name}`);
        assert.ok(
          shown.includes(s.usage.replace(/[<>&]/g, "")) || shown.includes(s.name),
          `help blocks list ${s.name}`,
        );
      }
    });

    await t.step("help <subcommand> shows one, help <unknown> says so", async () => {
      const one = await tb.command("help status");
      assert.match(one.body.text, /\/bisman status \[target\]/);
      const none = await tb.command("help nosuch");
      assert.match(none.body.text, /No subcommand "nosuch"/);
    });

    await t.step(
      "help is rendered once but still lists a subcommand registered after its first answer",
      async () => {
        const before = await tb.command("help");
        assert.ok(!before.body.text.includes("/bisman gate-test"));
        registerGateTest();
        const after = await tb.command("help");
        assert.ok(after.body.text.includes("/bisman gate-test"), "the newly registered subcommand is listed");
        assert.ok(JSON.stringify(after.body.blocks).includes("gate-test"));
      },
    );

    await t.step("an unknown subcommand gets an ephemeral error with a suggestion", async () => {
      const r = await tb.command("stauts");
      assert.equal(r.status, 200);
      assert.equal(r.body.response_type, "ephemeral");
      assert.match(r.body.text, /Unknown subcommand "stauts"/);
      assert.match(r.body.text, /Did you mean `\/bisman status`\?/);
      assert.match(r.body.text, /\/bisman help/);
    });

    await t.step("bad arguments are named with the usage", async () => {
      const r = await tb.command("status 'prod; drop table x'");
      assert.equal(r.body.response_type, "ephemeral");
      assert.match(r.body.text, /Bad argument 1: a target name/);
      assert.match(r.body.text, /Usage: `\/bisman status \[target\]`/);
      const unknownTarget = await tb.command("status nosuch");
      assert.match(unknownTarget.body.text, /Unknown target "nosuch": configured targets are main/);
    });

    await t.step("a command from another workspace or channel is refused", async () => {
      const other = await tb.command("status", USERS.alice, { team_id: "T0OTHER" });
      assert.match(other.body.text, /workspace T0OTHER/);
      const chan = await tb.command("status", USERS.alice, { channel_id: "C0RANDOM" });
      assert.match(chan.body.text, /answers only in/);
      assert.equal(TEAM, "T0TEST");
    });

    await t.step("status reports the primary as primary and the replica as standby", async () => {
      const before = tb.slack.responses.length;
      const r = await tb.command("status");
      assert.equal(r.status, 200);
      assert.match(r.body.text, /Working on/);
      const reply = await waitFor(
        () => tb.slack.responses.slice(before).find((x) => /main:/.test(String(x.body.text))),
        {
          what: "status reply on the response_url",
        },
      );
      const text = String(reply.body.text);
      assert.match(text, new RegExp(`primary 127\\.0\\.0\\.1:${cluster.primary.port} primary PostgreSQL 15`));
      assert.match(
        text,
        new RegExp(`replica1 127\\.0\\.0\\.1:${cluster.replica!.port} standby PostgreSQL 15`),
      );
      assert.equal(reply.body.response_type, "ephemeral");
    });

    await t.step(
      "an answer whose response_url no longer works reaches the asker privately through the Web API",
      async () => {
        for (const spoil of ["used up", "expired"] as const) {
          const url = tb.slack.responseUrl({ user: USERS.bob, channel: OPS_CHANNEL });
          if (spoil === "used up") {
            for (let i = 0; i < 5; i++) {
              const r = await fetch(url, {
                method: "POST",
                headers: { "content-type": "application/json" },
                body: JSON.stringify({ text: `earlier answer ${i}` }),
              });
              assert.equal(r.status, 200);
              await r.body?.cancel();
            }
          } else tb.slack.advanceClock(31 * 60_000);
          const before = tb.slack.ephemerals.length;
          const r = await tb.command("status", USERS.bob, { response_url: url });
          assert.match(r.body.text, /Working on/);
          const eph = await waitFor(
            () => tb.slack.ephemerals.slice(before).find((m) => /main:/.test(m.text ?? "")),
            { what: `the status answer after the response_url was ${spoil}` },
          );
          assert.equal(
            eph.ephemeral_user,
            USERS.bob,
            "to the asker only, as the response_url answer would be",
          );
          assert.equal(eph.channel, OPS_CHANNEL);
          assert.ok(
            tb.slack.calls.some((c) =>
              c.method === "response_url" && ["used_url", "expired_url"].includes(c.error ?? "")
            ),
            "the response_url was tried first and refused",
          );
        }
      },
    );

    await t.step(
      "status reports a stopped replica as not answering, and still reports the primary",
      async () => {
        await cluster.replica!.stop("fast");
        await tb.bot.deps.targets.reset("main", "replica1");
        const before = tb.slack.responses.length;
        await tb.command("status main");
        const reply = await waitFor(
          () => tb.slack.responses.slice(before).find((x) => /main:/.test(String(x.body.text))),
          {
            what: "status reply",
          },
        );
        assert.match(String(reply.body.text), /replica1 .* DOES NOT ANSWER/);
        assert.match(String(reply.body.text), /primary .* primary PostgreSQL/);
      },
    );

    await t.step("every command was recorded in the audit log", async () => {
      // Commands are audited after their answer is sent, so wait for the last ones to land.
      const rows = await waitFor(async () => {
        const r = (await tb.bot.deps.audit.rows()).filter((x) => x.action === "command.received");
        return r.length >= 10 ? r : undefined;
      }, { what: "10 command.received audit rows" });
      assert.ok(rows.some((r) => r.outcome === "refused" && r.details.code === "unknown_subcommand"));
      assert.ok((await tb.bot.deps.audit.verify()).ok);
    });
  } finally {
    await tb.stop();
  }
});

Deno.test("parseArgs() splits positional arguments, key=value options and quoted text", () => {
  assert.deepEqual(parseArgs('freeze "deploy in progress" until=17:00'), {
    subcommand: "freeze",
    positional: ["deploy in progress"],
    named: { until: "17:00" },
    rest: '"deploy in progress" until=17:00',
  });
  assert.throws(() => parseArgs('freeze "open'), /Unbalanced " quote/);
  assert.throws(() => parseArgs("status a=1 a=2"), /given twice/);
  assert.throws(() => parseArgs("x".repeat(4001)), /too long/);
});
