import assert from "node:assert/strict";
import { startCluster } from "../../standins/cluster.ts";
import { testConfig } from "../support/bot.ts";
import { testOpDeps } from "../support/op_deps.ts";
import { AwsWafV2StandIn, blob } from "../../standins/aws_wafv2.ts";
import { readWafRules } from "../../ops/waf_rules.ts";
import { evidenceStatus } from "../../ops/_evidence.ts";

const REGION = "eu-central-1";
const KEY_ID = "AKIABISMANTEST000001";
const SECRET = `test-secret-${crypto.randomUUID()}`;

const visibility = (name: string) => ({
  SampledRequestsEnabled: true,
  CloudWatchMetricsEnabled: true,
  MetricName: name,
});

/** The seed's two rules (runbook section 7), as WAFV2's JSON carries them. */
function seedRules(
  over: { sqliTransform?: string; limit?: number; rateAction?: string; search?: string } = {},
) {
  return [
    {
      Name: "SQLInjection",
      Priority: 0,
      Statement: {
        SqliMatchStatement: {
          FieldToMatch: { Body: {} },
          TextTransformations: [{ Priority: 0, Type: over.sqliTransform ?? "URL_DECODE" }],
        },
      },
      Action: { Block: {} },
      VisibilityConfig: visibility("SQLInjection"),
    },
    {
      Name: "RateLimitAuth",
      Priority: 1,
      Statement: {
        RateBasedStatement: {
          Limit: over.limit ?? 100,
          AggregateKeyType: "IP",
          ScopeDownStatement: {
            ByteMatchStatement: {
              FieldToMatch: { UriPath: {} },
              PositionalConstraint: "STARTS_WITH",
              SearchString: blob(over.search ?? "/api/auth"),
              TextTransformations: [{ Priority: 0, Type: "NONE" }],
            },
          },
        },
      },
      Action: { [over.rateAction ?? "Block"]: {} },
      VisibilityConfig: visibility("RateLimitAuth"),
    },
  ];
}

