import assert from "node:assert/strict";
import postgres from "postgres";
import { startCluster } from "../../standins/cluster.ts";
import { startTestBot, testConfig, USERS } from "../support/bot.ts";
import { ask } from "../support/gate.ts";
import { pgDump } from "../support/dumps.ts";
import { seedRotatableRoles } from "../support/rotation.ts";
import { waitFor } from "../../standins/wait.ts";
import { VaultStandIn } from "../../standins/vault.ts";
import { ACTIONS } from "../../views/actions.ts";

const ALERTS_TOKEN = `alerts-${crypto.randomUUID()}`;
const OLD_PASSWORD = `old-metrics-app-${crypto.randomUUID()}`;

/** Every sample of `text` as `name{labels}` → value. */
function parse(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split("\n")) {
    if (!line || line.startsWith("#")) continue;
    const i = line.lastIndexOf(" ");
    out.set(line.slice(0, i), Number(line.slice(i + 1)));
  }
  return out;
}

/** The series of one metric: `{labels}` → value. */
function seriesOf(samples: Map<string, number>, name: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const [k, v] of samples) {
    if (k === name || k.startsWith(`${name}{`)) out.set(k.slice(name.length), v);
  }
  return out;
}

Deno.test("/metrics shows the runbook's health per target after each action: backup, restore test, rotation, request, lag, audit verify, alert", async (t) => {
  await using cluster = await startCluster({ name: "runbook-metrics", replica: true });
  const vault = await VaultStandIn.start();
  const src = await cluster.createDatabase("bisman");
  await cluster.primary.psql(
    "create table clients (id int primary key); insert into clients select generate_series(1, 50);" +
      "create table payment_requests (id int primary key); insert into payment_requests values (1), (2);",
    src,
  );
  const dumps = `${cluster.dir}/dumps`;
  await Deno.mkdir(dumps);
  const beforeDump = Date.now() / 1000;
  await pgDump(cluster, src, `${dumps}/bisman_first.dump`);
  const afterDump = Date.now() / 1000;
  const roles = await seedRotatableRoles(cluster, vault, "bisman/db", {
    metrics_app: { key: "app_password", password: OLD_PASSWORD },
  });
  const config = testConfig(cluster, (doc) => {
    doc.targets.main.primary.database = src;
    for (const r of doc.targets.main.replicas) r.database = src;
    doc.targets.main.roles = roles;
    doc.targets.main.backups = {
      dump_folder: { path: dumps, pattern: "bisman_*.dump" },
      tools: { pg_restore: `${cluster.binDir}/pg_restore`, pg_dump: `${cluster.binDir}/pg_dump` },
    };
    doc.targets.main.restore_test = {
      allow_on_primary: true,
      requires_approval: false,
      verify: [{ name: "clients", sql: "SELECT COUNT(*) FROM clients", min: 1 }],
    };
    doc.alerts = { lag_check: { enabled: false } };
  });
  const tb = await startTestBot(cluster, {
    config,
    env: { VAULT_ADDR: vault.addr, VAULT_TOKEN: vault.rootToken, ALERTS_TOKEN },
    // No scheduled jobs and no expiry sweep during the test: what /metrics shows comes from the test's
    // actions only. Every scrape reads the state database afresh.
    start: { jobs: [], sweepIntervalMs: 3_600_000, stateMetrics: { cacheMs: 0, timeoutMs: 1_000 } },
  });
  const stateDb = new URL(tb.bot.deps.env.databaseUrl).pathname.slice(1);
  const scrape = async () => {
    const res = await fetch(`${tb.bot.url}/metrics`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get("content-type") ?? "", /^text\/plain; version=0\.0\.4/);
    return await res.text();
  };
  const metrics = async () => parse(await scrape());
  const texts: string[] = [];
  try {
    await t.step(
      "before any action: zero approvals, no proven restore, the process and the build",
      async () => {
        const text = await scrape();
        texts.push(text);
        const m = parse(text);
        assert.equal(m.get('bisman_approvals_pending{target="main"}'), 0);
        assert.equal(m.get('bisman_approvals_pending_past_expiry{target="main"}'), 0);
        assert.equal(m.get('bisman_alert_threads_open{target="main"}'), 0);
        assert.equal(
          m.get('bisman_restore_test_last_success_timestamp_seconds{target="main"}'),
          0,
          "0: no restore test has passed, so `time() - x > 35d` fires",
        );
        assert.equal(seriesOf(m, "bisman_approvals_pending_oldest_timestamp_seconds").size, 0);
        assert.equal(m.get('bisman_metrics_source_up{source="state_db"}'), 1);
        assert.ok((m.get("process_resident_memory_bytes") ?? 0) > 0);
        assert.ok(m.has("process_cpu_seconds_total"));
        assert.ok(m.has("nodejs_eventloop_lag_p99_seconds"));
        assert.ok(
          [...m.keys()].some((k) =>
            /^bisman_build_info\{version="[^"]+",commit="[^"]+",deno="[^"]+"\}$/.test(k)
          ),
        );
      },
    );

    await t.step("a backup check sets the newest backup's time per source, and when it checked", async () => {
      const r = await ask(tb, "backups main");
      assert.match(r.text, /bisman_first\.dump/);
      const m = await metrics();
      const newest = m.get('bisman_backup_newest_timestamp_seconds{target="main",source="dump_folder"}');
      // pg_dump's own "Archive created at" (whole seconds) of the dump made above.
      assert.ok(
        newest !== undefined && newest >= Math.floor(beforeDump) && newest <= Math.ceil(afterDump),
        `newest ${newest} in [${beforeDump}, ${afterDump}]`,
      );
      assert.ok((m.get('bisman_backup_checked_timestamp_seconds{target="main"}') ?? 0) >= afterDump);
    });

    await t.step(
      "a request waits: pending 1 and its time; approved, the backup runs and is the newest",
      async () => {
        const before = Date.now() / 1000;
        const r = await ask(tb, "backup now main", USERS.alice);
        const id = r.id!;
        assert.ok(id, r.text);
        let m = await metrics();
        assert.equal(m.get('bisman_approvals_pending{target="main"}'), 1);
        const oldest = m.get('bisman_approvals_pending_oldest_timestamp_seconds{target="main"}')!;
        assert.ok(oldest >= Math.floor(before) - 1 && oldest <= Date.now() / 1000, `oldest ${oldest}`);
        assert.equal(m.get('bisman_approvals_pending_past_expiry{target="main"}'), 0);
        await tb.click(ACTIONS.approve, id, USERS.bob);
        await tb.waitForState(id, "succeeded", 60_000);
        m = await metrics();
        assert.equal(m.get('bisman_approvals_pending{target="main"}'), 0);
        assert.equal(seriesOf(m, "bisman_approvals_pending_oldest_timestamp_seconds").size, 0);
        const newest = m.get('bisman_backup_newest_timestamp_seconds{target="main",source="dump_folder"}')!;
        assert.ok(newest >= before, `the backup just taken is the newest (${newest} >= ${before})`);
      },
    );

    await t.step("a passing restore test: its time and its restore duration (RTO)", async () => {
      const before = Date.now() / 1000;
      await tb.command("restore-test main", USERS.alice);
      const m = await waitFor(async () => {
        const m = await metrics();
        return (m.get('bisman_restore_test_last_success_timestamp_seconds{target="main"}') ?? 0) > 0 && m;
      }, { what: "a passing restore test in /metrics", timeoutMs: 60_000, intervalMs: 200 });
      const at = m.get('bisman_restore_test_last_success_timestamp_seconds{target="main"}')!;
      assert.ok(at >= before && at <= Date.now() / 1000, `finished at ${at}`);
      const rto = m.get('bisman_restore_test_last_success_duration_seconds{target="main"}')!;
      const [row] = await cluster.primary.sql(stateDb)<{ restore_ms: string }[]>`
        select restore_ms from bisman_ops.restore_tests where status = 'passed'`;
      assert.equal(rto, Number(row.restore_ms) / 1000, "the RTO is the recorded restore time, in seconds");
    });

    let changedBefore = 0;
    await t.step("a credential-age check sets when each role's password was written to Vault", async () => {
      const r = await ask(tb, "creds main");
      assert.match(r.text, /metrics_app/);
      const m = await metrics();
      changedBefore = m.get('bisman_credential_changed_timestamp_seconds{target="main",role="metrics_app"}')!;
      assert.ok(changedBefore > 0 && changedBefore <= Date.now() / 1000, `changed at ${changedBefore}`);
    });

    await t.step("a rotation, once approved, sets the rotated role's time to the rotation's", async () => {
      const before = Date.now() / 1000;
      const r = await ask(tb, "rotate metrics_app", USERS.alice);
      assert.ok(r.id, r.text);
      assert.equal((await metrics()).get('bisman_approvals_pending{target="main"}'), 1);
      await tb.click(ACTIONS.approve, r.id!, USERS.bob);
      await tb.waitForState(r.id!, "succeeded", 30_000);
      const m = await metrics();
      const changed = m.get('bisman_credential_changed_timestamp_seconds{target="main",role="metrics_app"}')!;
      assert.ok(changed > changedBefore && changed >= before - 1, `${changed} after ${changedBefore}`);
      assert.equal(m.get('bisman_approvals_pending{target="main"}'), 0);
    });

    await t.step("a lag check sets bytes and seconds behind per replica, and when it measured", async () => {
      await cluster.waitForReplay();
      const r = await ask(tb, "lag main");
      assert.match(r.text, /replica1/);
      const m = await metrics();
      const bytes = m.get('bisman_replication_lag_bytes{target="main",replica="replica1"}');
      const seconds = m.get('bisman_replication_lag_seconds{target="main",replica="replica1"}');
      assert.ok(bytes !== undefined && bytes >= 0, `lag bytes ${bytes}`);
      assert.ok(seconds !== undefined && seconds >= 0, `lag seconds ${seconds}`);
      assert.ok((m.get('bisman_replication_lag_checked_timestamp_seconds{target="main"}') ?? 0) > 0);
    });

    await t.step("audit-log verify sets the chain's state, its last verified row and when", async () => {
      const before = Date.now() / 1000;
      const r = await ask(tb, "audit-log verify", USERS.bob);
      const head = Number(/head is row (\d+)/.exec(r.text)?.[1]);
      assert.ok(head > 0, r.text);
      const m = await metrics();
      assert.equal(m.get("bisman_audit_chain_ok"), 1);
      assert.equal(m.get("bisman_audit_chain_verified_seq"), head);
      assert.ok((m.get("bisman_audit_chain_verified_timestamp_seconds") ?? 0) >= before);
    });

    await t.step(
      "an alert thread opened by Alertmanager counts as open for its target until resolved",
      async () => {
        const post = (status: "firing" | "resolved") =>
          fetch(`${tb.bot.url}/alerts`, {
            method: "POST",
            headers: { "content-type": "application/json", authorization: `Bearer ${ALERTS_TOKEN}` },
            body: JSON.stringify({
              version: "4",
              groupKey: '{}:{alertname="TooManyConnections"}',
              status,
              receiver: "bisman-ops",
              alerts: [{
                status,
                labels: { alertname: "TooManyConnections", target: "main", "service.name": "db" },
                annotations: {},
                startsAt: new Date().toISOString(),
                endsAt: status === "resolved" ? new Date().toISOString() : "0001-01-01T00:00:00Z",
                fingerprint: "00ab",
              }],
            }),
          }).then((r) => r.text().then(() => assert.equal(r.status, 200)));
        await post("firing");
        assert.equal((await metrics()).get('bisman_alert_threads_open{target="main"}'), 1);
        await post("resolved");
        assert.equal((await metrics()).get('bisman_alert_threads_open{target="main"}'), 0);
      },
    );

    await t.step("a request past its expiry that nobody closed shows as past expiry", async () => {
      const r = await ask(tb, "rotate metrics_app", USERS.alice);
      assert.ok(r.id, r.text);
      // The expiry sweep is off in this test: the state it would have closed, as if the sweep had stopped.
      await cluster.primary.sql(stateDb)`
        update bisman_ops.requests set expires_at = now() - interval '1 minute' where id = ${r.id!}`;
      const m = await metrics();
      assert.equal(m.get('bisman_approvals_pending{target="main"}'), 1);
      assert.equal(m.get('bisman_approvals_pending_past_expiry{target="main"}'), 1);
      texts.push(await scrape());
    });

    await t.step(
      "a state database that does not answer in time: /metrics still answers, marked stale",
      async () => {
        // Another session holds a lock the reader's query waits for; the scrape gives up after its timeout
        // (1 s here) and the database cancels the query (statement_timeout).
        const locker = postgres(tb.bot.deps.env.databaseUrl, { max: 1, onnotice: () => {} });
        let release!: () => void;
        const held = new Promise<void>((r) => (release = r));
        let locked!: () => void;
        const isLocked = new Promise<void>((r) => (locked = r));
        const tx = locker.begin(async (sql) => {
          await sql`lock table bisman_ops.requests in access exclusive mode`;
          locked();
          await held;
        });
        try {
          await isLocked;
          const m = await metrics();
          assert.equal(m.get('bisman_metrics_source_up{source="state_db"}'), 0);
          assert.equal(m.get('bisman_approvals_pending{target="main"}'), 1, "the last values read stay");
          assert.ok(m.has("process_resident_memory_bytes"), "the rest of /metrics is there");
        } finally {
          release();
          await tx;
          await locker.end();
        }
        await waitFor(
          async () => (await metrics()).get('bisman_metrics_source_up{source="state_db"}') === 1,
          {
            what: "the state database read succeeding again",
          },
        );
      },
    );

    await t.step(
      "no secret, and no label value that is not from the config, appears in /metrics",
      async () => {
        const text = (texts.push(await scrape()), texts.join("\n"));
        const newPassword = vault.kvGet("bisman/db")?.data.app_password;
        for (const s of [OLD_PASSWORD, newPassword, vault.rootToken, ALERTS_TOKEN, tb.slack.botToken]) {
          assert.ok(s && !text.includes(s), "a secret in /metrics");
        }
        assert.ok(!text.includes("service.name"), "alert label names never become metric labels");
        const targets = [...text.matchAll(/[{,]target="([^"]*)"/g)].map((x) => x[1]);
        assert.deepEqual([...new Set(targets)], ["main"]);
      },
    );
  } finally {
    await tb.stop();
    await vault.stop();
  }
});
