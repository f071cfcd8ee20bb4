import assert from "node:assert/strict";
import { startCluster } from "../../standins/cluster.ts";
import { waitFor } from "../../standins/wait.ts";
import { OPS_CHANNEL, startTestBot, TEAM, type TestBot, USERS } from "../support/bot.ts";
import type { StoredMessage } from "../../standins/slack.ts";
import { ACTIONS } from "../../views/actions.ts";

/** Socket Mode with timings short enough for a test: a dead socket is noticed and replaced within a second. */
const socketEnv = (appToken: string) => ({ SLACK_APP_TOKEN: appToken });
/** The Slack stand-in's default app-level token. */
const STANDIN_APP_TOKEN = "xapp-1-A0STANDIN-test-app-token";
const socketTimings = { socketMode: { clientPingTimeoutMs: 1500, retryBaseMs: 100 } };

function buttonValue(m: StoredMessage, actionId: string): string {
  for (const b of (m.blocks ?? []) as { elements?: { action_id?: string; value?: string }[] }[]) {
    for (const e of b.elements ?? []) if (e.action_id === actionId && e.value) return e.value;
  }
  throw new Error(`no ${actionId} button on message ${m.ts}`);
}

async function auditedCommands(tb: TestBot, text: string): Promise<number> {
  return (await tb.bot.deps.audit.rows()).filter((r) =>
    r.action === "command.received" && r.details.text === text
  )
    .length;
}

