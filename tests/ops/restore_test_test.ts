import assert from "node:assert/strict";
import { startCluster, type TestCluster } from "../../standins/cluster.ts";
import { pgDump, pgRestore, setAge } from "../support/dumps.ts";
import { startTestBot, testConfig, USERS } from "../support/bot.ts";
import { applyTargetSql } from "../support/bisman_schema.ts";
import type { Config } from "../../core/config.ts";
import { connectState } from "../../core/state_db.ts";
import { OpsError } from "../../core/errors.ts";
import { AUDIT_LOCK } from "../../core/audit.ts";
import type { OpDeps } from "../../ops/types.ts";
import {
  planRestoreTest,
  type RestoreProgress,
  restoreTest,
  type RestoreTestResult,
  runRestoreTest,
} from "../../ops/restore_test.ts";
import {
  checkRestoreRequirement,
  getRestoreTest,
  lastProvenRestore,
  provenRestoreNote,
  recordStart,
  tryWithRestoreLock,
} from "../../ops/restore_history.ts";
import { createScratch, dropScratch, scratchName } from "../../ops/_scratch.ts";
import { cleanupRestoreScratch } from "../../ops/restore_cleanup.ts";
import { prepareGateTables, registerGateTest, runsOf } from "../support/gate_op.ts";
import { ask } from "../support/gate.ts";
import { waitFor } from "../../standins/wait.ts";
import { ACTIONS } from "../../views/actions.ts";
import { OPS_CHANNEL } from "../support/bot.ts";
import type { StoredMessage } from "../../standins/slack.ts";

// A harmless destructive action (gate_test) whose policy requires a recent restore test.
registerGateTest();

const ROWS = { clients: 5000, invoices: 5000, payment_requests: 15000, payments: 15000 };
const HOUR = 3600_000;
const RESTORE_PASSWORD = `restore-pw-${crypto.randomUUID()}`;
Deno.env.set("BISMAN_TEST_RESTORE_PW", RESTORE_PASSWORD);

async function scratchDatabases(cluster: TestCluster): Promise<string[]> {
  const out = await cluster.primary.psql(
    "select datname from pg_database where datname like 'bisman\\_rt\\_%'",
  );
  return out.split("\n").map((l) => l.trim()).filter(Boolean);
}

