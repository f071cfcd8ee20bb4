import assert from "node:assert/strict";
import { startCluster } from "../../standins/cluster.ts";
import { waitFor } from "../../standins/wait.ts";
import { OPS_CHANNEL, startTestBot, testConfig, USERS } from "../support/bot.ts";
import { ask } from "../support/gate.ts";
import { ACTIONS } from "../../views/actions.ts";
import { readRuns } from "../../jobs/run_store.ts";

Deno.test("/bisman jobs lists schedules, last and next runs; /bisman run runs read-only jobs now and sends destructive ones to the gate", async (t) => {
  await using cluster = await startCluster({ name: "jobs-cmd" });
  const config = testConfig(cluster, (doc) => {
    doc.schedules = {
      digest: { cron: "0 7 * * *", timezone: "Europe/Berlin" },
      audit_anomaly: { enabled: false },
    };
  });
  const tb = await startTestBot(cluster, { config });
  const state = tb.bot.deps.state;
  try {
    await t.step(
      "/bisman jobs: every job with its schedule, time zone, next run, or why it is not available",
      async () => {
        const r = await ask(tb, "jobs");
        for (
          const job of [
            "digest",
            "lag_check",
            "backup_status",
            "restore_test",
            "credential_age",
            "slow_query_review",
            "audit_anomaly",
            "cleanup",
            "approval_expiry",
          ]
        ) assert.match(r.text, new RegExp(`^  ${job}: `, "m"), job);
        assert.match(r.text, /digest: 0 7 \* \* \*, next \d{4}-\d\d-\d\d 0[56]:00 UTC; last: never/);
        assert.match(r.text, /credential_age: not available \(Vault is not configured \(VAULT_ADDR\)\)/);
        assert.match(
          r.text,
          /restore_test: not available \(no target configures targets\.<name>\.restore_test\)/,
        );
        assert.match(r.text, /audit_anomaly: disabled/);
        assert.match(
          r.text,
          /lag_check: 0 \* \* \* \* \*, next /,
          "the lag check's cadence comes from alerts.lag_check",
        );
      },
    );

    let runId = 0;
    await t.step("/bisman run backup_status runs it now, recorded as a manual run by the asker", async () => {
      const r = await ask(tb, "run backup_status");
      assert.match(r.text, /^Job backup_status run \d+: ok: main warning/);
      const [run] = await readRuns(state, "backup_status");
      assert.equal(run.trigger, "manual");
      assert.equal(run.invoker, USERS.alice);
      assert.equal(run.level, "warning");
      runId = run.id;
      // It found that the target got worse than "ok" (no backup source): posted once in the ops channel.
      const posted = await waitFor(
        () =>
          tb.slack.messages.find((m) =>
            m.channel === OPS_CHANNEL && /^Backup status: main ok → warning/.test(m.text ?? "")
          ),
        { what: "the backup status change" },
      );
      assert.match(JSON.stringify(posted.blocks), /no backup source is configured for main/);
      const jobs = await ask(tb, "jobs");
      assert.match(jobs.text, /backup_status: 0 \* \* \* \*, next .*; last: ok at/);
    });

    await t.step("outsiders may list jobs but not run them; unknown jobs are named", async () => {
      const refused = await ask(tb, "run backup_status", USERS.dave);
      assert.match(refused.text, /is for operators/);
      const unknown = await ask(tb, "run nosuch");
      assert.match(unknown.text, /No job "nosuch": .*backup_status, cleanup, credential_age/);
      const unavailable = await ask(tb, "run credential_age");
      assert.match(unavailable.text, /Job credential_age is not available: Vault is not configured/);
    });

    await t.step("/bisman jobs ack acknowledges a run once, and is audited", async () => {
      const first = await ask(tb, `jobs ack ${runId}`, USERS.bob);
      assert.match(first.text, new RegExp(`Run ${runId} of backup_status acknowledged`));
      const again = await ask(tb, `jobs ack ${runId}`, USERS.alice);
      assert.match(again.text, new RegExp(`was not acknowledged: it was acknowledged by <@${USERS.bob}>`));
      const rows = (await tb.bot.deps.audit.rows()).filter((r) => r.action === "job.acknowledged");
      assert.deepEqual(rows.map((r) => [r.actor, r.details.run]), [[USERS.bob, runId]]);
    });

    await t.step(
      "/bisman run cleanup asks for approval; once approved it runs and is recorded with the job's runs",
      async () => {
        const r = await ask(tb, "run cleanup");
        assert.ok(r.id, r.text);
        const msg = tb.approvalMessage(r.id);
        assert.match(JSON.stringify(msg?.blocks), /Prune job-run history beyond its retention/);
        assert.equal((await readRuns(state, "cleanup")).length, 0, "nothing ran before the approval");
        assert.equal(await tb.click(ACTIONS.approve, r.id!, USERS.bob), 200);
        await tb.waitForState(r.id!, "succeeded");
        const [run] = await readRuns(state, "cleanup");
        assert.equal(run.outcome, "ok");
        assert.equal(run.trigger, "manual");
        assert.match(run.summary ?? "", /job_runs: 0 run record\(s\) older than 90 days deleted/);
        assert.match(run.summary ?? "", /audit_archive: not available/);
      },
    );
  } finally {
    await tb.stop();
  }
});
