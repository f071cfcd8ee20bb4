import assert from "node:assert/strict";
import { startCluster } from "../../standins/cluster.ts";
import { waitFor } from "../../standins/wait.ts";
import { OPS_CHANNEL, startTestBot, testConfig, USERS } from "../support/bot.ts";
import { VaultStandIn } from "../../standins/vault.ts";
import { DAY, prepareTarget } from "./_digest_fixture.ts";
import type { Invoker } from "../../core/access.ts";
import { recentRestoreTests } from "../../ops/restore_history.ts";

const alice: Invoker = { userId: USERS.alice, via: "slack" };

Deno.test("periodic jobs: credential ages post when a target gets worse or recovers; the monthly restore test runs, or asks for approval where it must", async (t) => {
  await using cluster = await startCluster({ name: "periodic" });
  const vault = await VaultStandIn.start();
  const main = await prepareTarget(cluster, vault, "main", { credentialAgeDays: 80 });
  const conn = (db: string) => ({
    host: "127.0.0.1",
    port: cluster.primary.port,
    database: db,
    user: "postgres",
    sslmode: "disable",
  });
  const config = testConfig(cluster, (doc) => {
    doc.targets = {
      main: {
        primary: conn(main.db),
        roles: { bisman_app: { path: main.vaultPath, key: "app_password" } },
        backups: { dump_folder: { path: main.dumps, pattern: "bisman_*.dump" } },
        // On the primary only with the approval spelled out as not needed (the test's own cluster).
        restore_test: { allow_on_primary: true, requires_approval: false },
      },
      gated: {
        primary: conn(main.db),
        backups: { dump_folder: { path: main.dumps, pattern: "bisman_*.dump" } },
        restore_test: { allow_on_primary: true },
      },
    };
  });
  const tb = await startTestBot(cluster, {
    config,
    env: { VAULT_ADDR: vault.addr, VAULT_TOKEN: vault.rootToken },
  });
  const posts = (re: RegExp) =>
    tb.slack.messages.filter((m) => m.channel === OPS_CHANNEL && re.test(m.text ?? ""));
  try {
    await t.step("credential_age: 80 days is a warning (due within 10 days), posted once", async () => {
      const r1 = await tb.bot.scheduler.runNow("credential_age", alice);
      assert.equal(r1.level, "warning");
      assert.equal(posts(/^Credential ages: main ok → warning/).length, 1);
      assert.match(
        JSON.stringify(posts(/^Credential ages/)[0].blocks),
        /bisman_app is 80 days old \(limit 90\)/,
      );
      const r2 = await tb.bot.scheduler.runNow("credential_age", alice);
      assert.equal(r2.level, "warning");
      assert.equal(posts(/^Credential ages/).length, 1, "unchanged: nothing more is posted");
    });

    await t.step(
      "credential_age: past 90 days it is critical, posted with the rotate command; a rotation posts the recovery",
      async () => {
        vault.setCreatedTime(main.vaultPath, 1, new Date(Date.now() - 100 * DAY).toISOString());
        await tb.bot.scheduler.runNow("credential_age", alice);
        const critical = posts(/^Credential ages: main warning → critical/);
        assert.equal(critical.length, 1);
        assert.match(JSON.stringify(critical[0].blocks), /\/bisman rotate bisman_app main/);
        vault.kvPut(main.vaultPath, { app_password: "rotated-pw", readonly_password: "rotated-ro-pw" });
        const ok = await tb.bot.scheduler.runNow("credential_age", alice);
        assert.equal(ok.level, "ok");
        assert.equal(posts(/^Credential ages: main critical → ok/).length, 1);
      },
    );

    await t.step(
      "restore_test: a real restore of main's newest dump, posted; gated asks the approval gate",
      async () => {
        const run = await tb.bot.scheduler.runNow("restore_test", alice);
        assert.equal(run.outcome, "ok", run.error ?? "");
        assert.match(run.summary ?? "", /main passed, gated approval requested/);
        const [history] = await recentRestoreTests(tb.bot.deps.state, "main", 1);
        assert.equal(history.status, "passed");
        assert.equal(history.trigger, "schedule");
        assert.equal(history.requestedBy, "scheduler");
        await waitFor(() => tb.approvalMessage(), { what: "the approval request for gated" });
        const req = await tb.bot.gate.view(tb.lastRequestId());
        assert.equal(req?.request.action, "restore_test_gated");
        assert.equal(req?.request.target, "gated");
        assert.equal(req?.request.state, "pending");
      },
    );
  } finally {
    await tb.stop();
    await vault.stop();
  }
});
