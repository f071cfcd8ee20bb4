import assert from "node:assert/strict";
import { stringify as toYaml } from "yaml";
import { startCluster } from "../../standins/cluster.ts";
import { spawnBot } from "../support/bot_process.ts";
import { waitFor } from "../../standins/wait.ts";
import { OPS_CHANNEL, startTestBot, TEAM, testConfig, testConfigDoc, USERS } from "../support/bot.ts";
import { SlackStandIn, type StoredMessage } from "../../standins/slack.ts";
import { ACTIONS } from "../../views/actions.ts";
import { REQUEST_EVENT_TYPE } from "../../slack/approval_messages.ts";

function requestIdOf(m: StoredMessage): number | undefined {
  const meta = m.metadata as { event_type?: string; event_payload?: { request_id?: number } } | undefined;
  return meta?.event_type === REQUEST_EVENT_TYPE ? meta.event_payload?.request_id : undefined;
}

Deno.test("ApprovalGate: a bot killed while an operation runs leaves the request interrupted, reconciled and reported, never running", async (t) => {
  await using cluster = await startCluster({ name: "approval-crash", preload: ["pg_stat_statements"] });
  const sql = cluster.primary.sql();
  await sql`create extension if not exists pg_stat_statements`;
  const slack = await SlackStandIn.start({
    teamId: TEAM,
    users: { [USERS.alice]: { name: "alice" }, [USERS.carol]: { name: "carol" } },
  });
  const stateDb = await cluster.createDatabase("crashstate");
  const state = cluster.primary.sql(stateDb);
  const configFile = await Deno.makeTempFile({ suffix: ".yaml" });
  await Deno.writeTextFile(configFile, toYaml(testConfigDoc(cluster)));
  const baseEnv = {
    SLACK_SIGNING_SECRET: slack.signingSecret,
    SLACK_BOT_TOKEN: slack.botToken,
    SLACK_API_URL: slack.apiUrl,
    DATABASE_URL: cluster.primary.url({ database: stateDb }),
  };
  const statsReset = async () =>
    (await sql<{ r: string }[]>`select stats_reset::text as r from pg_stat_statements_info`)[0].r;

  /** Starts main.ts with `failpoint` armed, requests a reset, approves it, and kills the bot at the fault point. */
  async function killDuringRun(failpoint: string): Promise<{ id: number; runBy: string }> {
    const bot = await spawnBot({ configFile, env: { ...baseEnv, BISMAN_FAILPOINT: failpoint } });
    const events = bot.eventsUrl;
    try {
      const posted = slack.messages.length;
      const res = await slack.sendCommand(events, {
        text: "reset-stats",
        user_id: USERS.alice,
        channel_id: OPS_CHANNEL,
      });
      await res.body?.cancel();
      const msg = await waitFor(
        () => slack.messages.slice(posted).find((m) => requestIdOf(m) !== undefined),
        {
          what: "the approval message",
        },
      );
      const id = requestIdOf(msg)!;
      const approve = (msg.blocks as any[]).flatMap((b) => b.elements ?? []).find((e: any) =>
        e.action_id === ACTIONS.approve
      );
      const click = await slack.sendBlockAction(events, {
        user_id: USERS.carol,
        action_id: ACTIONS.approve,
        value: approve.value,
        channel_id: msg.channel,
        message_ts: msg.ts,
      });
      await click.body?.cancel();
      await bot.waitForLine(new RegExp(`"failpoint":"${failpoint.replace(/\./g, "\\.")}"`), 15_000);
      const [row] = await state`select state, run_by from bisman_ops.requests where id = ${id}`;
      assert.equal(row.state, "running");
      await bot.kill();
      assert.equal((await bot.exited).signal, "SIGKILL");
      return { id, runBy: row.run_by };
    } catch (err) {
      await bot.kill();
      throw new Error(
        `${err instanceof Error ? err.message : err}\n--- bot stderr ---\n${bot.stderr.join("\n")}`,
      );
    }
  }

  let restarted: Awaited<ReturnType<typeof startTestBot>> | undefined;
  try {
    await t.step(
      "killed before the reset: on restart the request is interrupted, reconcile says not done, the channel is told",
      async () => {
        const before = await statsReset();
        const { id, runBy } = await killDuringRun("reset_statements.before_reset");
        restarted = await startTestBot(cluster, {
          slack,
          stateDb,
          config: testConfig(cluster),
          start: { sweepIntervalMs: 200 },
        });
        await restarted.waitForState(id, "interrupted");
        await waitFor(async () => (await restarted!.bot.gate.view(id))!.request.reconcile, {
          what: "reconcile verdict",
        });
        await restarted.bot.gate.idle();
        const r = (await restarted.bot.gate.view(id))!.request;
        assert.equal(r.reconcile!.status, "not_done");
        assert.equal(await statsReset(), before, "nothing was reset");
        const told = slack.messages.find((m) =>
          m.thread_ts === restarted!.approvalMessage(id)!.ts && /interrupted/.test(m.text ?? "")
        );
        assert.ok(told, "the channel is told in the request's thread");
        assert.match(
          told!.text!,
          /Request #\d+ \(reset_statements on main\) was interrupted.*it had not taken effect/,
        );
        assert.match(restarted.approvalMessage(id)!.text!, /interrupted; reconcile: not_done/);
        const actions = (await restarted.bot.deps.audit.rows({ requestId: id })).map((x) => x.action);
        assert.deepEqual(actions.slice(-3), ["op.started", "request.interrupted", "op.reconciled"]);
        const interrupted = (await restarted.bot.deps.audit.rows({ requestId: id })).find((x) =>
          x.action === "request.interrupted"
        )!;
        assert.equal(interrupted.details.run_by, runBy);
      },
    );

    await t.step("killed after the reset: a live peer recovers it and reconcile says done", async () => {
      const before = await statsReset();
      const { id } = await killDuringRun("reset_statements.after_reset");
      assert.notEqual(await statsReset(), before, "the reset happened before the kill");
      await restarted!.waitForState(id, "interrupted");
      await waitFor(async () => (await restarted!.bot.gate.view(id))!.request.reconcile, {
        what: "reconcile verdict",
      });
      await restarted!.bot.gate.idle();
      assert.equal((await restarted!.bot.gate.view(id))!.request.reconcile!.status, "done");
      assert.match(restarted!.approvalMessage(id)!.text!, /interrupted; reconcile: done/);
    });

    await t.step("no request is left running", async () => {
      const running = await state`select id from bisman_ops.requests where state = 'running'`;
      assert.equal(running.length, 0);
    });
  } finally {
    await restarted?.stop();
    await slack.stop();
    await Deno.remove(configFile).catch(() => undefined);
  }
});
