import assert from "node:assert/strict";
import { ConfigError, parseConfig } from "../../core/config.ts";

// deno-lint-ignore no-explicit-any
const minimal = (): any => ({
  workspace: { team_id: "T0TEST" },
  slack: { ops_channel: "C0OPS" },
  access: { operators: { users: ["U0ALICE"] }, approvers: { users: ["U0BOB"] } },
  targets: { prod: { primary: { host: "db", user: "bisman_ops", password_env: "PW" } } },
});

function problemsOf(doc: unknown): string[] {
  try {
    parseConfig(doc, "bad.yaml");
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
  assert.fail("expected a ConfigError");
}

Deno.test("parseConfig() fills the issue-19 checks' defaults from the seed", () => {
  const doc = minimal();
  doc.targets.prod.network_policy = { namespace: "bisman-db", pod_labels: { app: "postgres" } };
  doc.targets.prod.aws_waf = { web_acl: "bisman-prod", region: "eu-central-1" };
  doc.targets.prod.wal_streaming = { slot: "wal_archive" };
  doc.targets.prod.central_logging = {};
  const c = parseConfig(doc);
  const t = c.targets.prod;
  assert.deepEqual(t.network_policy?.allowed_from, [
    { namespace_labels: { "kubernetes.io/metadata.name": "bisman-app" } },
    { pod_labels: { app: "bisman-backend" } },
  ]);
  assert.equal(t.network_policy?.port, 5432);
  assert.deepEqual(
    [t.aws_waf?.scope, t.aws_waf?.auth_path, t.aws_waf?.rate_limit, t.aws_waf?.rate_window_seconds],
    ["REGIONAL", "/api/auth", 100, 300],
  );
  assert.equal(t.wal_streaming?.application_name, "pg_receivewal");
  assert.equal(t.wal_streaming?.retention_days, 7);
  assert.equal(t.central_logging?.log_directory, "/var/log/postgresql");
  assert.equal(c.checklist.postgres_versions.url, "https://www.postgresql.org/versions.json");
  assert.equal(c.checklist.postgres_versions.cache_hours, 24);
  assert.equal(c.kubernetes.token_file, "/var/run/secrets/kubernetes.io/serviceaccount/token");
});

Deno.test("parseConfig() names the key of each bad issue-19 setting", () => {
  const doc = minimal();
  doc.targets.prod.aws_waf = { web_acl: "bisman-prod", scope: "CLOUDFRONT", region: "eu-central-1" };
  doc.targets.prod.network_policy = { namespace: "Bisman_DB", pod_labels: { "-app": "postgres" } };
  doc.targets.prod.wal_streaming = { slot: "wal-archive", lag_bytes_warning: 2e9, lag_bytes_critical: 1e9 };
  doc.targets.prod.central_logging = {
    log_directory: "log",
    search: { url: "https://es:9200", index: "postgres-logs", password_env: "ES_PW" },
  };
  doc.kubernetes = { token_file: "token" };
  doc.checklist = { releases: { "15": { version: "15.14", released: "2025-08-14" } } };
  const problems = problemsOf(doc);
  const expect = (prefix: string, re: RegExp) =>
    assert.ok(problems.some((p) => p.startsWith(prefix) && re.test(p)), `${prefix}\n${problems.join("\n")}`);
  expect("targets.prod.aws_waf.region:", /CLOUDFRONT web ACLs are read in us-east-1/);
  expect("targets.prod.network_policy.namespace:", /namespace name/);
  expect("targets.prod.network_policy.pod_labels.-app:", /label key/);
  expect("targets.prod.wal_streaming.slot:", /replication slot name/);
  expect("targets.prod.central_logging.log_directory:", /absolute path/);
  expect("targets.prod.central_logging.search.username:", /password_env needs username/);
  expect("kubernetes.token_file:", /absolute path/);
  expect("checklist.releases:", /replaced by checklist\.postgres_versions/);
});

Deno.test("parseConfig() refuses a lag warning above its critical, and server_values for a member the target lacks", () => {
  const doc = minimal();
  doc.targets.prod.wal_streaming = { slot: "wal_archive", lag_bytes_warning: 2e9, lag_bytes_critical: 1e9 };
  assert.ok(problemsOf(doc).some((p) => p.startsWith("targets.prod.wal_streaming.lag_bytes_warning:")));
  const other = minimal();
  other.targets.prod.central_logging = {
    search: { url: "https://es:9200", index: "postgres-logs", server_values: { replica9: "db-9" } },
  };
  other.targets.prod.central_logging.log_directories = { replica8: "/var/log/pg" };
  assert.deepEqual(problemsOf(other), [
    "targets.prod.central_logging.search.server_values.replica9: not primary or one of its replicas",
    "targets.prod.central_logging.log_directories.replica8: not primary or one of its replicas",
  ]);
});
