import assert from "node:assert/strict";
import { parseConfig } from "../../core/config.ts";
import { diffConfig } from "../../core/config_reload.ts";

const base = {
  workspace: { team_id: "T0TEST" },
  slack: { ops_channel: "C0OPS" },
  access: { operators: { users: ["U0ALICE"] }, approvers: { users: ["U0BOB"] } },
  targets: { main: { primary: { host: "127.0.0.1", user: "postgres" } } },
};

Deno.test("diffConfig() names each changed key with old and new values and when it takes effect", () => {
  const a = parseConfig(base);
  assert.deepEqual(diffConfig(a, parseConfig(base)), [], "the same file changes nothing");
  const b = parseConfig({
    ...base,
    thresholds: { slow_query_mean_ms: 500 },
    schedules: { digest: { cron: "0 7 * * *" } },
    targets: { main: { primary: { host: "127.0.0.1", user: "postgres", port: 5433 } } },
    access: { ...base.access, operators: { users: ["U0ALICE", "U0CAROL"] } },
  });
  const changes = diffConfig(a, b);
  assert.deepEqual(changes.map((c) => [c.key, c.from, c.to, c.takes]), [
    ["access.operators.users", '["U0ALICE"]', '["U0ALICE","U0CAROL"]', "now"],
    ["schedules.digest", "(absent)", '{"cron":"0 7 * * *"}', "now"],
    ["targets.main.primary.port", "5432", "5433", "reconnect"],
    ["thresholds.slow_query_mean_ms", "1000", "500", "now"],
  ]);
});

Deno.test("diffConfig() cuts long values short and treats a new target as a reconnect", () => {
  const a = parseConfig(base);
  const b = parseConfig({
    ...base,
    targets: { ...base.targets, other: { primary: { host: "db2", user: "postgres" } } },
    alerts: { runbook_urls: { default: `https://wiki.example/${"x".repeat(200)}` } },
  });
  const changes = diffConfig(a, b);
  const url = changes.find((c) => c.key === "alerts.runbook_urls.default")!;
  assert.equal(url.to.length, 80);
  assert.ok(url.to.endsWith("…"));
  assert.equal(changes.find((c) => c.key === "targets.other")!.takes, "reconnect");
});