Deno.test("restore_test restores a dump into a marked scratch database, verifies it, drops it and records it", async (t) => {
  await using cluster = await startCluster({ name: "restore-test" });
  const src = await cluster.createDatabase("bisman");
  const srcSql = cluster.primary.sql(src);
  await applyTargetSql(srcSql, { parts: ["sample_schema", "audit"], sample: true, rows: ROWS });
  await prepareGateTables(srcSql);

  const dumps = `${cluster.dir}/dumps`;
  await Deno.mkdir(dumps);
  const good = `${dumps}/bisman_good.dump`;
  await pgDump(cluster, src, good);
  // The tampered dump: the same database with a tenth of the payments gone.
  const tamperedDb = await cluster.createDatabase("tampered");
  await pgRestore(cluster, tamperedDb, good);
  await cluster.primary.psql("delete from payments where id % 10 = 0", tamperedDb);
  await pgDump(cluster, tamperedDb, `${dumps}/bisman_tampered.dump`);
  const goodBytes = await Deno.readFile(good);
  await Deno.writeFile(
    `${dumps}/bisman_corrupt.dump`,
    goodBytes.slice(0, Math.floor(goodBytes.length * 0.6)),
  );
  await setAge(good, 1 * HOUR);
  await setAge(`${dumps}/bisman_tampered.dump`, 3 * HOUR);
  await setAge(`${dumps}/bisman_corrupt.dump`, 5 * HOUR);

  const server = {
    host: "127.0.0.1",
    port: cluster.primary.port,
    database: "postgres",
    user: "postgres",
    sslmode: "disable",
  };
  const base = (doc: Record<string, any>) => {
    doc.targets.main.primary.database = src;
    doc.targets.main.backups = { dump_folder: { path: dumps, pattern: "bisman_*.dump" } };
    doc.targets.main.restore_test = {
      server,
      // The restore server of this test is the target's own cluster, so it must say so.
      allow_on_primary: true,
      requires_approval: false,
      jobs: 2,
      compare_with: "primary",
      tolerance_percent: 1,
      verify: [
        { name: "clients", sql: "SELECT COUNT(*) FROM clients", min: 1 },
        { name: "payment_requests", sql: "SELECT COUNT(*) FROM payment_requests" },
        { name: "payments", sql: "select count(*) from payments" },
      ],
    };
    doc.policies = {
      promote: { require_restore_test_within_days: 7 },
      gate_test: { require_restore_test_within_days: 7 },
    };
  };
  const config = (patch: (doc: Record<string, any>) => void = () => {}): Config =>
    testConfig(cluster, (doc) => {
      base(doc);
      patch(doc);
    });
  // The bot's own config adds a slow verification query, so a Slack run lasts long enough to show progress.
  const botConfig = config((doc) => {
    doc.targets.main.restore_test.compare_with = "none";
    doc.targets.main.restore_test.verify = [{
      name: "clients (slow)",
      sql: "SELECT COUNT(*) FROM clients, pg_sleep(3.5)",
    }];
  });
  const tb = await startTestBot(cluster, { config: botConfig });
  const deps: OpDeps = { ...tb.bot.deps, config: config(), actor: USERS.alice };
  const run = async (backup?: string, d: OpDeps = deps, onProgress?: (p: RestoreProgress) => void) =>
    await runRestoreTest(await planRestoreTest({ target: "main", ...(backup ? { backup } : {}) }, d), d, {
      onProgress,
    });
  try {
    await t.step(
      "plan() names the newest dump, the server and the steps; it refuses a missing server or the primary",
      async () => {
        const plan = await restoreTest.plan({ target: "main" }, deps);
        assert.equal(plan.backup.name, "bisman_good.dump");
        assert.equal(plan.server, `127.0.0.1:${cluster.primary.port}`);
        assert.equal(plan.compareWith, "primary");
        assert.match(plan.steps.join("\n"), /pg_restore -j 2 --exit-on-error bisman_good\.dump/);
        assert.match(plan.warnings!.join("\n"), /created on the production primary/);
        assert.equal(await restoreTest.revalidate!(plan, deps), undefined);

        const noServer = {
          ...deps,
          config: config((d) => {
            delete d.targets.main.restore_test.server;
            d.targets.main.restore_test.allow_on_primary = false;
          }),
        };
        await assert.rejects(
          restoreTest.plan({ target: "main" }, noServer),
          (e: OpsError) =>
            e.code === "not_configured" && /restore_test\.server is not set/.test(e.userMessage),
        );
        const onPrimary = {
          ...deps,
          config: config((d) => d.targets.main.restore_test.allow_on_primary = false),
        };
        await assert.rejects(
          restoreTest.plan({ target: "main" }, onPrimary),
          (e: OpsError) => /restore_test\.server is its production primary/.test(e.userMessage),
        );
        await assert.rejects(
          restoreTest.plan({ target: "main", backup: "bisman_nosuch.dump" }, deps),
          /No dump "bisman_nosuch\.dump" in .* the newest are bisman_good\.dump/,
        );
      },
    );

    await t.step(
      "a restore server reached by another address is still refused when it is the primary",
      async () => {
        // Same cluster through its unix socket: the address differs, the system identifier does not.
        const viaSocket = {
          ...deps,
          config: config((d) => {
            d.targets.main.restore_test.allow_on_primary = false;
            d.targets.main.restore_test.server = { ...server, host: cluster.primary.socketDir };
          }),
        };
        const res = await run(undefined, viaSocket);
        assert.equal(res.passed, false);
        assert.match(
          res.error!.message,
          /the restore server is the production primary \(same system identifier\)/,
        );
        assert.deepEqual(await scratchDatabases(cluster), [], "nothing was created");
      },
    );

    await t.step(
      "a restore server reached with a password: pg_restore gets it, nothing shows it",
      async () => {
        // A superuser on the scratch server: the sample's DDL event trigger can only be restored by one.
        await cluster.primary.psql(`create role restorer login superuser password '${RESTORE_PASSWORD}'`);
        const withPassword = {
          ...deps,
          config: config((d) => {
            d.targets.main.restore_test.server = {
              ...server,
              user: "restorer",
              password_env: "BISMAN_TEST_RESTORE_PW",
            };
          }),
        };
        const res = await run(undefined, withPassword);
        assert.equal(res.passed, true, JSON.stringify(res.error));
        assert.deepEqual(await scratchDatabases(cluster), []);
        const seen =
          JSON.stringify([res, await deps.audit.rows(), await getRestoreTest(deps.state, res.id!)]) +
          tb.logs.join("\n");
        assert.ok(!seen.includes(RESTORE_PASSWORD), "the password appears in no result, audit row or log");
        // Kept out of the history, so the next steps start with no proven restore.
        await deps.state`delete from bisman_ops.restore_tests where id = ${res.id!}`;
      },
    );

    await t.step(
      "pg_restore runs at restore_test.nice on the bot's host (10 by default, 0 at the bot's priority)",
      async () => {
        // pg_restore behind a wrapper that notes its own niceness, then runs the real one.
        const seen = `${cluster.dir}/niceness.txt`;
        const wrapper = `${cluster.dir}/pg_restore_noting_nice`;
        await Deno.writeTextFile(
          wrapper,
          `#!/bin/sh\necho "$(nice) $1" >> ${seen}\nexec ${cluster.binDir}/pg_restore "$@"\n`,
        );
        await Deno.chmod(wrapper, 0o755);
        const restoreCalls = async () =>
          (await Deno.readTextFile(seen)).split("\n").filter((l) => l.endsWith(" -j"));
        for (const [nice, expected] of [[undefined, "10"], [0, "0"]] as const) {
          await Deno.writeTextFile(seen, "");
          const d = {
            ...deps,
            config: config((doc) => {
              doc.targets.main.backups.tools = { pg_restore: wrapper };
              if (nice !== undefined) doc.targets.main.restore_test.nice = nice;
            }),
          };
          const res = await run(undefined, d);
          assert.equal(res.passed, true, JSON.stringify(res.error));
          assert.deepEqual(await restoreCalls(), [`${expected} -j`], `the restore ran at nice ${expected}`);
          await deps.state`delete from bisman_ops.restore_tests where id = ${res.id!}`;
        }
        const plan = await restoreTest.plan({ target: "main" }, deps);
        assert.match(plan.steps.join("\n"), /into it \(at nice 10 on the bot's host\)/);
      },
    );

    await t.step(
      "with require_restore_test_within_days: 7, promote is refused while no test has passed",
      async () => {
        const refusal = await checkRestoreRequirement(deps, "promote_replica", "main");
        assert.match(
          refusal ?? "",
          /promote_replica on main needs a passing restore test within 7 days, and main has none/,
        );
        assert.match(refusal ?? "", /Start one with `\/bisman restore-test main`/);
        assert.equal(await checkRestoreRequirement(deps, "terminate_idle", "main"), undefined, "not listed");
        assert.equal(await provenRestoreNote(deps, "main"), "last proven restore: none on record for main");
        const asked = await ask(tb, "gate-test rt1", USERS.alice);
        assert.equal(asked.id, undefined, "no request was created");
        assert.match(
          asked.text,
          /Cannot request gate_test: gate_test on main needs a passing restore test within 7 days, and main has none\. Start one with `\/bisman restore-test main`, then ask again/,
        );
      },
    );

    await t.step("a test that passed 8 days ago does not satisfy a 7-day requirement", async () => {
      const eightDaysAgo = { ...deps, now: () => new Date(Date.now() - 8 * 24 * HOUR) };
      const old = await run(undefined, eightDaysAgo);
      assert.equal(old.passed, true);
      const refusal = await checkRestoreRequirement(deps, "promote_replica", "main");
      assert.match(
        refusal ?? "",
        new RegExp(`within 7 days; the last one passed 8 days ago \\(run ${old.id}, bisman_good\\.dump\\)`),
      );
      assert.match(refusal ?? "", /Start one with `\/bisman restore-test main`/);
      const asked = await ask(tb, "gate-test rt1", USERS.alice);
      assert.match(asked.text, /Cannot request gate_test: .*the last one passed 8 days ago/);
    });

    let passed: RestoreTestResult;
    await t.step(
      "a dump of the seeded database restores and verifies with matching counts; the scratch database is gone",
      async () => {
        const progress: RestoreProgress[] = [];
        passed = await run(undefined, deps, (p) => progress.push(p));
        assert.equal(passed.passed, true, JSON.stringify(passed, null, 1));
        assert.deepEqual(
          passed.verifications.map((v) => [v.name, v.restored, v.source, v.ok]),
          [
            ["clients", "5000", "5000", true],
            ["payment_requests", "15000", "15000", true],
            ["payments", "15000", "15000", true],
          ],
        );
        assert.ok(passed.restoreMs! > 0 && passed.totalMs >= passed.restoreMs!);
        assert.ok(passed.objectsTotal! > 20, `objects: ${passed.objectsTotal}`);
        assert.ok(passed.restoredBytes! > 1_000_000);
        assert.ok(passed.backup.dataAgeMs! >= 0, "data age from the dump's own timestamp");
        assert.equal(passed.scratchDropped, true);
        assert.match(passed.scratchDatabase, /^bisman_rt_main_\d{14}_[0-9a-f]{4}$/);
        assert.deepEqual(await scratchDatabases(cluster), []);

        const phases = [...new Set(progress.map((p) => p.phase))];
        assert.deepEqual(phases, ["reading dump", "creating database", "restoring", "verifying", "dropping"]);
        const restoring = progress.filter((p) => p.phase === "restoring");
        assert.ok(
          restoring.some((p) => p.objectsDone > 0 && p.objectsDone < p.objectsTotal!),
          "partial counts while restoring",
        );
        assert.ok(
          restoring.every((p, i) => i === 0 || p.objectsDone >= restoring[i - 1].objectsDone),
          "never goes back",
        );
        assert.equal(restoring.at(-1)!.objectsDone, passed.objectsTotal);

        const row = await getRestoreTest(deps.state, passed.id!);
        assert.equal(row?.status, "passed");
        assert.equal(row?.requestedBy, USERS.alice);
        assert.equal(row?.backupFile, "bisman_good.dump");
        const proven = await lastProvenRestore(deps.state, "main");
        assert.equal(proven?.id, passed.id);
        assert.equal(proven?.restoreMs, passed.restoreMs);
        const audit = (await deps.audit.rows()).filter((a) => a.action === "restore_test.finished");
        assert.equal(audit.at(-1)?.outcome, "passed");
      },
    );

    await t.step(
      "a dump with rows missing fails verification and names the query that differed",
      async () => {
        const res = await run("bisman_tampered.dump");
        assert.equal(res.passed, false);
        assert.equal(res.error?.step, "verifying");
        assert.match(res.error!.message, /verification failed: payments$/);
        const payments = res.verifications.find((v) => v.name === "payments")!;
        assert.equal(payments.ok, false);
        assert.equal(payments.reason, "restored 13500, primary 15000 (10% apart; tolerance 1%)");
        assert.ok(res.verifications.filter((v) => v.name !== "payments").every((v) => v.ok));
        assert.equal(res.scratchDropped, true);
        assert.deepEqual(await scratchDatabases(cluster), []);
        assert.equal(
          (await lastProvenRestore(deps.state, "main"))?.id,
          passed.id,
          "a failed test proves nothing",
        );
      },
    );

    await t.step(
      "a corrupt dump fails with pg_restore's error in the report; the scratch database is gone",
      async () => {
        const res = await run("bisman_corrupt.dump");
        assert.equal(res.passed, false);
        assert.equal(res.error?.step, "restoring");
        assert.match(
          res.error!.message,
          // With -j, the failing worker's line may come without the "pg_restore:" prefix.
          /pg_restore failed \(exit 1\): (pg_restore: )?.*error: (could not read from input file|could not find block ID \d+ in archive -- possibly corrupt archive)/,
        );
        assert.equal(res.restoreMs, undefined);
        assert.equal(res.scratchDropped, true);
        assert.deepEqual(await scratchDatabases(cluster), []);
        assert.equal((await getRestoreTest(deps.state, res.id!))?.status, "failed");
      },
    );

    await t.step("two restore tests of one target never run at once, across bot replicas", async () => {
      const otherState = connectState(tb.bot.deps.env.databaseUrl, { max: 2 });
      try {
        const replica: OpDeps = { ...deps, state: otherState, actor: USERS.bob };
        const results = await Promise.allSettled([run(undefined, deps), run(undefined, replica)]);
        const ok = results.filter((x) => x.status === "fulfilled");
        const refused = results.filter((x): x is PromiseRejectedResult => x.status === "rejected");
        assert.equal(ok.length, 1);
        assert.equal(refused.length, 1);
        assert.equal((refused[0].reason as OpsError).code, "conflict");
        assert.match(
          (refused[0].reason as OpsError).userMessage,
          /A restore test of main is already running: run \d+ by U0(ALICE|BOB), started .* ago from bisman_good\.dump/,
        );
      } finally {
        await otherState.end({ timeout: 2 });
      }
    });

    await t.step(
      "a finished test whose audit entry still waits (the log behind a burst) does not hold the restore lock",
      async () => {
        // The audit log appends in batches under its advisory lock; holding that lock from another session
        // stands for the backlog a burst of commands leaves (bench/load.ts: ~80,000 entries behind): every
        // append waits, as the run's own "restore_test.finished" did while it still held the restore lock.
        const blocker = await tb.bot.deps.state.reserve();
        await blocker`select pg_advisory_lock(${AUDIT_LOCK})`;
        const settled = (p: Promise<RestoreTestResult>) => {
          const s: { result?: RestoreTestResult; error?: unknown } = {};
          p.then((r) => (s.result = r), (e) => (s.error = e));
          return s;
        };
        const rowStatus = async (id: number) =>
          (await tb.bot.deps.state<{ status: string }[]>`
            select status from bisman_ops.restore_tests where id = ${id}`)[0]?.status;
        const newest = async () =>
          (await tb.bot.deps.state<{ id: number }[]>`
            select coalesce(max(id), 0)::int as id from bisman_ops.restore_tests`)[0].id;
        let first: Promise<RestoreTestResult> | undefined;
        let second: Promise<RestoreTestResult> | undefined;
        try {
          const before = await newest();
          first = run();
          const a = settled(first);
          const firstId = await waitFor(async () => {
            if (a.error) throw a.error;
            const id = await newest();
            return id > before && (await rowStatus(id)) !== "running" ? id : undefined;
          }, { what: "the first test's row to be final", timeoutMs: 120_000 });
          assert.equal(a.result, undefined, "the first run waits on its audit entry");
          // The next test, asked for once the first one's row is final: it runs, it is not refused.
          second = run();
          const b = settled(second);
          await waitFor(async () => {
            if (b.error) throw b.error;
            return (await newest()) > firstId && (await rowStatus(await newest())) !== "running";
          }, { what: "the second test to run to its final row", timeoutMs: 120_000 });
        } finally {
          await blocker`select pg_advisory_unlock(${AUDIT_LOCK})`;
          blocker.release();
        }
        // Nothing lost: once the log catches up, both runs are in it.
        const results = await Promise.all([first!, second!]);
        assert.deepEqual(results.map((r) => r.passed), [true, true]);
        const audited = await tb.bot.deps.state<{ run: number }[]>`
          select (details->>'run')::int as run from bisman_ops.audit_log
           where action = 'restore_test.finished' and (details->>'run')::int = any(${
          results.map((r) => r.id!)
        })`;
        assert.deepEqual(audited.map((r) => r.run).sort(), results.map((r) => r.id!).sort());
      },
    );

    await t.step(
      "after a passing test, promote is allowed and plans note the last proven restore",
      async () => {
        assert.equal(await checkRestoreRequirement(deps, "promote_replica", "main"), undefined);
        assert.equal(
          await checkRestoreRequirement(deps, "restore_test", "main"),
          undefined,
          "never required of itself",
        );
        assert.match(
          (await provenRestoreNote(deps, "main")) ?? "",
          /^last proven restore: today \(.*\), from bisman_good\.dump, restored in \d/,
        );
        const later = { ...deps, now: () => new Date(Date.now() + 8 * 24 * HOUR) };
        assert.match(
          (await checkRestoreRequirement(later, "promote_replica", "main")) ?? "",
          /the last one passed 8 days ago/,
        );

        const asked = await ask(tb, "gate-test rt1", USERS.alice);
        assert.match(asked.text, /Request #\d+ waits for an approver/);
        const msg = JSON.stringify(tb.approvalMessage(asked.id)!.blocks);
        assert.match(msg, /last proven restore: today \(.*\), from bisman_good\.dump, restored in/);
        assert.equal(await tb.click(ACTIONS.approve, asked.id!, USERS.carol), 200);
        await tb.waitForState(asked.id!, "succeeded");
        assert.equal(await runsOf(srcSql, "rt1"), 1);
      },
    );

    await t.step(
      "the requirement is checked again before running: an approval after it lapsed does not run",
      async () => {
        const asked = await ask(tb, "gate-test rt2", USERS.alice);
        assert.ok(asked.id, asked.text);
        // The passing tests age out of the window between the request and the click.
        await tb.bot.deps
          .state`update bisman_ops.restore_tests set finished_at = finished_at - interval '30 days'`;
        assert.equal(await tb.click(ACTIONS.approve, asked.id!, USERS.carol), 200);
        await tb.waitForState(asked.id!, "stale");
        assert.match(
          tb.approvalMessage(asked.id)!.text!,
          /needs a passing restore test within 7 days; the last one passed 30 days ago/,
        );
        assert.equal(await runsOf(srcSql, "rt2"), 0);
        await tb.bot.deps
          .state`update bisman_ops.restore_tests set finished_at = finished_at + interval '30 days'`;
      },
    );

    await t.step(
      "a database without the marker is never dropped, whatever its name; the cleanup drops only orphans",
      async () => {
        const stamp = "20260101000000";
        const unmarked = `bisman_rt_main_${stamp}_aaaa`;
        const nearMiss = `bisman_rt_main_${stamp}_bbbb`;
        const markedOddName = "important_data";
        await cluster.primary.psql(`create database ${unmarked}`);
        await cluster.primary.psql(
          `create database ${nearMiss}; comment on database ${nearMiss} is 'bisman-ops restore-test scratch database'`,
        );
        await cluster.primary.psql(
          `create database ${markedOddName}; comment on database ${markedOddName} is 'bisman-ops restore-test scratch database; target=main; run=1; created=2026-01-01T00:00:00.000Z'`,
        );
        // An orphan: a run recorded as running whose bot died after creating and marking its database.
        const orphanName = scratchName("main", new Date());
        const orphanRun = await recordStart(deps.state, {
          target: "main",
          trigger: "command",
          requestedBy: USERS.alice,
          startedAt: new Date(),
          backupFile: "bisman_good.dump",
          backupBytes: goodBytes.length,
          restoreServer: "test",
          scratchDatabase: orphanName,
        });
        const admin = cluster.primary.sql();
        await createScratch(admin, orphanName, {
          target: "main",
          runId: orphanRun,
          created: new Date().toISOString(),
        });

        for (const name of [unmarked, nearMiss, markedOddName]) {
          const outcome = await dropScratch(admin, name);
          assert.equal(outcome.dropped, false, name);
        }
        assert.equal(
          (await dropScratch(admin, orphanName, { target: "main", runId: orphanRun + 1 })).dropped,
          false,
        );

        // While a test of main runs (here: its lock is held), the cleanup leaves main alone.
        let busyReport;
        await tryWithRestoreLock(deps.state, "main", async () => {
          busyReport = await cleanupRestoreScratch({
            ...deps,
            state: connectState(tb.bot.deps.env.databaseUrl, { max: 1 }),
          });
        });
        assert.deepEqual(busyReport!.busy, ["main"]);
        assert.deepEqual(busyReport!.dropped, []);

        const report = await cleanupRestoreScratch(deps);
        assert.deepEqual(report.dropped, [{ target: "main", database: orphanName }]);
        assert.deepEqual(
          report.refused.map((x) => x.database).sort(),
          [markedOddName, unmarked, nearMiss].sort(),
        );
        assert.ok(report.interrupted.includes(orphanRun));
        assert.equal((await getRestoreTest(deps.state, orphanRun))?.status, "failed");
        const left = (await cluster.primary.psql("select datname from pg_database order by 1")).split("\n")
          .map((l) => l.trim());
        for (const name of [unmarked, nearMiss, markedOddName]) {
          assert.ok(left.includes(name), `${name} still exists`);
        }
        assert.ok(!left.includes(orphanName));
        await cluster.primary.psql(
          `drop database ${unmarked}; drop database ${nearMiss}; drop database ${markedOddName}`,
        );
      },
    );

    /** The message a restore test asked by `user` lives in (slack/answers.ts WorkMessage), once posted. */
    const workMessage = (user: string, after: number) =>
      tb.slack.messages.find((m) =>
        Number(m.ts) > after && !m.thread_ts &&
        ((m.text ?? "").startsWith(`:hourglass_flowing_sand: <@${user}> started \`/bisman restore-test`) ||
          JSON.stringify(m.blocks ?? []).includes(`<@${user}> asked for \`/bisman restore-test`))
      );
    const threadReply = (m: StoredMessage) =>
      tb.slack.messages.find((x) => x.thread_ts === m.ts && x.ts !== m.ts);

    await t.step(
      "/bisman restore-test acks at once, keeps acking 200 other commands while it runs, shows progress in a channel message through the Web API, then the result there and a mention of the asker in its thread; a second one is refused",
      async () => {
        const since = Number(tb.slack.messages.at(-1)?.ts ?? 0);
        const responseUrlPosts = tb.slack.calls.filter((c) => c.method === "response_url").length;
        const [first, second] = await Promise.all([
          tb.command("restore-test main"),
          tb.command("restore-test main", USERS.bob),
        ]);
        for (const res of [first, second]) {
          assert.equal(res.status, 200);
          assert.match(
            res.body.text,
            /Working on `\/bisman restore-test`: its progress and result will be posted in this channel/,
          );
          assert.ok(res.ms < 2000, `acked in ${res.ms} ms`);
        }
        // The same process keeps acking while its restore test runs: 200 /bisman help, 20 at a time, once
        // the test is under way (the benchmark's load at a small scale; `deno task bench load` has figures).
        await waitFor(async () =>
          (await deps.state<{ n: number }[]>`
            select count(*)::int as n from bisman_ops.restore_tests where status = 'running'`)[0].n === 1, {
          what: "the restore test under way",
        });
        const acks: number[] = [];
        for (let batch = 0; batch < 10; batch++) {
          const answers = await Promise.all(
            Array.from({ length: 20 }, () => tb.command("help", USERS.carol)),
          );
          for (const a of answers) {
            assert.equal(a.status, 200);
            assert.match(a.body.text, /^bisman-ops subcommands:/);
            acks.push(a.ms);
          }
        }
        assert.ok(Math.max(...acks) < 3000, `every ack within Slack's 3 s (slowest ${Math.max(...acks)} ms)`);
        // Whichever of the two got the target's lock runs; the other is refused in its own message.
        const [winner, loser] = await tb.slack.waitFor(
          () => {
            for (const [w, l] of [[USERS.alice, USERS.bob], [USERS.bob, USERS.alice]]) {
              const m = workMessage(w, since);
              if (m && /Restore test of main passed/.test(m.text ?? "")) return [w, l];
            }
            return undefined;
          },
          30_000,
          "a restore test message turned into the result",
        );
        const message = workMessage(winner, since)!;
        const updates = tb.slack.calls.filter((c) =>
          c.method === "chat.update" && c.args.ts === message.ts && c.status === 200
        ).map((c) => String(c.args.text));
        const progressAt = updates.findIndex((x) =>
          /^:hourglass_flowing_sand: Restore test of main from bisman_good\.dump: /.test(x)
        );
        const resultAt = updates.findIndex((x) => /Restore test of main passed/.test(x));
        assert.ok(progressAt >= 0 && progressAt < resultAt, updates.join("\n---\n"));
        assert.match(
          updates[progressAt],
          /: (restoring|verifying) \(step [34] of 5\), \d+ of \d+ objects restored(, 0 of 1 verification queries)?, \d+ s elapsed$/,
        );
        assert.match(message.text!, /restore \(RTO\) \d+(\.\d)? s/);
        assert.match(message.text!, /scratch database bisman_rt_main_\d{14}_[0-9a-f]{4} dropped/);
        assert.match(
          JSON.stringify(message.blocks),
          new RegExp(`<@${winner}> asked for \`/bisman restore-test main\``),
        );
        const mention = await tb.slack.waitFor(() => threadReply(message), 5000, "the mention in its thread");
        assert.match(
          mention.text!,
          new RegExp(
            `^<@${winner}> \`/bisman restore-test main\` finished: :white_check_mark: Restore test of main passed`,
          ),
        );
        const refused = await tb.slack.waitFor(
          () => {
            const m = workMessage(loser, since);
            return m && /A restore test of main is already running/.test(m.text ?? "") && m;
          },
          5000,
          "the second one's refusal",
        );
        assert.match(JSON.stringify(refused.blocks), new RegExp(`<@${loser}> asked for`));
        assert.equal(
          tb.slack.calls.filter((c) => c.method === "response_url").length,
          responseUrlPosts,
          "no progress or answer of a restore test goes through a response_url",
        );
        assert.deepEqual(await scratchDatabases(cluster), []);
      },
    );

    await t.step(
      "a restore test whose result comes after its response_url expired still reaches the asker and the channel",
      async () => {
        const since = Number(tb.slack.messages.at(-1)?.ts ?? 0);
        const responseUrl = tb.slack.responseUrl({ user: USERS.alice, channel: OPS_CHANNEL });
        const res = await tb.command("restore-test main", USERS.alice, { response_url: responseUrl });
        assert.match(res.body.text, /Working on `\/bisman restore-test`/);
        // 31 minutes pass on Slack's clock while the test runs (it verifies with a 3.5 s query, so it is still
        // running now): the response_url Slack gave the command no longer works.
        tb.slack.advanceClock(31 * 60_000);
        const late = await fetch(responseUrl, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ text: "probe" }),
        });
        assert.deepEqual([late.status, (await late.json()).error], [404, "expired_url"]);
        const message = await tb.slack.waitFor(
          () => {
            const m = workMessage(USERS.alice, since);
            return m && /Restore test of main passed/.test(m.text ?? "") && m;
          },
          30_000,
          "the result in the channel",
        );
        assert.equal(message.channel, OPS_CHANNEL, "in the channel it was asked in");
        const mention = await tb.slack.waitFor(() => threadReply(message), 5000, "the asker's mention");
        assert.match(mention.text!, /^<@U0ALICE> .*finished: :white_check_mark: Restore test of main passed/);
        const lost = tb.slack.calls.filter((c) =>
          c.method === "response_url" && c.error && c.error !== "expired_url"
        );
        assert.deepEqual(lost, [], "nothing was sent to the expired response_url but the probe");
      },
    );

    await t.step(
      "where restore tests need approval, /bisman restore-test asks the gate and an approval runs it",
      async () => {
        const gated = await startTestBot(cluster, {
          config: config((d) => d.targets.main.restore_test.requires_approval = true),
        });
        try {
          const asked = await ask(gated, "restore-test main", USERS.alice);
          assert.match(asked.text, /Request #\d+ waits for an approver/);
          const blocks = JSON.stringify(gated.approvalMessage(asked.id)!.blocks);
          assert.match(blocks, /pg_restore -j 2 --exit-on-error bisman_good\.dump/);
          assert.match(blocks, /last proven restore: none on record for main/, "its own state database");
          assert.equal(await gated.click(ACTIONS.approve, asked.id!, USERS.carol), 200);
          await gated.waitForState(asked.id!, "succeeded", 30_000);
          assert.match(
            gated.approvalMessage(asked.id)!.text!,
            /restore test of main passed: bisman_good\.dump restored in/,
          );
          assert.equal(
            (await lastProvenRestore(gated.bot.deps.state, "main"))?.backupFile,
            "bisman_good.dump",
          );
          assert.deepEqual(await scratchDatabases(cluster), []);
        } finally {
          await gated.stop();
        }
      },
    );

    await t.step("/bisman restore-test refuses non-operators and unknown targets", async () => {
      const dave = await tb.command("restore-test main", USERS.dave);
      const reply = dave.body?.text ?? "";
      const final = reply.startsWith(":hourglass") || /Working on/.test(reply)
        ? await tb.slack.waitFor(
          () => tb.slack.responses.find((x) => /is for operators/.test(String(x.body.text))),
          5000,
          "the refusal",
        ).then((x) => String(x.body.text))
        : reply;
      assert.match(final, /`\/bisman restore-test` is for operators/);
      const unknown = await tb.command("restore-test nosuch");
      assert.match(unknown.body.text, /Unknown target "nosuch": configured targets are main/);
    });
  } finally {
    await tb.stop();
  }
});
