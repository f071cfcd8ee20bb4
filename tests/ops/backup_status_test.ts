import assert from "node:assert/strict";
import { startCluster } from "../../standins/cluster.ts";
import { pgDump, setAge } from "../support/dumps.ts";
import { setupStanza } from "../../standins/pgbackrest.ts";
import { startTestBot, testConfig } from "../support/bot.ts";
import { waitFor } from "../../standins/wait.ts";
import type { Config } from "../../core/config.ts";
import type { OpDeps } from "../../ops/types.ts";
import { backupStatus, readBackupStatus } from "../../ops/backup_status.ts";
import type { Finding } from "../../ops/_findings.ts";

const HOUR = 3600_000;

/** The finding of `check` from `source` (exactly one). */
function finding(findings: Finding[], source: Finding["source"], check: string): Finding {
  const hits = findings.filter((f) => f.source === source && f.check === check);
  assert.equal(
    hits.length,
    1,
    `one "${check}" finding from ${source}; got ${JSON.stringify(findings, null, 1)}`,
  );
  return hits[0];
}

Deno.test("backup_status judges a dump folder, a pgBackRest stanza and pg_stat_archiver against the policy", async (t) => {
  await using cluster = await startCluster({ name: "backups", archive: true });
  const stanza = await setupStanza(cluster, { name: "bisman" });
  const src = await cluster.createDatabase("src");
  await cluster.primary.psql(
    "create table clients(id bigint primary key, name text); insert into clients select g, 'c' || g from generate_series(1, 2000) g;",
    src,
  );
  const dumps = `${cluster.dir}/dumps`;
  await Deno.mkdir(dumps);
  const good = `${dumps}/bisman_good.dump`;
  await pgDump(cluster, src, good);
  const goodBytes = await Deno.readFile(good);

  const backups = (patch: Record<string, unknown> = {}) => ({
    dump_folder: { path: dumps, pattern: "bisman_*.dump", max_age_hours: 26, retention_days: 2 },
    pgbackrest: { stanza: "bisman", config_file: stanza.configFile, run_as: "postgres", retention_days: 0 },
    wal_archiving: { max_age_minutes: 60 },
    ...patch,
  });
  const config = testConfig(cluster, (doc) => {
    doc.targets.main.backups = backups();
  });
  const variant = (patch: (doc: Record<string, any>) => void): Config =>
    testConfig(cluster, (doc) => {
      doc.targets.main.backups = backups();
      patch(doc);
    });
  const tb = await startTestBot(cluster, { config });
  const deps: OpDeps = tb.bot.deps;
  const withConfig = (c: Config): OpDeps => ({ ...deps, config: c });
  try {
    // Three daily dumps: today's, yesterday's, the day before.
    for (
      const [name, age] of [["bisman_d0.dump", 1 * HOUR], ["bisman_d1.dump", 25 * HOUR], [
        "bisman_d2.dump",
        49 * HOUR,
      ]] as const
    ) {
      await Deno.writeFile(`${dumps}/${name}`, goodBytes);
      await setAge(`${dumps}/${name}`, age);
    }
    await Deno.remove(good);

    await t.step("plan() names every configured source", async () => {
      const plan = await backupStatus.plan({ target: "main" }, deps);
      assert.deepEqual(plan.sources, [
        `dump folder ${dumps}`,
        "pgBackRest stanza bisman",
        "pg_stat_archiver on the primary",
      ]);
    });

    await t.step("a folder of fresh, readable daily dumps is ok", async () => {
      const r = await readBackupStatus("main", deps);
      const df = r.findings.filter((f) => f.source === "dump_folder");
      assert.deepEqual(df.map((f) => [f.check, f.severity]), [
        ["newest dump age", "ok"],
        ["newest dump readable", "ok"],
        ["missing dumps", "ok"],
        ["retention", "ok"],
      ]);
      assert.equal(r.dumpFolder?.newest?.name, "bisman_d0.dump");
      assert.equal(r.dumpFolder?.files, 3);
      assert.ok((r.dumpFolder?.newest?.entries ?? 0) > 0, "TOC entries from pg_restore --list");
      assert.match(
        finding(df, "dump_folder", "newest dump readable").reason,
        /read bisman_d0\.dump to its end/,
      );
    });

    await t.step(
      "an old newest dump is a warning past max_age_hours and critical past twice it",
      async () => {
        await setAge(`${dumps}/bisman_d0.dump`, 30 * HOUR);
        await setAge(`${dumps}/bisman_d1.dump`, 40 * HOUR);
        let r = await readBackupStatus("main", deps);
        let f = finding(r.findings, "dump_folder", "newest dump age");
        assert.equal(f.severity, "warning");
        assert.match(f.reason, /bisman_d0\.dump is 30 h old \(policy: at most 26 h/);
        await setAge(`${dumps}/bisman_d0.dump`, 60 * HOUR);
        await setAge(`${dumps}/bisman_d1.dump`, 70 * HOUR);
        await setAge(`${dumps}/bisman_d2.dump`, 80 * HOUR);
        r = await readBackupStatus("main", deps);
        f = finding(r.findings, "dump_folder", "newest dump age");
        assert.equal(f.severity, "critical");
        assert.equal(r.severity, "critical");
      },
    );

    await t.step(
      "a truncated newest dump is critical although pg_restore --list still reads it",
      async () => {
        const truncated = `${dumps}/bisman_truncated.dump`;
        await Deno.writeFile(truncated, goodBytes.slice(0, Math.floor(goodBytes.length * 0.4)));
        const listed = await cluster.run(["pg_restore", "--list", truncated]);
        assert.equal(listed.code, 0, "the TOC sits at the start of a custom-format dump");
        const r = await readBackupStatus("main", deps);
        assert.equal(r.dumpFolder?.newest?.name, "bisman_truncated.dump");
        const f = finding(r.findings, "dump_folder", "newest dump readable");
        assert.equal(f.severity, "critical");
        assert.match(
          f.reason,
          /bisman_truncated\.dump is truncated or corrupt.*could not read from input file/,
        );
        assert.equal(
          finding(r.findings, "dump_folder", "newest dump size").severity,
          "warning",
          "under half the usual size is flagged too",
        );
        // A file cut inside its header cannot even be listed.
        await Deno.writeFile(truncated, goodBytes.slice(0, 100));
        const r2 = await readBackupStatus("main", deps);
        assert.match(
          finding(r2.findings, "dump_folder", "newest dump readable").reason,
          /pg_restore --list cannot read bisman_truncated\.dump: pg_restore: error: could not read from input file/,
        );
        await Deno.remove(truncated);
      },
    );

    await t.step("missing days between dumps, and retention not reached, are warnings", async () => {
      await setAge(`${dumps}/bisman_d0.dump`, 1 * HOUR);
      await setAge(`${dumps}/bisman_d1.dump`, 73 * HOUR); // two dumps missing between them
      await Deno.remove(`${dumps}/bisman_d2.dump`);
      const r = await readBackupStatus("main", deps);
      assert.equal(finding(r.findings, "dump_folder", "newest dump age").severity, "ok");
      const gap = finding(r.findings, "dump_folder", "missing dumps");
      assert.equal(gap.severity, "warning");
      assert.match(gap.reason, /1 gap longer than 36 h between dumps: .* \(3 days\)/);
      const long = await readBackupStatus(
        "main",
        withConfig(variant((d) => d.targets.main.backups.dump_folder.retention_days = 30)),
      );
      const ret = finding(long.findings, "dump_folder", "retention");
      assert.equal(ret.severity, "warning");
      assert.match(
        ret.reason,
        /retention not reached: the oldest dump \(bisman_d1\.dump\) is 3 days old, policy keeps 30 days/,
      );
    });

    await t.step(
      "a missing or empty folder and a missing pg_restore are critical findings, not crashes",
      async () => {
        const missing = await readBackupStatus(
          "main",
          withConfig(
            variant((d) => d.targets.main.backups.dump_folder.path = `${cluster.dir}/no-such-folder`),
          ),
        );
        const f = finding(missing.findings, "dump_folder", "dump folder");
        assert.equal(f.severity, "critical");
        assert.match(f.reason, /no-such-folder is missing on the bot's host/);
        await Deno.mkdir(`${cluster.dir}/empty`);
        const empty = await readBackupStatus(
          "main",
          withConfig(variant((d) => d.targets.main.backups.dump_folder.path = `${cluster.dir}/empty`)),
        );
        assert.match(
          finding(empty.findings, "dump_folder", "dump folder").reason,
          /no file in .*empty matches bisman_\*\.dump/,
        );
        const noTools = await readBackupStatus(
          "main",
          withConfig(variant((d) => {
            d.targets.main.backups.tools = {
              pg_restore: "/opt/none/pg_restore",
              pgbackrest: "/opt/none/pgbackrest",
            };
          })),
        );
        const pr = finding(noTools.findings, "dump_folder", "newest dump readable");
        assert.equal(pr.severity, "critical");
        assert.match(pr.reason, /\/opt\/none\/pg_restore is not installed/);
        const pb = finding(noTools.findings, "pgbackrest", "pgbackrest info");
        assert.equal(pb.severity, "critical");
        assert.match(pb.reason, /\/opt\/none\/pgbackrest is not installed/);
      },
    );

    await t.step("a stanza with a real full backup and archived WAL is ok", async () => {
      await stanza.backup("full");
      await stanza.archiveOne();
      const r = await readBackupStatus("main", deps);
      const pb = r.findings.filter((f) => f.source === "pgbackrest");
      assert.deepEqual(pb.map((f) => [f.check, f.severity]), [
        ["stanza status", "ok"],
        ["newest full backup", "ok"],
        ["newest backup", "ok"],
        ["WAL archive", "ok"],
      ]);
      assert.equal(r.pgbackrest?.newestFull?.type, "full");
      assert.ok(r.pgbackrest!.newestFull!.stop >= r.pgbackrest!.newestFull!.start);
      assert.ok(r.pgbackrest!.newestFull!.size > 0);
      assert.match(r.pgbackrest?.walMax ?? "", /^[0-9A-F]{24}$/);
      const arch = finding(r.findings, "wal_archiving", "archive_command");
      assert.equal(arch.severity, "ok");
      assert.match(arch.reason, /last archived [0-9A-F]{24} /);
    });

    await t.step("an unknown stanza and an old full backup are judged", async () => {
      const r = await readBackupStatus(
        "main",
        withConfig(variant((d) => d.targets.main.backups.pgbackrest.stanza = "nosuch")),
      );
      const f = finding(r.findings, "pgbackrest", "stanza status");
      assert.equal(f.severity, "critical");
      assert.match(f.reason, /stanza nosuch: missing stanza path \(code 1\)/);
      const later = await readBackupStatus("main", {
        ...deps,
        now: () => new Date(Date.now() + 10 * 24 * HOUR),
      });
      assert.equal(finding(later.findings, "pgbackrest", "newest full backup").severity, "warning");
      assert.equal(finding(later.findings, "pgbackrest", "newest backup").severity, "critical");
    });

    await t.step("a broken archive_command shows in pg_stat_archiver and is critical", async () => {
      await stanza.breakArchiving();
      await cluster.primary.psql("insert into _archive_probe values (2); select pg_switch_wal();");
      await waitFor(
        async () =>
          (await cluster.primary.psql("select failed_count > 0 from pg_stat_archiver")).trim() === "t",
        { what: "an archive failure", timeoutMs: 20_000 },
      );
      const r = await readBackupStatus("main", deps);
      const f = finding(r.findings, "wal_archiving", "archive_command");
      assert.equal(f.severity, "critical");
      assert.match(
        f.reason,
        /archiving is failing: [0-9A-F]{24} failed .* ago \(\d+ failures since stats reset\); last success .* ago; \d+ segments waiting/,
      );
      assert.equal(r.severity, "critical");
    });

    await t.step(
      "/bisman backups answers at once and then shows every source with its judgement",
      async () => {
        const res = await tb.command("backups main");
        assert.equal(res.status, 200);
        assert.match(res.body.text, /Working on `\/bisman backups`/);
        const final = await tb.slack.waitFor(
          () => tb.slack.responses.find((r) => String(r.body.text).startsWith("Backups of main")),
          20_000,
          "the backups reply",
        );
        const text = String(final.body.text);
        assert.match(text, /Backups of main: CRITICAL/);
        assert.match(text, /\[ok\] newest dump readable: pg_restore read bisman_d0\.dump/);
        assert.match(text, /\[critical\] archive_command: archiving is failing/);
        assert.match(text, /\[ok\] newest full backup: \d{8}-\d{6}F finished/);
        const blocks = JSON.stringify(final.body.blocks);
        assert.match(blocks, /:red_circle: critical/);
        assert.match(blocks, /pgBackRest stanza `bisman`/);
        const invalid = tb.slack.calls.filter((c) => /invalid|too_long|no_text/.test(c.error ?? ""));
        assert.deepEqual(invalid.map((c) => [c.method, c.error]), [], "Slack's Block Kit checks passed");
      },
    );

    await t.step("/bisman backups with an unknown target says which exist", async () => {
      const res = await tb.command("backups nosuch");
      assert.match(res.body.text, /Unknown target "nosuch": configured targets are main/);
    });
  } finally {
    await stanza.repairArchiving().catch(() => undefined);
    await tb.stop();
  }
});
