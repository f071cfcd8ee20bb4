import assert from "node:assert/strict";
import postgres from "postgres";
import { startCluster } from "../../standins/cluster.ts";
import { OPS_CHANNEL, startTestBot, TEAM, testConfig, USERS } from "../support/bot.ts";
import { waitFor } from "../../standins/wait.ts";
import { ephemeralTo } from "../support/gate.ts";
import { ACTIONS, ALERT_ACTIONS } from "../../views/actions.ts";
import { memberOf, resolveButton } from "../../alerts/buttons.ts";
import { buttonsFor, GENERIC_BUTTONS } from "../../core/runbook_buttons.ts";
import type { StoredMessage } from "../../standins/slack.ts";
import "../../ops/all.ts";
import "../../commands/registry.ts";

const TOKEN = "buttons-test-token-9c1d";

Deno.test("buttonsFor() follows config, then the runbook, then alerts.buttons.default, then the generic diagnostics", async () => {
  await using cluster = await startCluster({ name: "buttons-unit" });
  const base = testConfig(cluster);
  assert.deepEqual(buttonsFor(base, "HighReplicationLag"), ["show_lag", "promote_replica"]);
  assert.deepEqual(buttonsFor(base, "TooManyConnections"), ["show_connections", "terminate_idle"]);
  assert.deepEqual(buttonsFor(base, "SlowQueries"), ["top_slow_queries", "reset_statements"]);
  assert.deepEqual(buttonsFor(base, "UnexpectedDbUser"), ["show_audit", "rotate_all", "terminate_client"]);
  assert.deepEqual(buttonsFor(base, "Whatever"), GENERIC_BUTTONS);
  assert.deepEqual(buttonsFor(base, "constructor"), GENERIC_BUTTONS, "no prototype keys");
  const custom = testConfig(cluster, (doc) => {
    doc.alerts = { buttons: { SlowQueries: ["top_slow_queries"], default: ["status"] } };
  });
  assert.deepEqual(buttonsFor(custom, "SlowQueries"), ["top_slow_queries"]);
  assert.deepEqual(buttonsFor(custom, "Whatever"), ["status"]);
  assert.deepEqual(buttonsFor(custom, "HighReplicationLag"), ["show_lag", "promote_replica"]);
});

Deno.test("resolveButton() finds the target and replica from the alert's labels, and refuses what it cannot tell", async () => {
  await using cluster = await startCluster({ name: "buttons-resolve", replica: true });
  const config = testConfig(cluster);
  const replicaInstance = `127.0.0.1:${cluster.replica!.port}`;
  assert.deepEqual(memberOf(config, { instance: replicaInstance }), { target: "main", member: "replica1" });
  assert.deepEqual(memberOf(config, { target: "main", replica: "replica1" }), {
    target: "main",
    member: "replica1",
  });
  assert.deepEqual(
    memberOf(config, { instance: "elsewhere:1" }),
    { target: "main" },
    "falls back to the only target",
  );
  const promote = resolveButton(config, "promote_replica", [{ alertname: "HighReplicationLag", labels: {} }]);
  assert.deepEqual(promote, {
    kind: "gated",
    action: "promote_replica",
    args: { replica: "replica1", target: "main" },
  });
  assert.deepEqual(resolveButton(config, "show_lag", [{ alertname: "X", labels: {} }]), {
    kind: "read",
    subcommand: "lag",
    text: "lag main",
  });
  assert.deepEqual(resolveButton(config, "rotate_all", [{ alertname: "X", labels: {} }]), {
    kind: "gated",
    action: "rotate",
    args: { role: "all", target: "main" },
  });
  const noAddress = resolveButton(config, "terminate_client", [{
    alertname: "X",
    labels: { client_addr: "not-an-ip" },
  }]);
  assert.equal(noAddress.kind, "unavailable", "an invalid address never reaches an operation");
  const withAddress = resolveButton(config, "terminate_client", [{
    alertname: "X",
    labels: { client_addr: "10.1.2.3" },
  }]);
  assert.deepEqual(withAddress, {
    kind: "gated",
    action: "terminate_client",
    args: { address: "10.1.2.3", target: "main" },
  });
  assert.deepEqual(
    resolveButton(config, "show_audit", [{ alertname: "X", labels: { client_addr: "10.1.2.3" } }]),
    {
      kind: "read",
      subcommand: "audit",
      text: "audit main address=10.1.2.3",
    },
  );
  assert.deepEqual(
    resolveButton(config, "show_audit", [{ alertname: "X", labels: { client_addr: "1 limit=9" } }]),
    {
      kind: "read",
      subcommand: "audit",
      text: "audit main",
    },
    "a label that is not an IP never reaches the command line",
  );
  // A build without an operation or subcommand: the button says so instead of failing.
  const bare = { hasSubcommand: () => false, hasOperation: () => false };
  const gated = resolveButton(config, "rotate_all", [{ alertname: "X", labels: {} }], bare);
  assert.deepEqual(gated, {
    kind: "unavailable",
    message: '"Rotate all credentials" is not available yet in this bisman-ops build',
  });
  const read = resolveButton(config, "show_audit", [{ alertname: "X", labels: {} }], bare);
  assert.deepEqual(read, {
    kind: "unavailable",
    message: '"Show audit trail" is not available yet in this bisman-ops build',
  });
});