Deno.test("Socket Mode serves /bisman and approval clicks over the socket like HTTP, survives dropped sockets, disconnect messages and a wrong token, and runs nothing twice", async (t) => {
  await using cluster = await startCluster({ name: "socket-mode", preload: ["pg_stat_statements"] });
  await cluster.primary.sql()`create extension if not exists pg_stat_statements`;
  const tb = await startTestBot(cluster, { env: socketEnv(STANDIN_APP_TOKEN), start: socketTimings });
  const cmd = (text: string, user: string = USERS.alice) => ({
    text,
    user_id: user,
    team_id: TEAM,
    channel_id: OPS_CHANNEL,
  });
  try {
    await t.step(
      "the bot opens a socket with the app token; /slack/events is gone, the rest is served",
      async () => {
        await tb.slack.waitForSockets(1);
        const open = tb.slack.calls.filter((c) => c.method === "apps.connections.open");
        assert.ok(open.length >= 1);
        assert.equal(
          open[0].token,
          tb.slack.appToken,
          "apps.connections.open is called with the app-level token",
        );
        const events = await tb.slack.sendCommand(tb.eventsUrl, cmd("help"));
        assert.equal(events.status, 404, "no HTTP entry for Slack in Socket Mode");
        await events.body?.cancel();
        assert.equal((await fetch(`${tb.bot.url}/healthz`)).status, 200);
        const ready = await fetch(`${tb.bot.url}/readyz`);
        assert.equal(ready.status, 200);
        assert.equal((await ready.json()).socket_mode, "connected");
        const metrics = await (await fetch(`${tb.bot.url}/metrics`)).text();
        assert.match(metrics, /bisman_slack_socket_connected 1/);
      },
    );

    await t.step("/bisman help is answered in the ack's payload", async () => {
      const ack = await tb.slack.sendCommandSocket(cmd("help"));
      assert.equal(ack.deliveries, 1);
      assert.equal(ack.payload.response_type, "ephemeral");
      assert.match(String(ack.payload.text), /status/);
      assert.ok(Array.isArray(ack.payload.blocks));
      assert.equal(await waitFor(async () => (await auditedCommands(tb, "help")) === 1 || undefined), true);
    });

    await t.step("/bisman status acks at once and delivers the result to the response_url", async () => {
      const before = tb.slack.responses.length;
      const ack = await tb.slack.sendCommandSocket(cmd("status main"));
      assert.match(String(ack.payload.text), /Working on `\/bisman status`/);
      const result = await tb.slack.waitFor(() =>
        tb.slack.responses.slice(before).find((r) =>
          /main/.test(JSON.stringify(r.body)) && r.body.replace_original
        )
      );
      assert.match(JSON.stringify(result.body), /primary/);
    });

    await t.step(
      "an ack lost with its socket: the envelope comes back, gets the same ack, and runs once",
      async () => {
        const opened = tb.slack.socketConnectionsOpened;
        const ack = await tb.slack.sendCommandSocket(cmd("status"), { loseAcks: 1 });
        assert.equal(ack.deliveries, 2, "the stand-in sent the envelope again after the drop");
        assert.ok(tb.slack.socketConnectionsOpened > opened, "the bot reconnected");
        assert.match(
          String(ack.payload.text),
          /Working on `\/bisman status`/,
          "the redelivery got the first ack",
        );
        await waitFor(async () => (await auditedCommands(tb, "status")) >= 1 || undefined, {
          what: "status audited",
        });
        // Give a second run every chance to show up before counting.
        await tb.bot.socket!.drain(5000);
        assert.equal(await auditedCommands(tb, "status"), 1, "the command ran exactly once");
        const metrics = await (await fetch(`${tb.bot.url}/metrics`)).text();
        assert.match(metrics, /bisman_slack_socket_redeliveries_total 1/);
      },
    );

    await t.step("a command sent while the socket is down is delivered after the reconnect", async () => {
      assert.equal(tb.slack.dropSockets(), 1);
      const ack = await tb.slack.sendCommandSocket(cmd("help status"));
      assert.equal(ack.deliveries, 1, "it waited for the new connection instead of being lost");
      assert.match(String(ack.payload.text), /status/);
      await waitFor(async () => (await auditedCommands(tb, "help status")) === 1 || undefined);
    });

    await t.step("a disconnect message makes the bot reconnect, and it keeps answering", async () => {
      const opened = tb.slack.socketConnectionsOpened;
      assert.equal(tb.slack.disconnectSockets("refresh_requested"), 1);
      await waitFor(() => tb.slack.socketConnectionsOpened > opened && tb.slack.socketCount() === 1, {
        what: "a new connection after disconnect",
      });
      const ack = await tb.slack.sendCommandSocket(cmd("help"));
      assert.match(String(ack.payload.text), /status/);
    });

    await t.step("malformed envelopes get an empty ack or a refusal, and run nothing", async () => {
      // The previous step's audit rows are written after its ack, once its listener has ended.
      await tb.bot.socket!.drain(5000);
      await tb.bot.deps.audit.settled();
      const before = (await tb.bot.deps.audit.rows()).length;
      const calls = tb.slack.calls.length;
      const a = await tb.slack.sendEnvelope("slash_commands", { command: "/bisman" });
      assert.match(String(a.payload.text), /Request refused/, "a command without a workspace is refused");
      const b = await tb.slack.sendEnvelope("interactive", "not an object");
      assert.deepEqual(b.payload, {});
      const c = await tb.slack.sendEnvelope("interactive", { type: "block_actions", actions: "x" });
      assert.deepEqual(c.payload, {});
      const d = await tb.slack.sendEnvelope("events_api", null);
      assert.deepEqual(d.payload, {});
      await tb.bot.socket!.drain(2000);
      await tb.bot.deps.audit.settled();
      assert.equal(tb.slack.calls.length, calls, "no Slack call was made for them");
      const after = (await tb.bot.deps.audit.rows()).slice(before);
      assert.ok(after.every((r) => r.outcome === "refused"), JSON.stringify(after));
    });

    await t.step(
      "the main flows through HTTP and through Socket Mode: /bisman reset-stats, then Approve, run once through the gate",
      async () => {
        const http = await startTestBot(cluster, { slack: tb.slack });
        try {
          for (const via of ["http", "socket", "socket, its click's ack lost with the socket"] as const) {
            const bot = via === "http" ? http : tb;
            const before = tb.slack.responses.length;
            const ack = via === "http"
              ? (await http.command("reset-stats")).body.text
              : String((await tb.slack.sendCommandSocket(cmd("reset-stats"))).payload.text);
            assert.match(ack, /Working on `\/bisman reset-stats`/, via);
            const answer = await waitFor(
              () =>
                tb.slack.responses.slice(before).map((r) => String(r.body.text ?? "")).find((x) =>
                  /Request #\d+/.test(x)
                ),
              { what: `the request's number (${via})` },
            );
            const id = Number(/Request #(\d+)/.exec(answer)![1]);
            await waitFor(() => bot.approvalMessage(id), {
              what: `request #${id}'s approval message (${via})`,
            });
            if (via === "http") {
              assert.equal(await http.click(ACTIONS.approve, id, USERS.carol), 200);
            } else {
              const m = bot.approvalMessage(id)!;
              const click = await tb.slack.sendBlockActionSocket({
                user_id: USERS.carol,
                team_id: TEAM,
                action_id: ACTIONS.approve,
                value: buttonValue(m, ACTIONS.approve),
                channel_id: m.channel,
                message_ts: m.ts,
              }, { loseAcks: via === "socket" ? 0 : 1 });
              assert.equal(click.deliveries, via === "socket" ? 1 : 2);
            }
            await bot.waitForState(id, "succeeded");
            await bot.bot.gate.idle();
            const rows = await bot.bot.deps.audit.rows({ requestId: id });
            assert.equal(rows.filter((r) => r.action === "op.started").length, 1, `ran once (${via})`);
            assert.equal(
              rows.filter((r) => r.action === "request.approved").length,
              1,
              `approved once (${via})`,
            );
            assert.match(bot.approvalMessage(id)!.text ?? "", /succeeded/i, via);
          }
        } finally {
          await http.stop();
        }
      },
    );
    await t.step(
      "a wrong app token is retried with backoff and logged, never fatal; /healthz stays up",
      async () => {
        const tb = await startTestBot(cluster, { env: socketEnv("xapp-1-wrong"), start: socketTimings });
        try {
          await waitFor(
            () =>
              tb.slack.calls.filter((c) => c.method === "apps.connections.open" && c.error === "invalid_auth")
                .length >= 2,
            { what: "apps.connections.open retried" },
          );
          assert.equal(tb.slack.socketCount(), 0);
          assert.ok(
            tb.logs.some((l) => /socket mode connection failed; retrying/.test(l) && /invalid_auth/.test(l)),
          );
          assert.ok(!tb.logs.some((l) => l.includes("xapp-1-wrong")), "the app token never reaches the log");
          assert.equal((await fetch(`${tb.bot.url}/healthz`)).status, 200);
          const ready = await (await fetch(`${tb.bot.url}/readyz`)).json();
          assert.equal(ready.socket_mode, "connecting");
        } finally {
          await tb.stop();
        }
      },
    );
  } finally {
    await tb.stop();
  }
});
