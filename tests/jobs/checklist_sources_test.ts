/**
 * The checklist and the digest, end to end, with every source of issue 19 configured: the Kubernetes API
 * (HTTPS stand-in, the shipped Role), AWS WAF (WAFV2 stand-in through the SDK), a real pg_receivewal, the
 * server's real log files shipped to an Elasticsearch stand-in, and the versions feed. Each source good, then
 * bad, then unreachable; the other items and sections are still evaluated.
 */

import assert from "node:assert/strict";
import { parseAllDocuments } from "yaml";
import { startCluster } from "../../standins/cluster.ts";
import { startTestBot, testConfig } from "../support/bot.ts";
import { waitFor } from "../../standins/wait.ts";
import { makeTestCertificates } from "../../standins/tls.ts";
import { startReceiveWal } from "../support/pg_receivewal.ts";
import { KubernetesStandIn, type PolicyRule } from "../../standins/kubernetes.ts";
import { AwsWafV2StandIn, blob } from "../../standins/aws_wafv2.ts";
import { SearchStandIn } from "../../standins/search.ts";
import { serve } from "../../standins/_serve.ts";
import { type Checklist, evaluateChecklist } from "../../jobs/checklist.ts";
import { buildDigest, type Digest } from "../../jobs/digest.ts";
import { forgetVersionsFeed } from "../../ops/patch_level.ts";

const root = new URL("../../", import.meta.url);
const recordedFeed = JSON.parse(
  await Deno.readTextFile(new URL("tests/fixtures/postgresql_versions.json", root)),
) as Record<string, unknown>[];
const SECRET = `aws-secret-${crypto.randomUUID()}`;
const ES_PASSWORD = `es-pw-${crypto.randomUUID()}`;
const visibility = { SampledRequestsEnabled: true, CloudWatchMetricsEnabled: true, MetricName: "m" };
const seedWafRules = (rateAction = "Block") => [
  {
    Name: "SQLInjection",
    Priority: 0,
    Statement: {
      SqliMatchStatement: {
        FieldToMatch: { Body: {} },
        TextTransformations: [{ Priority: 0, Type: "URL_DECODE" }],
      },
    },
    Action: { Block: {} },
    VisibilityConfig: visibility,
  },
  {
    Name: "RateLimitAuth",
    Priority: 1,
    Statement: {
      RateBasedStatement: {
        Limit: 100,
        AggregateKeyType: "IP",
        ScopeDownStatement: {
          ByteMatchStatement: {
            FieldToMatch: { UriPath: {} },
            PositionalConstraint: "STARTS_WITH",
            SearchString: blob("/api/auth"),
            TextTransformations: [{ Priority: 0, Type: "NONE" }],
          },
        },
      },
    },
    Action: { [rateAction]: {} },
    VisibilityConfig: visibility,
  },
];