Deno.test("readWafRules() reads the web ACL with the WAFV2 client and judges the seed's two rules by their statements", async (t) => {
  await using cluster = await startCluster({ name: "waf-rules" });
  const aws = AwsWafV2StandIn.start({ region: REGION });
  aws.addKey(KEY_ID, {
    secretAccessKey: SECRET,
    arn: "arn:aws:iam::123456789012:user/bisman-ops",
    allow: ["wafv2:ListWebACLs", "wafv2:GetWebACL"],
  });
  aws.addKey("AKIALISTONLY00000001", {
    secretAccessKey: SECRET,
    arn: "arn:aws:iam::123456789012:user/list-only",
    allow: ["wafv2:ListWebACLs"],
  });
  // Other ACLs first, so the one configured is found by name, not by being the only one.
  aws.putWebAcl("REGIONAL", { Name: "another-app", Rules: [] });
  // The SDK's default credential chain, first link: the environment. Nothing else on this machine answers.
  const setEnv = (keyId: string | undefined, secret: string | undefined) => {
    for (const [k, v] of Object.entries({ AWS_ACCESS_KEY_ID: keyId, AWS_SECRET_ACCESS_KEY: secret })) {
      if (v === undefined) Deno.env.delete(k);
      else Deno.env.set(k, v);
    }
  };
  Deno.env.set("AWS_EC2_METADATA_DISABLED", "true");
  Deno.env.set("AWS_CONFIG_FILE", "/nonexistent/aws-config");
  Deno.env.set("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/aws-credentials");
  setEnv(KEY_ID, SECRET);
  const deps = await testOpDeps(cluster, {
    config: testConfig(cluster, (doc) => {
      doc.targets.main.aws_waf = { web_acl: "bisman-prod", region: REGION, endpoint: aws.url };
    }),
  });
  const read = () => readWafRules("main", deps);
  const text = (r: Awaited<ReturnType<typeof read>>) =>
    r.findings.map((f) => `${f.severity}: ${f.check}: ${f.reason}`);
  try {
    await t.step("good: the SQL-injection rule and the auth rate limit block as the seed says", async () => {
      aws.putWebAcl("REGIONAL", { Name: "bisman-prod", Rules: seedRules() });
      const r = await read();
      assert.equal(evidenceStatus(r), "ok", JSON.stringify(r, null, 1));
      assert.deepEqual(text(r), [
        'ok: SQL injection rule: rule "SQLInjection" (priority 0): SqliMatchStatement on the body with URL_DECODE, Block',
        'ok: auth rate limit: rule "RateLimitAuth" (priority 1): at most 100 requests per 300 s per IP on paths starting ' +
        "with /api/auth, Block (the seed: 100 per 300 s per IP on /api/auth)",
      ]);
      assert.equal(
        r.source,
        "AWS WAF web ACL bisman-prod (REGIONAL, eu-central-1), read with WAFV2 GetWebACL",
      );
      assert.deepEqual(aws.calls.slice(-2).map((c) => [c.operation, c.status, c.accessKeyId]), [
        ["ListWebACLs", 200, KEY_ID],
        ["GetWebACL", 200, KEY_ID],
      ]);
    });

    await t.step(
      "bad: rules found by statement whatever their names; each weaker or missing one is a finding",
      async () => {
        const renamed = seedRules({ sqliTransform: "LOWERCASE", limit: 2000 }).map((r, i) => ({
          ...r,
          Name: `r${i}`,
        }));
        aws.putWebAcl("REGIONAL", { Name: "bisman-prod", Rules: renamed });
        let r = await read();
        assert.deepEqual(text(r), [
          'warning: SQL injection rule: rule "r0" (priority 0) matches SQL injection in the body but has no URL_DECODE ' +
          "transformation (LOWERCASE): URL-encoded injections pass",
          'warning: auth rate limit: rule "r1" (priority 1) (at most 2000 requests per 300 s per IP on paths starting with ' +
          "/api/auth): it allows 2000 per 300 s, more than 100 per 300 s (the seed: 100 per 300 s per IP on /api/auth)",
        ]);
        aws.putWebAcl("REGIONAL", {
          Name: "bisman-prod",
          Rules: seedRules({ rateAction: "Count", search: "/admin" }),
        });
        r = await read();
        assert.equal(evidenceStatus(r), "critical");
        assert.match(text(r)[1], /^critical: auth rate limit: no rate-based rule limits \/api\/auth/);
        aws.putWebAcl("REGIONAL", { Name: "bisman-prod", Rules: seedRules({ rateAction: "Count" }) });
        assert.match(text(await read())[1], /^critical: auth rate limit: .*: its action is Count, not Block/);
        aws.putWebAcl("REGIONAL", { Name: "bisman-prod", Rules: seedRules().slice(1) });
        assert.match(
          text(await read())[0],
          /^critical: SQL injection rule: no rule blocks on a SqliMatchStatement on the body$/,
        );
        aws.deleteWebAcl("bisman-prod");
        r = await read();
        assert.deepEqual(text(r), [
          "critical: web ACL: there is no REGIONAL web ACL named bisman-prod in eu-central-1 (there are: another-app)",
        ]);
        aws.putWebAcl("REGIONAL", { Name: "bisman-prod", Rules: seedRules() });
      },
    );

    await t.step(
      "forbidden: IAM's refusal, a wrong secret, or no credentials at all is could-not-check",
      async () => {
        setEnv("AKIALISTONLY00000001", SECRET);
        let r = await read();
        assert.equal(evidenceStatus(r), "could_not_check");
        assert.deepEqual(r.unchecked, [
          `AWS WAF (eu-central-1, ${aws.url}) answered 400 AccessDeniedException: User: ` +
          "arn:aws:iam::123456789012:user/list-only is not authorized to perform: wafv2:GetWebACL on resource: " +
          "arn:aws:wafv2:eu-central-1:123456789012:* because no identity-based policy allows the wafv2:GetWebACL action",
        ]);
        setEnv(KEY_ID, "not-the-secret");
        r = await read();
        assert.match(
          r.unchecked[0],
          /answered 400 InvalidSignatureException: The request signature we calculated does not match/,
        );
        setEnv(undefined, undefined);
        r = await read();
        assert.match(r.unchecked[0], /^no AWS credentials in the SDK's default chain/);
        setEnv(KEY_ID, SECRET);
      },
    );

    await t.step(
      "unreachable: an endpoint that does not answer is could-not-check; the secret appears nowhere",
      async () => {
        await aws.close();
        const r = await read();
        assert.equal(evidenceStatus(r), "could_not_check");
        assert.match(
          r.unchecked[0],
          new RegExp(`^AWS WAF \\(eu-central-1, ${aws.url.replaceAll(".", "\\.")}\\) does not answer`),
        );
        assert.ok(!JSON.stringify(r).includes(SECRET) && !deps.logs.join("\n").includes(SECRET));
      },
    );

    await t.step("not configured: says which key to set", async () => {
      const r = await readWafRules("main", { ...deps, config: testConfig(cluster) });
      assert.equal(r.notConfigured, "not configured: set targets.main.aws_waf");
    });
  } finally {
    await deps.close();
    await aws.close();
    setEnv(undefined, undefined);
  }
});
