import assert from "node:assert/strict";
import { ConfigError, loadConfig, parseConfig, policyFor } from "../../core/config.ts";
import { EnvError, readEnv } from "../../core/env.ts";
import { Secrets } from "../../core/log.ts";

const minimal = () => ({
  workspace: { team_id: "T0TEST" },
  slack: { ops_channel: "C0OPS" },
  access: { operators: { users: ["U0ALICE"] }, approvers: { users: ["U0BOB"] } },
  targets: { prod: { primary: { host: "db", user: "bisman_ops", password_env: "PW" } } },
});

function problemsOf(fn: () => unknown): string[] {
  try {
    fn();
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
  assert.fail("expected a ConfigError");
}

Deno.test("loadConfig() accepts bisman.example.yaml as it is", async () => {
  const c = await loadConfig(new URL("../../bisman.example.yaml", import.meta.url).pathname);
  assert.equal(c.slack.ops_channel, "C0OPS");
  assert.ok(c.targets.prod.roles.bisman_app);
  assert.equal(c.targets.prod.credential_max_age_days, 90);
});

Deno.test("parseConfig() names each bad key and what was expected", () => {
  const doc: any = minimal();
  doc.targets.prod.primary.port = "5432";
  doc.access.approvers.users = ["bob"];
  doc.targets.prod.primary.pasword_env = "X";
  const problems = problemsOf(() => parseConfig(doc, "bad.yaml"));
  assert.ok(
    problems.some((p) => p.startsWith("targets.prod.primary.port:") && /number/.test(p)),
    problems.join("\n"),
  );
  assert.ok(
    problems.some((p) => p.startsWith("access.approvers.users.0:") && /Slack user ID/.test(p)),
    problems.join("\n"),
  );
  assert.ok(
    problems.some((p) => p.startsWith("targets.prod.primary:") && /pasword_env/.test(p)),
    problems.join("\n"),
  );
});

Deno.test("parseConfig() refuses a missing section, both secret sources, and an unknown default target", () => {
  const noSlack: any = minimal();
  delete noSlack.slack;
  assert.ok(problemsOf(() => parseConfig(noSlack)).some((p) => p.startsWith("slack:")));
  const both: any = minimal();
  both.targets.prod.primary.vault = "bisman/ops#password";
  assert.ok(problemsOf(() => parseConfig(both)).some((p) => /password_env or vault, not both/.test(p)));
  const badDefault: any = { ...minimal(), default_target: "staging" };
  assert.ok(
    problemsOf(() => parseConfig(badDefault)).some((p) =>
      /default_target: "staging" is not one of targets/.test(p)
    ),
  );
});

Deno.test("loadConfig() reports a file that is missing or not YAML", async () => {
  await assert.rejects(
    loadConfig("/nonexistent/bisman.yaml"),
    (e: ConfigError) => /cannot read the file/.test(e.message),
  );
  const f = await Deno.makeTempFile({ suffix: ".yaml" });
  await Deno.writeTextFile(f, "workspace: [unclosed");
  await assert.rejects(loadConfig(f), (e: ConfigError) => /not valid YAML/.test(e.message));
  await Deno.remove(f);
});

Deno.test("policyFor() resolves action over default over built-ins: 1 approval, 15 minutes, 2 for promote", () => {
  const c = parseConfig({
    ...minimal(),
    policies: { default: { expiry_minutes: 30 }, rotate: { approvals: 2 } },
  });
  assert.deepEqual(
    [policyFor(c, "reset_statements").approvals, policyFor(c, "reset_statements").expiry_minutes],
    [1, 30],
  );
  assert.equal(policyFor(c, "rotate").approvals, 2);
  assert.equal(policyFor(c, "promote").approvals, 2);
  assert.deepEqual(policyFor(c, "rotate").approvers.users, ["U0BOB"]);
});

Deno.test("readEnv() names missing variables and registers secrets", () => {
  const secrets = new Secrets();
  assert.throws(
    () => readEnv({}, secrets),
    (e: EnvError) =>
      e.problems.some((p) => p.startsWith("SLACK_BOT_TOKEN")) &&
      e.problems.some((p) => p.startsWith("DATABASE_URL")) &&
      e.problems.some((p) => p.startsWith("SLACK_SIGNING_SECRET")),
  );
  const env = readEnv({
    SLACK_BOT_TOKEN: "xoxb-secret-token",
    SLACK_APP_TOKEN: "xapp-socket-token",
    DATABASE_URL: "postgres://bot:hunter2pw@db/state",
    BISMAN_CONFIG: "x.yaml",
    PORT: "0",
  }, secrets);
  assert.equal(env.port, 0);
  assert.equal(env.slackApiUrl, "https://slack.com/api/");
  assert.equal(secrets.scrub("token xoxb-secret-token and hunter2pw"), "token [redacted] and [redacted]");
});