Deno.test("checklist and digest read each of the seed's remaining items from its source: good, bad, unreachable", async (t) => {
  const logDir = `/tmp/bisman-pglog-${crypto.randomUUID().slice(0, 8)}`;
  await using cluster = await startCluster({
    name: "checklist-sources",
    conf: { logging_collector: "on", log_directory: logDir, log_filename: "postgresql-%Y-%m-%d.log" },
  });
  const versionNum = Number((await cluster.primary.psql("show server_version_num")).trim());
  const [major, minor] = [String(Math.floor(versionNum / 10000)), versionNum % 10000];
  // The versions feed: the recorded copy, with the server's major as the test sets it.
  let feedEntry: Record<string, unknown> = {
    major,
    latestMinor: String(minor),
    eolDate: new Date(Date.now() + 730 * 86_400_000).toISOString().slice(0, 10),
  };
  let feedStatus = 200;
  const feed = serve(() =>
    feedStatus === 200
      ? Response.json(recordedFeed.map((e) => e.major === major ? { ...e, ...feedEntry } : e))
      : new Response("unavailable", { status: feedStatus })
  );
  // Kubernetes: the shipped Role for the bot's service account, the shipped postgres-access policy.
  const certs = await makeTestCertificates();
  const kube = KubernetesStandIn.start({
    cert: await Deno.readTextFile(certs.certFile),
    key: await Deno.readTextFile(certs.keyFile),
  });
  const docs = async (f: string) =>
    parseAllDocuments(await Deno.readTextFile(new URL(`deploy/k8s/${f}`, root))).map((d) => d.toJS());
  const [role] = await docs("rbac-networkpolicy-reader.yaml");
  const [shipped] = await docs("networkpolicy-postgres.yaml");
  const saToken = `sa-${crypto.randomUUID()}`;
  kube.addServiceAccount(saToken, {
    namespace: "bisman-ops",
    name: "bisman-ops",
    roles: { [role.metadata.namespace]: role.rules as PolicyRule[] },
  });
  kube.apply("bisman-db", shipped);
  const saDir = await Deno.makeTempDir({ prefix: "bisman-sa-" });
  await Deno.writeTextFile(`${saDir}/token`, saToken);
  // AWS WAF: the seed's two rules; credentials from the SDK's default chain (the environment).
  const aws = AwsWafV2StandIn.start({ region: "eu-west-1" });
  aws.addKey("AKIACHECKLISTTEST001", {
    secretAccessKey: SECRET,
    arn: "arn:aws:iam::123456789012:user/bisman-ops",
    allow: ["wafv2:ListWebACLs", "wafv2:GetWebACL"],
  });
  aws.putWebAcl("REGIONAL", { Name: "bisman-prod", Rules: seedWafRules() });
  for (
    const [k, v] of Object.entries({
      AWS_ACCESS_KEY_ID: "AKIACHECKLISTTEST001",
      AWS_SECRET_ACCESS_KEY: SECRET,
      AWS_EC2_METADATA_DISABLED: "true",
      AWS_CONFIG_FILE: "/nonexistent/aws-config",
      AWS_SHARED_CREDENTIALS_FILE: "/nonexistent/aws-credentials",
      BISMAN_TEST_ES_PASSWORD: ES_PASSWORD,
    })
  ) Deno.env.set(k, v);
  // Elasticsearch, fed with the server's real log lines.
  const es = SearchStandIn.start({ users: { "fluent-reader": ES_PASSWORD } });
  const ship = async () => {
    const lines: Record<string, unknown>[] = [];
    for await (const e of Deno.readDir(logDir)) {
      for (const line of (await Deno.readTextFile(`${logDir}/${e.name}`)).split("\n")) {
        const m = /^(\d{4}-\d\d-\d\d) (\d\d:\d\d:\d\d\.\d{3}) UTC (.*)$/.exec(line);
        if (m) lines.push({ "@timestamp": `${m[1]}T${m[2]}Z`, hostname: "127.0.0.1", message: m[3] });
      }
    }
    es.deleteIndex("postgres-logs");
    es.add("postgres-logs", lines);
    return lines.length;
  };
  // pg_receivewal, with a directory that reaches back 8 days.
  const rw = await startReceiveWal(cluster, { slot: "wal_archive", statusInterval: 1 });
  await cluster.primary.psql("select pg_switch_wal(); create table t (x int); select pg_switch_wal();");
  const tb = await startTestBot(cluster, {
    config: testConfig(cluster, (doc) => {
      doc.kubernetes = { api_url: kube.url, token_file: `${saDir}/token`, ca_file: certs.caFile };
      doc.checklist = { postgres_versions: { url: `${feed.url}/versions.json` } };
      Object.assign(doc.targets.main, {
        network_policy: {
          namespace: "bisman-db",
          pod_labels: { app: "postgres" },
          allowed_from: [
            { namespace_labels: { "kubernetes.io/metadata.name": "bisman-app" } },
            { pod_labels: { app: "bisman-backend" } },
            {
              namespace_labels: { "kubernetes.io/metadata.name": "bisman-ops" },
              pod_labels: { "app.kubernetes.io/name": "bisman-ops" },
            },
          ],
        },
        aws_waf: { web_acl: "bisman-prod", region: "eu-west-1", endpoint: aws.url },
        wal_streaming: { slot: "wal_archive", directory: rw.dir },
        central_logging: {
          log_directory: logDir,
          search: {
            url: es.url,
            index: "postgres-logs",
            username: "fluent-reader",
            password_env: "BISMAN_TEST_ES_PASSWORD",
          },
        },
      });
      doc.alerts = { lag_check: { enabled: false } };
    }),
  });
  const deps = tb.bot.deps;
  const checklist = async () => {
    forgetVersionsFeed();
    const c = await evaluateChecklist(deps, "main", tb.bot.scheduler.services);
    return Object.fromEntries(c.items.map((i) => [i.key, i])) as Record<string, Checklist["items"][number]>;
  };
  const digest = async () => {
    forgetVersionsFeed();
    const d = await buildDigest(deps, { targets: ["main"] });
    return Object.fromEntries(d.targets[0].sections.map((s) => [s.key, s.result])) as Record<
      string,
      Digest["targets"][number]["sections"][number]["result"]
    >;
  };
  const KEYS = ["network_policies", "waf_rules", "wal_streaming", "central_logging", "patch_level"];
  try {
    await t.step("good: each item passes with the evidence its source gave", async () => {
      const files = await waitFor(async () => {
        const names: string[] = [];
        for await (const e of Deno.readDir(rw.dir)) names.push(e.name);
        return names.filter((n) => !n.endsWith(".partial")).length >= 1 && names.sort();
      }, { what: "a complete WAL segment" });
      const eightDaysAgo = new Date(Date.now() - 8 * 86_400_000);
      await Deno.utime(`${rw.dir}/${files[0]}`, eightDaysAgo, eightDaysAgo);
      await cluster.primary.psql("do $$ begin raise log 'checklist sources test'; end $$");
      await waitFor(async () => await ship() > 0, { what: "the server's log lines" });
      const c = await waitFor(async () => {
        const c = await checklist();
        return c.wal_streaming.status === "pass" && c;
      }, { what: "WAL streaming to pass", timeoutMs: 15_000 });
      for (const k of ["waf_rules", "wal_streaming", "central_logging", "security_patches"]) {
        assert.equal(c[k].status, "pass", `${k}: ${c[k].evidence.join("\n")}`);
      }
      const ev = (k: string) => c[k].evidence.join("\n");
      assert.match(
        ev("network_restricted"),
        new RegExp(
          `Kubernetes API ${kube.url}: NetworkPolicies in bisman-db:\\npostgres-access: admits port 5432 of pods app=postgres only from`,
        ),
      );
      assert.match(
        ev("waf_rules"),
        /^AWS WAF web ACL bisman-prod \(REGIONAL, eu-west-1\), read with WAFV2 GetWebACL:\nSQL injection rule: rule "SQLInjection"/,
      );
      assert.match(ev("wal_streaming"), /stream|slot: streams through slot wal_archive is active/);
      assert.match(
        ev("central_logging"),
        /primary: \d+ line\(s\) with hostname "127\.0\.0\.1" in postgres-logs in the last 15 min/,
      );
      assert.match(
        ev("security_patches"),
        new RegExp(`primary: runs ${major}\\.${minor}, the newest ${major}\\.x release`),
      );
      const d = await digest();
      for (const k of KEYS) {
        const r = d[k];
        assert.ok(r.state === "checked" && r.status === "ok", `${k}: ${JSON.stringify(r)}`);
      }
      // /bisman checklist shows them, each with its source.
      const before = tb.slack.responses.length;
      await tb.command("checklist main");
      const reply = await waitFor(
        () =>
          tb.slack.responses.slice(before).map((r) => r.body).find((b) =>
            /^Checklist main/.test(String(b.text))
          ),
        { timeoutMs: 30_000, what: "the checklist reply" },
      );
      const text = JSON.stringify(reply.blocks);
      assert.match(
        text,
        /:white_check_mark: pass \*WAL streaming, continuous, kept 7 days \(pg_receivewal\)\*/,
      );
      assert.match(
        text,
        /:white_check_mark: pass \*Centralized logging \(server logs reach Elasticsearch\)\*/,
      );
      assert.match(text, /AWS WAF web ACL bisman-prod/);
      assert.ok((reply.blocks as unknown[]).length <= 50);
    });

    await t.step("bad: each item names what is wrong, and the digest shows it", async () => {
      kube.apply("bisman-db", {
        metadata: { name: "debug-access" },
        spec: {
          podSelector: { matchLabels: { app: "postgres" } },
          ingress: [{ from: [{ ipBlock: { cidr: "0.0.0.0/0" } }] }],
        },
      });
      aws.putWebAcl("REGIONAL", { Name: "bisman-prod", Rules: seedWafRules("Count") });
      await rw.stop();
      es.deleteIndex("postgres-logs");
      feedEntry = { ...feedEntry, latestMinor: String(minor + 1) };
      const c = await checklist();
      const ev = (k: string) => c[k].evidence.join("\n");
      assert.equal(c.network_restricted.status, "fail");
      assert.match(
        ev("network_restricted"),
        /critical: debug-access: debug-access ingress rule 1 admits ipBlock 0\.0\.0\.0\/0 on port 5432 \(and every port\): not one of the allowed sources/,
      );
      assert.equal(c.waf_rules.status, "fail");
      assert.match(ev("waf_rules"), /critical: auth rate limit: .*its action is Count, not Block/);
      assert.equal(c.wal_streaming.status, "fail");
      assert.match(
        ev("wal_streaming"),
        /critical: stream: no client with application_name pg_receivewal streams from the primary/,
      );
      assert.equal(c.central_logging.status, "fail");
      assert.match(ev("central_logging"), /critical: primary: the index postgres-logs does not exist/);
      assert.equal(c.security_patches.status, "warning");
      assert.match(
        ev("security_patches"),
        new RegExp(`warning: primary: runs ${major}\\.${minor}; ${major}\\.${minor + 1} is the newest`),
      );
      const d = await digest();
      for (
        const [k, status] of [
          ["network_policies", "critical"],
          ["waf_rules", "critical"],
          ["wal_streaming", "critical"],
          ["central_logging", "critical"],
          ["patch_level", "warning"],
        ]
      ) {
        const r = d[k];
        assert.ok(r.state === "checked" && r.status === status, `${k}: ${JSON.stringify(r)}`);
      }
    });

    await t.step(
      "unreachable: each says could not check, and every other item is still evaluated",
      async () => {
        await kube.close();
        await aws.close();
        await es.close();
        feedStatus = 503;
        const c = await checklist();
        const ev = (k: string) => c[k].evidence.join("\n");
        assert.match(
          ev("network_restricted"),
          /could not check: the Kubernetes API https:\/\/127\.0\.0\.1:\d+ does not answer/,
        );
        assert.equal(c.waf_rules.status, "unknown");
        assert.match(
          ev("waf_rules"),
          /could not check: AWS WAF \(eu-west-1, http:\/\/127\.0\.0\.1:\d+\) does not answer/,
        );
        assert.match(
          ev("central_logging"),
          /could not check: primary: lines with hostname "127\.0\.0\.1" in postgres-logs: .* does not answer/,
        );
        assert.equal(c.security_patches.status, "unknown");
        assert.match(
          ev("security_patches"),
          /could not check: http:\/\/127\.0\.0\.1:\d+\/versions\.json answered HTTP 503/,
        );
        assert.equal(c.restore_tested_month.status, "fail", "the rest is still judged");
        assert.equal(Object.keys(c).length, 20);
        const d = await digest();
        for (const k of ["network_policies", "waf_rules", "patch_level"]) {
          assert.equal(d[k].state, "failed", `${k}: ${JSON.stringify(d[k])}`);
        }
        assert.equal(d.connections.state, "checked");
        const all = JSON.stringify({ c, d }) + tb.logs.join("\n");
        for (const secret of [SECRET, ES_PASSWORD, saToken]) {
          assert.ok(!all.includes(secret), "no secret shown or logged");
        }
      },
    );
  } finally {
    await tb.stop();
    await rw.stop();
    await kube.close();
    await aws.close();
    await es.close();
    await feed.close();
    for (const k of ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "BISMAN_TEST_ES_PASSWORD"]) {
      Deno.env.delete(k);
    }
    await Deno.remove(saDir, { recursive: true });
    await Deno.remove(certs.dir, { recursive: true });
    await Deno.remove(logDir, { recursive: true }).catch(() => {});
  }
});