function buttonsOf(m: StoredMessage): { action_id: string; text: string; value: string }[] {
  const out = [];
  for (const b of (m.blocks ?? []) as any[]) {
    // The runbook buttons only: "I'm on it" and the silences are their own row (alerts/ownership.ts).
    if (b.type !== "actions" || b.block_id === "bisman.thread.buttons") continue;
    for (const e of b.elements) out.push({ action_id: e.action_id, text: e.text.text, value: e.value });
  }
  return out;
}

/** A client whose one connection is left idle, in a transaction or not. */
async function session(url: string, app: string, inTransaction: boolean) {
  const sql = postgres(url, { max: 1, connection: { application_name: app }, onnotice: () => {} });
  const conn = await sql.reserve();
  if (inTransaction) await conn`begin`;
  const [{ pid }] = await conn<{ pid: number }[]>`select pg_backend_pid() as pid`;
  return { sql, conn, pid };
}

Deno.test("TooManyConnections buttons: Show connections lists the leaked sessions in the thread, Terminate kills only those after approval", async (t) => {
  await using cluster = await startCluster({ name: "buttons-flow", preload: ["pg_stat_statements"] });
  const config = testConfig(cluster, (doc) => {
    doc.thresholds = { idle_in_transaction_minutes: 0.02 }; // 1.2 s, so the test need not wait minutes
    doc.alerts = { lag_check: { enabled: false }, slack_per_channel_per_second: 50 };
  });
  const tb = await startTestBot(cluster, { config, env: { ALERTS_TOKEN: TOKEN } });
  const admin = cluster.primary.sql();
  const url = cluster.primary.url();
  const sessions: Awaited<ReturnType<typeof session>>[] = [];
  const alive = async (pid: number) =>
    (await admin`select 1 from pg_stat_activity where pid = ${pid}`).length === 1;
  const post = async (alertname: string, fingerprint: string) => {
    const res = await fetch(`${tb.bot.url}/alerts`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${TOKEN}` },
      body: JSON.stringify({
        version: "4",
        groupKey: `{}:{alertname="${alertname}"}`,
        status: "firing",
        receiver: "bot",
        alerts: [{
          status: "firing",
          labels: { alertname, instance: `127.0.0.1:${cluster.primary.port}` },
          annotations: { summary: `${alertname} on main` },
          startsAt: new Date().toISOString(),
          endsAt: "0001-01-01T00:00:00Z",
          fingerprint,
        }],
      }),
    });
    assert.equal(res.status, 200);
    await res.body?.cancel();
    return await waitFor(
      () => tb.slack.messages.find((m) => !m.thread_ts && m.text?.startsWith(`FIRING: ${alertname}`)),
      {
        what: `the ${alertname} parent`,
      },
    );
  };
  const click = async (m: StoredMessage, action: string, user: string) => {
    const b = buttonsOf(m).find((x) => x.action_id === action)!;
    const res = await tb.slack.sendBlockAction(tb.eventsUrl, {
      user_id: user,
      team_id: TEAM,
      action_id: action,
      value: b.value,
      channel_id: OPS_CHANNEL,
      message_ts: m.ts,
    });
    assert.equal(res.status, 200);
    await res.body?.cancel();
  };
  try {
    const leakA = await session(url, "leaky-a", true);
    const leakB = await session(url, "leaky-b", true);
    const plain = await session(url, "plain-idle", false);
    sessions.push(leakA, leakB, plain);
    await waitFor(async () => {
      const [{ n }] = await admin<{ n: number }[]>`
        select count(*)::int as n from pg_stat_activity
         where application_name like 'leaky-%' and now() - state_change > interval '1.3 seconds'`;
      return n === 2;
    }, { timeoutMs: 10_000, what: "both leaks older than 1.3 s" });
    const young = await session(url, "leaky-young", true);
    sessions.push(young);
    const parent = await post("TooManyConnections", "c0ffee01");

    await t.step("the alert offers Show connections and Terminate idle-in-transaction sessions", () => {
      assert.deepEqual(buttonsOf(parent).map((b) => b.text), [
        "Show connections",
        "Terminate idle-in-transaction sessions > 0.02 min",
      ]);
    });

    await t.step(
      "Show connections answers in the thread, listing the idle-in-transaction sessions",
      async () => {
        await click(parent, ALERT_ACTIONS.show_connections, USERS.alice);
        const answer = await waitFor(
          () =>
            tb.slack.messages.find((m) =>
              m.thread_ts === parent.ts && /Connections: main/.test(JSON.stringify(m.blocks))
            ),
          { what: "the connections answer in the thread" },
        );
        const shown = JSON.stringify(answer.blocks);
        for (const s of [leakA, leakB, young]) {
          assert.ok(shown.includes(`pid ${s.pid}`), `pid ${s.pid} is listed`);
        }
        assert.ok(!shown.includes(`pid ${plain.pid} `), "a plain idle session is not idle in a transaction");
        assert.match(shown, /leaky-a/);
      },
    );

    await t.step(
      "Show connections is for operators: an outsider's click is refused to them alone",
      async () => {
        const since = tb.slack.ephemerals.length;
        const before = tb.slack.messages.filter((m) => m.thread_ts === parent.ts).length;
        await click(parent, ALERT_ACTIONS.show_connections, USERS.dave);
        await ephemeralTo(tb, USERS.dave, /operators/, since);
        assert.equal(
          tb.slack.messages.filter((m) => m.thread_ts === parent.ts).length,
          before,
        );
      },
    );

    let id = 0;
    await t.step(
      "Terminate starts the approval flow in the alert's thread with the exact sessions",
      async () => {
        await click(parent, ALERT_ACTIONS.terminate_idle, USERS.alice);
        const approval = await waitFor(() => tb.approvalMessage(), { what: "the approval message" });
        assert.equal(approval.thread_ts, parent.ts, "the approval lives in the alert's thread");
        id = tb.lastRequestId();
        const shown = JSON.stringify(approval.blocks);
        assert.ok(shown.includes(`pg_terminate_backend(${leakA.pid})`));
        assert.ok(shown.includes(`pg_terminate_backend(${leakB.pid})`));
        assert.ok(
          !shown.includes(`pg_terminate_backend(${young.pid})`),
          "the young session is not in the plan",
        );
        await ephemeralTo(tb, USERS.alice, new RegExp(`Request #${id}`));
      },
    );

    await t.step("after approval only the planned sessions that still match are terminated", async () => {
      await leakB.conn`commit`; // no longer idle in a transaction: must be left alone
      await tb.click(ACTIONS.approve, id, USERS.bob);
      await tb.waitForState(id, "succeeded");
      await waitFor(async () => !(await alive(leakA.pid)), { what: "leaky-a to be terminated" });
      assert.equal(await alive(leakB.pid), true, "leaky-b committed before the run and is untouched");
      assert.equal(await alive(young.pid), true, "the young session was not planned and is untouched");
      assert.equal(await alive(plain.pid), true, "the plain idle session is untouched");
      const view = await tb.bot.gate.view(id);
      assert.equal(view!.request.thread_ts, parent.ts);
    });

    await t.step(
      "SlowQueries buttons: Top slow queries answers in the thread, Reset asks the gate there",
      async () => {
        await admin`create extension if not exists pg_stat_statements`;
        await admin`select pg_sleep(0.05)`;
        const slow = await post("SlowQueries", "c0ffee02");
        assert.deepEqual(buttonsOf(slow).map((b) => b.text), [
          "Top slow queries",
          "Reset pg_stat_statements",
        ]);
        await click(slow, ALERT_ACTIONS.top_slow_queries, USERS.alice);
        await waitFor(
          () =>
            tb.slack.messages.find((m) =>
              m.thread_ts === slow.ts && /Slow queries: main/.test(JSON.stringify(m.blocks))
            ),
          { what: "the slow-queries answer in the thread" },
        );
        await click(slow, ALERT_ACTIONS.reset_statements, USERS.alice);
        const approval = await waitFor(
          () =>
            tb.slack.messages.find((m) =>
              m.thread_ts === slow.ts && (m.metadata as any)?.event_type === "bisman_request"
            ),
          { what: "the reset approval in the SlowQueries thread" },
        );
        assert.match(approval.text ?? "", /pg_stat_statements/);
      },
    );
  } finally {
    for (const s of sessions) {
      s.conn.release();
      await s.sql.end({ timeout: 1 }).catch(() => {});
    }
    await tb.stop();
  }
});
