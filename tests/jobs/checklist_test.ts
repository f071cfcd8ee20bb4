import assert from "node:assert/strict";
import { startCluster } from "../../standins/cluster.ts";
import { waitFor } from "../../standins/wait.ts";
import { OPS_CHANNEL, startTestBot, testConfig, USERS } from "../support/bot.ts";
import { createBismanDatabase, setTestPassword } from "../support/bisman_schema.ts";
import { enableTls, seedHba, writeHba } from "../../standins/tls.ts";
import { VaultStandIn } from "../../standins/vault.ts";
import { DAY, prepareTarget, seedRestoreTests } from "./_digest_fixture.ts";
import { evaluateChecklist } from "../../jobs/checklist.ts";
import { CHECKLIST_RUNBOOK_PATTERN, JOB_ACTIONS } from "../../views/actions.ts";
import { readRuns } from "../../jobs/run_store.ts";
import { forgetVersionsFeed } from "../../ops/patch_level.ts";
import { serve } from "../../standins/_serve.ts";

const recordedFeed = JSON.parse(
  await Deno.readTextFile(new URL("../fixtures/postgresql_versions.json", import.meta.url)),
) as Record<string, unknown>[];

/** PostgreSQL's versions feed at the HTTP boundary: the recorded copy, with one major's entry as the test sets it. */
function startVersionsFeed() {
  let entry: Record<string, unknown> | undefined;
  const server = serve(() =>
    Response.json(recordedFeed.map((e) => (entry && e.major === entry.major ? { ...e, ...entry } : e)))
  );
  return {
    url: `${server.url}/versions.json`,
    set: (e: Record<string, unknown>) => {
      entry = e;
      forgetVersionsFeed();
    },
    stop: () => server.close(),
  };
}

/** A Kong Admin API stand-in: GET /plugins answers whatever the test sets. */
function startKong() {
  let plugins: unknown[] = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, (req) => {
    const url = new URL(req.url);
    if (req.method === "GET" && url.pathname === "/plugins") {
      return Response.json({ data: plugins, next: null });
    }
    return Response.json({ message: "Not found" }, { status: 404 });
  });
  return {
    url: `http://127.0.0.1:${server.addr.port}`,
    set: (p: unknown[]) => void (plugins = p),
    stop: () => server.shutdown(),
  };
}

const seedPlugins = [
  { name: "rate-limiting", enabled: true, config: { minute: 100, policy: "redis", redis_host: "redis" } },
  { name: "ip-restriction", enabled: true, config: { allow: ["10.0.0.0/8", "192.168.0.0/16"] } },
];

/** Every button of a reply, by its text. */
function buttons(blocks: unknown[]): Map<string, { action_id: string; value: string }> {
  const out = new Map<string, { action_id: string; value: string }>();
  for (
    const b of blocks as {
      type: string;
      elements?: { text: { text: string }; action_id: string; value: string }[];
    }[]
  ) {
    if (b.type === "actions") { for (const e of b.elements ?? []) out.set(e.text.text, e); }
  }
  return out;
}

