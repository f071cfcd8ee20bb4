import assert from "node:assert/strict";
import { startCluster } from "../../standins/cluster.ts";
import { setupStanza } from "../../standins/pgbackrest.ts";
import { startTestBot, testConfig, USERS } from "../support/bot.ts";
import { ask, ephemeralTo } from "../support/gate.ts";
import { ACTIONS, encodeRequestButton } from "../../views/actions.ts";
import { dumpFileName } from "../../ops/backup_now.ts";

Deno.test("dumpFileName() stamps the prefix with the UTC date and time", () => {
  assert.equal(dumpFileName("bisman_", new Date("2026-11-26T04:05:06.789Z")), "bisman_20261126_040506.dump");
});

Deno.test("backup now: pgBackRest and pg_dump backups through the gate, shown in /bisman backups at once; promote offers a backup first", async (t) => {
  await using cluster = await startCluster({ name: "backup-now", archive: true, replica: true });
  const stanza = await setupStanza(cluster);
  const dumps = `${cluster.dir}/dumps`;
  await Deno.mkdir(dumps);
  const conn = { host: "127.0.0.1", port: cluster.primary.port, user: "postgres", sslmode: "disable" };
  const config = testConfig(cluster, (doc) => {
    doc.targets.main.backups = {
      pgbackrest: { stanza: stanza.name, config_file: stanza.configFile, run_as: "postgres" },
      dump_folder: { path: dumps, pattern: "bisman_*.dump" },
    };
    // A second target on the same server whose only source is the dump folder.
    doc.targets.dumps = {
      primary: conn,
      backups: { dump_folder: { path: dumps, pattern: "bisman_*.dump" } },
    };
    doc.targets.nobackup = { primary: conn };
    doc.policies = { promote: { approvals: 1 } };
  });
  const tb = await startTestBot(cluster, { config });
  const stanzaBackups = async () =>
    ((await stanza.info())[0] as { backup?: { label: string }[] }).backup?.map((b) => b.label) ?? [];
  try {
    await t.step(
      "bad asks are refused before any request: no source, pg_dump is never incremental",
      async () => {
        assert.match(
          (await ask(tb, "backup now nobackup", USERS.alice)).text,
          /nobackup has no backup source/,
        );
        assert.match(
          (await ask(tb, "backup now dumps diff", USERS.alice)).text,
          /A pg_dump backup is always full/,
        );
        assert.match((await ask(tb, "backup later", USERS.alice)).text, /Bad argument 1: say "now"/);
        assert.match((await ask(tb, "backup now main", USERS.dave)).text, /for operators/);
      },
    );

    let full = "";
    await t.step(
      "a pgBackRest full backup runs after approval, with progress, and is in /bisman backups",
      async () => {
        const r = await ask(tb, "backup now main", USERS.alice);
        assert.match(r.text, /waits for an approver.*pgBackRest full backup of main \(stanza bisman\)/);
        const id = r.id!;
        const steps = JSON.stringify(tb.approvalMessage(id)!.blocks);
        assert.match(steps, /pgbackrest --stanza=bisman --type=full backup \(as postgres\)/);
        assert.equal(await tb.click(ACTIONS.approve, id, USERS.carol), 200);
        await tb.waitForState(id, "succeeded", 60_000);
        const view = (await tb.bot.gate.view(id))!;
        const m = /pgBackRest full backup (\d{8}-\d{6}F) of main/.exec(view.request.summary ?? "");
        assert.ok(m, view.request.summary ?? "");
        full = m[1];
        assert.deepEqual(await stanzaBackups(), [full]);
        assert.match(view.request.progress ?? "", /^pgBackRest: /, "a progress line was shown while it ran");
        const backups = await ask(tb, "backups main", USERS.dave);
        assert.match(backups.text, new RegExp(`newest full backup: ${full} finished \\d+ s ago`));
      },
    );

    await t.step("an incremental backup names its type", async () => {
      const id = (await ask(tb, "backup now incr main", USERS.alice)).id!;
      assert.equal(await tb.click(ACTIONS.approve, id, USERS.bob), 200);
      await tb.waitForState(id, "succeeded", 60_000);
      const summary = (await tb.bot.gate.view(id))!.request.summary ?? "";
      assert.match(summary, /pgBackRest incr backup \d{8}-\d{6}F_\d{8}-\d{6}I of main/);
      assert.match((await ask(tb, "backups main", USERS.dave)).text, /newest backup: \S+I \(incr\)/);
    });

    await t.step(
      "pg_dump into the dump folder: renamed only once read back, and in /bisman backups",
      async () => {
        const id = (await ask(tb, "backup now dumps", USERS.alice)).id!;
        assert.equal(await tb.click(ACTIONS.approve, id, USERS.carol), 200);
        await tb.waitForState(id, "succeeded", 60_000);
        const summary = (await tb.bot.gate.view(id))!.request.summary ?? "";
        const m = /dump (bisman_\d{8}_\d{6}\.dump) of dumps/.exec(summary);
        assert.ok(m, summary);
        const files = [...Deno.readDirSync(dumps)].map((e) => e.name);
        assert.deepEqual(files, [m[1]], "no .partial file is left");
        const listed = await cluster.run(["pg_restore", "--list", `${dumps}/${m[1]}`]);
        assert.equal(listed.code, 0, listed.stderr);
        const backups = await ask(tb, "backups dumps", USERS.dave);
        assert.match(backups.text, new RegExp(`newest dump age: ${m[1].replace(".", "\\.")} is \\d+ s old`));
        const audit = (await tb.bot.deps.audit.rows({ requestId: id })).map((x) => x.action);
        assert.deepEqual(audit.slice(-2), ["op.started", "op.succeeded"]);
      },
    );

    await t.step(
      "promote offers 'take a backup first': an approver drops and keeps it; a stale Approve is refused",
      async (t) => {
        // fenced=true: the primary stays up here (the backup is taken from it), and an unfenced writable old
        // primary refuses the promotion at run time.
        const id = (await ask(tb, "promote replica1 main fenced=true", USERS.alice)).id!;
        const blocks = () => JSON.stringify(tb.approvalMessage(id)!.blocks);
        assert.match(blocks(), /Step 0, take a backup first\*: kept/);
        assert.equal(await tb.click(ACTIONS.backupFirst, id, USERS.carol), 200);
        await tb.bot.gate.idle();
        assert.match(blocks(), /Step 0, take a backup first\*: dropped/);
        assert.equal((await tb.bot.gate.view(id))!.request.pre_backup, false);
        // An approval drawn while the step was still kept no longer matches what would run.
        const plan = (await tb.bot.gate.view(id))!.request.plan_hash;
        const before = tb.slack.ephemerals.length;
        const res = await tb.slack.sendBlockAction(tb.eventsUrl, {
          user_id: USERS.carol,
          action_id: ACTIONS.approve,
          value: encodeRequestButton({ request: id, plan, backup: true }),
          channel_id: tb.approvalMessage(id)!.channel,
          message_ts: tb.approvalMessage(id)!.ts,
        });
        await res.body?.cancel();
        await ephemeralTo(
          tb,
          USERS.carol,
          /backup step of request #\d+ was dropped since you looked/,
          before,
        );
        assert.equal((await tb.bot.gate.view(id))!.request.state, "pending");
        const eph = tb.slack.ephemerals.length;
        assert.equal(await tb.click(ACTIONS.backupFirst, id, USERS.dave), 200);
        await ephemeralTo(tb, USERS.dave, /Only the requester or an approver of promote_replica/, eph);
        assert.equal(
          await tb.click(ACTIONS.backupFirst, id, USERS.alice),
          200,
          "the requester keeps it again",
        );
        await tb.bot.gate.idle();
        assert.equal((await tb.bot.gate.view(id))!.request.pre_backup, true);

        await t.step("approved with the step kept: the backup runs first, then the promotion", async () => {
          const labels = await stanzaBackups();
          assert.equal(await tb.click(ACTIONS.approve, id, USERS.bob), 200);
          await tb.waitForState(id, "succeeded", 90_000);
          const after = await stanzaBackups();
          assert.equal(after.length, labels.length + 1, "one more backup");
          const rows = await tb.bot.deps.audit.rows({ requestId: id });
          const order = rows.map((x) => `${x.action}:${x.outcome}`);
          const i = (s: string) => order.indexOf(s);
          assert.ok(i("request.backup_first_dropped:ok") < i("request.backup_first_kept:ok"));
          assert.ok(i("op.backup_first:started") < i("op.backup_first:succeeded"));
          assert.ok(i("op.backup_first:succeeded") < i("op.started:started"), order.join(" "));
          const promoted = await cluster.replica!.psql("select pg_is_in_recovery()");
          assert.equal(promoted.trim(), "f");
        });
      },
    );
  } finally {
    await tb.stop();
  }
});
