import assert from "node:assert/strict";
import { startCluster } from "../../standins/cluster.ts";
import { waitFor } from "../../standins/wait.ts";
import { startTestBot, testConfig } from "../support/bot.ts";
import { createBismanDatabase, setTestPassword } from "../support/bisman_schema.ts";
import { ask } from "../support/gate.ts";
import { planCleanup, runCleanup } from "../../jobs/cleanup.ts";
import { createScratch, scratchName } from "../../ops/_scratch.ts";
import type { Config } from "../../core/config.ts";
import type { OpDeps } from "../../ops/types.ts";

async function sha256(path: string): Promise<string> {
  const d = await crypto.subtle.digest("SHA-256", await Deno.readFile(path));
  return Array.from(new Uint8Array(d), (b) => b.toString(16).padStart(2, "0")).join("");
}

Deno.test("cleanup archives old audit rows to verified files before deleting them, prunes job runs, expires approvals and drops only marked scratch databases", async (t) => {
  await using cluster = await startCluster({ name: "cleanup" });
  const { db, sql } = await createBismanDatabase(cluster, { rows: { clients: 5 } });
  const dir = await Deno.makeTempDir({ prefix: "bisman-archive-" });
  const dumps = await Deno.makeTempDir({ prefix: "bisman-dumps-" });
  Deno.env.set("CLEANUP_TEST_BOT_PW", await setTestPassword(cluster, "bisman_ops"));
  const config = testConfig(cluster, (doc) => {
    doc.targets.main.primary.database = db;
    doc.targets.main.backups = { dump_folder: { path: dumps } };
    doc.targets.main.restore_test = { allow_on_primary: true };
    // The bot's least-privilege role on the same database: it may not delete audit rows.
    doc.targets.limited = {
      primary: {
        host: "127.0.0.1",
        port: cluster.primary.port,
        database: db,
        user: "bisman_ops",
        password_env: "CLEANUP_TEST_BOT_PW",
        sslmode: "disable",
      },
    };
    doc.retention = {
      job_runs_days: 30,
      audit_archive: { older_than_days: 30, dir, batch_rows: 100, targets: ["main"] },
    };
    // The minute-by-minute expiry sweep would expire the test's overdue request before cleanup sees it.
    doc.schedules = { cleanup: { enabled: false }, approval_expiry: { enabled: false } };
  });
  // With approval_expiry off the gate sweeps on its own timer (every 30 s): pushed out of the test's way too.
  const tb = await startTestBot(cluster, { config, start: { sweepIntervalMs: 3_600_000 } });
  const deps: OpDeps = tb.bot.deps;
  const state = tb.bot.deps.state;
  const withConfig = (patch: (c: Config) => Config): OpDeps => ({ ...deps, config: patch(deps.config) });
  try {
    await sql`truncate public.audit_logs_dml`;
    await sql`
      insert into public.audit_logs_dml (occurred_at, table_name, action, row_id, new_data)
      select now() - interval '40 days' + g * interval '1 second', 'clients', 'UPDATE', g::text,
             jsonb_build_object('n', g)
        from generate_series(1, 250) g`;
    await sql`
      insert into public.audit_logs_dml (table_name, action, row_id)
      select 'clients', 'INSERT', g::text from generate_series(1, 5) g`;
    await state`
      insert into bisman_ops.job_runs (job, slot, trigger, runner, lease_until, outcome, finished_at, started_at)
      values ('digest', now() - interval '100 days', 'schedule', 'old', now(), 'ok', now() - interval '100 days',
              now() - interval '100 days'),
             ('digest', now() - interval '1 day', 'schedule', 'recent', now(), 'ok', now() - interval '1 day',
              now() - interval '1 day')`;
    const pending = await ask(tb, "run cleanup");
    assert.ok(pending.id, pending.text);
    await state`update bisman_ops.requests set expires_at = now() - interval '1 minute' where id = ${pending
      .id!}`;
    const server = cluster.primary.sql();
    const marked = scratchName("main", new Date());
    await createScratch(server, marked, { target: "main", runId: 1, created: new Date().toISOString() });
    const unmarked = scratchName("main", new Date(Date.now() - 60_000));
    await server.unsafe(`create database "${unmarked}"`);

    await t.step("planCleanup() counts what each step will touch, and changes nothing", async () => {
      const plan = await planCleanup(deps);
      const by = Object.fromEntries(plan.items.map((i) => [i.key, i.pending]));
      assert.match(by.approvals, /^1 pending request\(s\) past their deadline/);
      assert.match(by.job_runs, /^1 run record\(s\) older than 30 days/);
      assert.match(by.audit_archive, /main: 250 row\(s\)/);
      assert.match(by.scratch_databases, /marked scratch databases of main/);
      const [{ n }] = await sql<{ n: number }[]>`select count(*)::int as n from public.audit_logs_dml`;
      assert.equal(n, 255);
    });

    await t.step(
      "runCleanup() archives 250 rows in 3 verified files, then deletes exactly them",
      async () => {
        const report = await runCleanup(deps);
        assert.deepEqual(report.steps.map((s) => [s.key, s.outcome]), [
          ["approvals", "ok"],
          ["scratch_databases", "ok"],
          ["job_runs", "ok"],
          ["audit_archive", "ok"],
        ], JSON.stringify(report, null, 1));
        const files = [...Deno.readDirSync(dir)].map((e) => e.name).sort();
        const data = files.filter((f) => f.endsWith(".jsonl"));
        assert.equal(data.length, 3, files.join(", "));
        assert.ok(!files.some((f) => f.endsWith(".partial")));
        const ids: number[] = [];
        for (const f of data) {
          const [digest, name] = (await Deno.readTextFile(`${dir}/${f}.sha256`)).trim().split(/\s+/);
          assert.equal(name, f);
          assert.equal(digest, await sha256(`${dir}/${f}`), `checksum of ${f}`);
          for (const line of (await Deno.readTextFile(`${dir}/${f}`)).trim().split("\n")) {
            const row = JSON.parse(line);
            assert.equal(row.table_name, "clients");
            ids.push(Number(row.id));
          }
        }
        assert.equal(ids.length, 250);
        assert.equal(new Set(ids).size, 250);
        const left = await sql<{ action: string }[]>`select action from public.audit_logs_dml`;
        assert.deepEqual(left.map((r) => r.action), Array(5).fill("INSERT"), "only the recent rows are left");
        const batches = (await tb.bot.deps.audit.rows()).filter((r) => r.action === "audit_archive.batch");
        assert.deepEqual(batches.map((b) => b.details.rows), [100, 100, 50]);
      },
    );

    await t.step(
      "the other steps: old job runs pruned, the overdue request expired, the marked scratch database dropped",
      async () => {
        const runs = await state<
          { runner: string }[]
        >`select runner from bisman_ops.job_runs where job = 'digest'`;
        assert.deepEqual(runs.map((r) => r.runner), ["recent"]);
        await tb.waitForState(pending.id!, "expired");
        const dbs = (await server<{ datname: string }[]>`select datname from pg_database`).map((r) =>
          r.datname
        );
        assert.ok(!dbs.includes(marked), "the marked scratch database is gone");
        assert.ok(dbs.includes(unmarked), "a database without the marker is never dropped");
      },
    );

    await t.step("when the archive cannot be written, nothing is deleted", async () => {
      await sql`update public.audit_logs_dml set occurred_at = now() - interval '40 days'`;
      const blocker = await Deno.makeTempFile();
      const report = await runCleanup(withConfig((c) => ({
        ...c,
        retention: {
          ...c.retention,
          audit_archive: { ...c.retention.audit_archive!, dir: `${blocker}/archive` },
        },
      })));
      const step = report.steps.find((s) => s.key === "audit_archive")!;
      assert.equal(step.outcome, "failed");
      assert.match(step.detail, /cannot be created/);
      const [{ n }] = await sql<{ n: number }[]>`select count(*)::int as n from public.audit_logs_dml`;
      assert.equal(n, 5, "every row is still there");
      await Deno.remove(blocker);
    });

    await t.step(
      "a role without DELETE on audit_logs_dml is refused before any file is written",
      async () => {
        const before = [...Deno.readDirSync(dir)].length;
        const report = await runCleanup(withConfig((c) => ({
          ...c,
          retention: {
            ...c.retention,
            audit_archive: { ...c.retention.audit_archive!, targets: ["limited"] },
          },
        })));
        const step = report.steps.find((s) => s.key === "audit_archive")!;
        assert.equal(step.outcome, "failed");
        assert.match(
          step.detail,
          /limited: Cannot archive audit_logs_dml of limited: the bot's role bisman_ops lacks DELETE/,
        );
        assert.equal([...Deno.readDirSync(dir)].length, before, "no file was written");
        const [{ n }] = await sql<{ n: number }[]>`select count(*)::int as n from public.audit_logs_dml`;
        assert.equal(n, 5);
      },
    );

    await t.step("without retention.audit_archive nothing is ever deleted from audit_logs_dml", async () => {
      const report = await runCleanup(withConfig((c) => ({ ...c, retention: { job_runs_days: 30 } })));
      assert.deepEqual(
        report.steps.find((s) => s.key === "audit_archive"),
        {
          key: "audit_archive",
          title: "Archive audit_logs_dml rows past the retention to files, verify, then delete them",
          outcome: "not available",
          detail: "not configured (retention.audit_archive): nothing is deleted",
        },
      );
      await waitFor(async () => (await sql`select 1 from public.audit_logs_dml`).length === 5, {
        what: "rows kept",
      });
    });
  } finally {
    await tb.stop();
    await Deno.remove(dir, { recursive: true }).catch(() => undefined);
    await Deno.remove(dumps, { recursive: true }).catch(() => undefined);
  }
});