Deno.test("checklist: a misconfigured cluster fails each item with its evidence; configured as the seed says, every checkable item passes", async (t) => {
  // The target cluster's pg_hba.conf ends up allowing only hostssl + scram-sha-256, so the bot's own state
  // database lives on a second, ordinary cluster.
  await using cluster = await startCluster({ name: "checklist", preload: ["pgaudit", "pg_stat_statements"] });
  await using stateCluster = await startCluster({ name: "checklist-state" });
  const vault = await VaultStandIn.start();
  const kong = startKong();
  const feed = startVersionsFeed();
  kong.set([
    { name: "rate-limiting", enabled: true, config: { minute: 1000 } },
    { name: "ip-restriction", enabled: true, config: { allow: ["0.0.0.0/0"] } },
  ]);
  const { db, sql } = await createBismanDatabase(cluster, { rows: { clients: 10 } });
  await sql`truncate public.security_events, public.audit_logs_dml`;
  const fixture = await prepareTarget(cluster, vault, "main", { shareDb: db, credentialAgeDays: 120 });
  Deno.env.set("CHECKLIST_TEST_BOT_PW", await setTestPassword(cluster, "bisman_ops"));
  const versionNum = Number((await cluster.primary.psql("show server_version_num")).trim());
  const major = String(Math.floor(versionNum / 10000));
  const minor = versionNum % 10000;
  // The feed as the next release would make it: a newer minor of the server's major.
  feed.set({ major, latestMinor: String(minor + 1) });
  const config = testConfig(cluster, (doc) => {
    doc.targets.main = {
      primary: {
        host: "127.0.0.1",
        port: cluster.primary.port,
        database: db,
        user: "bisman_ops",
        password_env: "CHECKLIST_TEST_BOT_PW",
        sslmode: "prefer",
      },
      roles: {
        bisman_app: { path: fixture.vaultPath, key: "app_password" },
        bisman_admin: { path: fixture.vaultPath, key: "admin_password" },
      },
      backups: {
        dump_folder: { path: fixture.dumps, pattern: "bisman_*.dump", max_age_hours: 26, retention_days: 0 },
      },
      restore_test: { allow_on_primary: true },
      security: { other_roles: ["postgres"] },
    };
    doc.checklist = { kong_admin_url: kong.url, postgres_versions: { url: feed.url } };
    doc.alerts = { lag_check: { enabled: false } };
  });
  const tb = await startTestBot(stateCluster, {
    config,
    env: { VAULT_ADDR: vault.addr, VAULT_TOKEN: vault.rootToken, ALERTS_TOKEN: "alerts-test-token" },
  });
  const deps = tb.bot.deps;
  const unconfigured = ["wal_streaming", "central_logging"];
  const item = async (key: string) => {
    const c = await evaluateChecklist(deps, "main", tb.bot.scheduler.services);
    return c.items.find((i) => i.key === key)!;
  };
  try {
    await t.step("misconfigured: every item that fails names what it found", async () => {
      await sql.unsafe("create role eve login superuser");
      const c = await evaluateChecklist(deps, "main", tb.bot.scheduler.services);
      const by = Object.fromEntries(c.items.map((i) => [i.key, i]));
      const evidence = (k: string) => by[k].evidence.join("\n");
      const expect = (k: string, status: string, re: RegExp) => {
        assert.equal(by[k].status, status, `${k}: ${evidence(k)}`);
        assert.match(evidence(k), re, `${k}: ${evidence(k)}`);
      };
      expect("roles_least_privilege", "fail", /critical: eve: /);
      expect(
        "credentials_in_vault",
        "fail",
        /bisman_app: secret\/bisman\/main#app_password, 120 days old \(over 90\)/,
      );
      assert.match(
        evidence("credentials_in_vault"),
        /bisman_admin: secret\/bisman\/main#admin_password: no such key/,
      );
      expect("tls_enforced", "fail", /ssl = off/);
      expect("network_restricted", "fail", /no final `hostssl all all 0\.0\.0\.0\/0 reject`/);
      expect("backups_tested", "fail", /no restore test has passed/);
      expect("monitoring_enabled", "fail", /no Alertmanager webhook has been received/);
      expect(
        "waf_rules",
        "fail",
        /rate-limiting allows 1000 a minute, the seed 100[\s\S]*ip-restriction allows 0\.0\.0\.0\/0/,
      );
      expect("encryption_at_rest", "attestation_needed", /no operator has attested it yet/);
      expect("rotated_90_days", "fail", /bisman_app: rotated 120 days ago \(limit 90\)/);
      expect("restore_tested_month", "fail", /no passing restore test since/);
      expect("slow_queries_reviewed_week", "fail", /the weekly review has not run/);
      expect("audit_logs_reviewed", "fail", /has not run in the last 7 days/);
      expect(
        "security_patches",
        "warning",
        new RegExp(
          `runs ${major}\\.${minor}; ${major}\\.${minor + 1} is the newest ${major}\\.x release: update`,
        ),
      );
      // The items this target has no config for say so (tests/jobs/checklist_sources_test.ts configures them).
      for (const [k, key] of [["wal_streaming", "wal_streaming"], ["central_logging", "central_logging"]]) {
        expect(k, "not_configured", new RegExp(`^not configured: set targets\\.main\\.${key}$`));
      }
      assert.match(evidence("network_restricted"), /\npg_hba\.conf:\n/);
      assert.match(
        evidence("network_restricted"),
        /not checked: not running in Kubernetes\nno operator has attested it yet/,
      );
      for (
        const i of c.items.filter((x) => x.group !== "incident_response" && !unconfigured.includes(x.key))
      ) {
        assert.notEqual(i.status, "unknown", `${i.key} was checked: ${i.evidence.join("; ")}`);
      }
    });

    await t.step(
      "/bisman checklist answers with each item, its evidence, its command, and the buttons",
      async () => {
        const before = tb.slack.responses.length;
        await tb.command("checklist main");
        const reply = await waitFor(
          () =>
            tb.slack.responses.slice(before).map((r) => r.body).find((b) =>
              /^Checklist main/.test(String(b.text))
            ),
          { timeoutMs: 30_000, what: "the checklist reply" },
        );
        const blocks = reply.blocks as unknown[];
        assert.ok(blocks.length <= 50);
        const text = JSON.stringify(blocks);
        assert.match(text, /:x: fail \*SSL\/TLS enforced for all connections\*/);
        assert.match(text, /more: `\/bisman tls main`/);
        assert.match(text, /Incident response/);
        const b = buttons(blocks);
        assert.ok(b.has("Attest: LUKS") && b.has("Attest: cloud KMS"));
        assert.ok(b.has("Rotate all credentials") && b.has("Promote replica") && b.has("Show connections"));
        // A runbook button performs its entry as the alert threads' button does: a read-only one answers the clicker.
        const show = b.get("Show connections")!;
        assert.match(
          show.action_id,
          CHECKLIST_RUNBOOK_PATTERN,
          "an indexed runbook action_id, unique in its block",
        );
        await (await tb.slack.sendBlockAction(tb.eventsUrl, {
          action_id: show.action_id,
          value: show.value,
          user_id: USERS.alice,
          channel_id: OPS_CHANNEL,
          message_ts: "1700000000.000050",
        })).body?.cancel();
        const answer = await waitFor(
          () =>
            tb.slack.ephemerals.find((e) =>
              e.ephemeral_user === USERS.alice && /^main: \d+\/100 connections/.test(e.text ?? "")
            ),
          { what: "the Show connections answer" },
        );
        assert.ok(answer.ts, "answered the clicker only");
      },
    );

    await t.step("configured as the seed prescribes, every checkable item passes", async () => {
      await sql.unsafe("drop role eve");
      await enableTls(cluster);
      await writeHba(cluster, seedHba(["127.0.0.1/32"]));
      await cluster.primary.psql(
        "select pg_terminate_backend(pid) from pg_stat_activity where client_addr is not null and pid <> pg_backend_pid()",
      );
      await deps.targets.reset("main");
      await sql.end();
      // Rotated: new passwords written to Vault today.
      vault.kvPut(fixture.vaultPath, { app_password: "app-new-pw", admin_password: "admin-new-pw" });
      await seedRestoreTests(deps.state, "main", [{ ageDays: 0, restoreMs: 900 }]);
      kong.set(seedPlugins);
      // An Alertmanager webhook, through the front door.
      const res = await fetch(`${tb.bot.url}/alerts`, {
        method: "POST",
        headers: { authorization: "Bearer alerts-test-token", "content-type": "application/json" },
        body: JSON.stringify({
          version: "4",
          groupKey: '{}:{alertname="Watchdog"}',
          status: "firing",
          receiver: "bisman-ops",
          alerts: [{
            status: "firing",
            labels: { alertname: "Watchdog", severity: "none" },
            startsAt: new Date().toISOString(),
            fingerprint: "0123456789abcdef",
          }],
        }),
      });
      assert.equal(res.status, 200, await res.text());
      // The weekly slow-query review ran and an operator acknowledged it with its button.
      await tb.command("run slow_query_review");
      const review = await waitFor(
        () =>
          tb.slack.messages.find((m) =>
            m.channel === OPS_CHANNEL && /^Weekly slow-query review/.test(m.text ?? "")
          ),
        { timeoutMs: 20_000, what: "the review post" },
      );
      const ack = buttons(review.blocks!).get("Acknowledge review")!;
      assert.equal(ack.action_id, JOB_ACTIONS.ack);
      await (await tb.slack.sendBlockAction(tb.eventsUrl, {
        action_id: ack.action_id,
        value: ack.value,
        user_id: USERS.bob,
        channel_id: OPS_CHANNEL,
        message_ts: review.ts,
      })).body?.cancel();
      await waitFor(async () => (await item("slow_queries_reviewed_week")).status === "pass", {
        what: "the review acknowledged",
      });
      // Audit-anomaly detection ran; what it found (the role made and dropped above) is acknowledged.
      await tb.command("run audit_anomaly");
      const anomaly = await waitFor(
        async () => (await readRuns(deps.state, "audit_anomaly", { outcomes: ["ok"] }))[0],
        {
          timeoutMs: 20_000,
          what: "the anomaly detection run",
        },
      );
      if (Number(anomaly.details.findings) > 0) {
        assert.equal((await item("audit_logs_reviewed")).status, "fail");
        await tb.command(`jobs ack ${anomaly.id}`, USERS.bob);
      }
      await waitFor(async () => (await item("audit_logs_reviewed")).status === "pass", {
        what: "the findings acknowledged",
      });
      // Encryption at rest attested by an operator, with the mechanism.
      const before = tb.slack.responses.length;
      await tb.command("checklist main");
      const reply = await waitFor(
        () =>
          tb.slack.responses.slice(before).map((r) => r.body).find((b) =>
            /^Checklist main/.test(String(b.text))
          ),
        { timeoutMs: 30_000, what: "the checklist reply" },
      );
      // So are the network rules outside Kubernetes (the bot does not run in a cluster here).
      for (
        const [label, recorded] of [["Attest: LUKS", /Recorded: encryption at rest/], [
          "Attest: security groups",
          /Recorded: network policies/,
        ]] as const
      ) {
        const b = buttons(reply.blocks as unknown[]).get(label)!;
        await (await tb.slack.sendBlockAction(tb.eventsUrl, {
          action_id: b.action_id,
          value: b.value,
          user_id: USERS.alice,
          channel_id: OPS_CHANNEL,
          message_ts: "1700000000.000100",
        })).body?.cancel();
        await waitFor(
          () =>
            tb.slack.ephemerals.find((e) => e.ephemeral_user === USERS.alice && recorded.test(e.text ?? "")),
          { what: `the ${label} answer` },
        );
      }
      // The feed's newest minor of the server's major is the one it runs, its end of life two years away.
      feed.set({
        major,
        latestMinor: String(minor),
        eolDate: new Date(Date.now() + 730 * DAY).toISOString().slice(0, 10),
        supported: true,
      });
      const c = await evaluateChecklist(deps, "main", tb.bot.scheduler.services);
      const notPassing = c.items.filter((i) =>
        i.group !== "incident_response" && i.status !== "pass" && !unconfigured.includes(i.key)
      );
      // This cluster has no replica: the daily lag check has nothing to look at, and says so (never "pass").
      assert.deepEqual(notPassing.map((i) => `${i.key}: ${i.status}: ${i.evidence.join("; ")}`), [
        "lag_checked_today: not_configured: no replicas configured (targets.main.replicas)",
      ]);
      const by = Object.fromEntries(c.items.map((i) => [i.key, i.evidence.join("\n")]));
      assert.match(by.encryption_at_rest, /attested by alice \(U0ALICE\) at .*: LUKS/);
      assert.match(
        by.network_restricted,
        /not checked: not running in Kubernetes\nattested by alice \(U0ALICE\) at .*: security groups/,
      );
      assert.match(
        by.waf_rules,
        /rate-limiting: 100 a minute[\s\S]*ip-restriction allows 10\.0\.0\.0\/8, 192\.168\.0\.0\/16/,
      );
      assert.match(by.slow_queries_reviewed_week, /acknowledged by U0BOB/);
      assert.match(by.tls_enforced, /ssl = on/);
    });

    await t.step("an attestation and an acknowledgement are operators' and go to the audit log", async () => {
      const rows = await deps.audit.rows();
      const attested = rows.filter((r) => r.action === "checklist.attested");
      assert.deepEqual(attested.map((r) => [r.actor, r.details.item, r.details.mechanism]), [
        [USERS.alice, "encryption_at_rest", "LUKS"],
        [USERS.alice, "network_policies", "security groups"],
      ]);
      assert.ok(
        rows.some((r) =>
          r.action === "job.acknowledged" && r.actor === USERS.bob && r.details.job === "slow_query_review"
        ),
      );
      const reply = await tb.command("checklist main");
      const value = JSON.stringify({ v: 1, t: "main", i: "waf_rules", m: "deployed" });
      await (await tb.slack.sendBlockAction(tb.eventsUrl, {
        action_id: JOB_ACTIONS.attest,
        value,
        user_id: USERS.dave,
        channel_id: OPS_CHANNEL,
        message_ts: "1700000000.000200",
      })).body?.cancel();
      await waitFor(
        () =>
          tb.slack.ephemerals.find((e) =>
            e.ephemeral_user === USERS.dave && /is for operators/.test(e.text ?? "")
          ),
        { what: "the refusal to an outsider" },
      );
      assert.equal(reply.status, 200);
      assert.equal((await deps.audit.rows()).filter((r) => r.action === "checklist.attested").length, 2);
    });
  } finally {
    await tb.stop();
    await vault.stop();
    await kong.stop();
    await feed.stop();
  }
});
