/**
 * "WAF rules deployed" (runbook section 7), read from AWS WAF: the configured web ACL is found by name with
 * `ListWebACLs` (GetWebACL needs its Id) and read with `GetWebACL`, through the official WAFV2 client
 * (`@aws-sdk/client-wafv2`) with credentials from the SDK's default chain (environment, shared config, web
 * identity: IRSA in Kubernetes, container or instance role); the environment link reads the environment the
 * process was given (the CLI's `--env-file` too). The IAM policy needs only `wafv2:ListWebACLs` and
 * `wafv2:GetWebACL`.
 *
 * The seed's two rules are found by their statements, not their names
 * (https://docs.aws.amazon.com/waf/latest/APIReference/API_Statement.html):
 *
 * - SQL injection: a rule that blocks on a `SqliMatchStatement` (alone or inside an `OrStatement`) whose
 *   `FieldToMatch` is `Body` and whose `TextTransformations` include `URL_DECODE` (or `URL_DECODE_UNI`);
 * - auth rate limit: a rule that blocks on a `RateBasedStatement` aggregating per IP (`IP`, or
 *   `FORWARDED_IP` behind a proxy) at or below `rate_limit` requests per `rate_window_seconds` (the limit is
 *   counted over `EvaluationWindowSec`, 300 s by default), scoped down by a `ByteMatchStatement` on `UriPath`
 *   with `STARTS_WITH` a prefix of `auth_path`.
 *
 * A missing rule is critical, a weaker one (counting instead of blocking is as good as none) names what is
 * weaker. Rules inside rule groups are not opened; a managed SQL-injection group is mentioned, not trusted.
 * The AWS credentials are registered as secrets and never appear in a report.
 *
 * @module
 */

// Types only at load: the SDK (about 17 MiB resident once loaded) is imported where a target configures
// aws_waf, so a bot without AWS WAF never holds it (bench/load.ts measures the bot's resident memory).
import type { Rule, Statement, WebACL } from "@aws-sdk/client-wafv2";
import type { AwsWafConfig } from "../core/config_evidence.ts";
import { OpsError } from "../core/errors.ts";
import type { OpDeps } from "./types.ts";
import { type EvidenceFinding, type EvidenceReport, failureText, notConfigured } from "./_evidence.ts";

/** The action a rule takes, in words. */
function actionOf(r: Rule): string {
  const a = r.Action ?? {};
  return a.Block
    ? "Block"
    : a.Count
    ? "Count"
    : a.Allow
    ? "Allow"
    : a.Captcha
    ? "Captcha"
    : a.Challenge
    ? "Challenge"
    : "no action";
}

function ruleName(r: Rule): string {
  return `rule "${r.Name}" (priority ${r.Priority})`;
}

/** SqliMatchStatements on the body of a statement, looking through OrStatements. */
function sqliOnBody(s: Statement | undefined): NonNullable<Statement["SqliMatchStatement"]>[] {
  if (!s) return [];
  if (s.SqliMatchStatement?.FieldToMatch?.Body) return [s.SqliMatchStatement];
  return (s.OrStatement?.Statements ?? []).flatMap(sqliOnBody);
}

/** Judges the SQL-injection rule. */
function judgeSqli(rules: Rule[]): EvidenceFinding {
  const check = "SQL injection rule";
  const candidates = rules.flatMap((r) => sqliOnBody(r.Statement).map((s) => ({ r, s })));
  const judged = candidates.map(({ r, s }) => {
    const types = (s.TextTransformations ?? []).map((t) => t.Type);
    const problems: { severity: "warning" | "critical"; text: string }[] = [];
    if (!types.some((t) => t === "URL_DECODE" || t === "URL_DECODE_UNI")) {
      problems.push({
        severity: "warning",
        text: `has no URL_DECODE transformation (${types.join(", ") || "none"}): URL-encoded injections pass`,
      });
    }
    const action = actionOf(r);
    if (action !== "Block") {
      problems.push({ severity: "critical", text: `its action is ${action}, not Block` });
    }
    return { r, problems, types };
  }).sort((a, b) => a.problems.length - b.problems.length);
  const best = judged[0];
  if (best && !best.problems.length) {
    return {
      severity: "ok",
      check,
      reason: `${ruleName(best.r)}: SqliMatchStatement on the body with ${best.types.join(", ")}, Block`,
    };
  }
  if (best) {
    return {
      severity: best.problems.some((p) => p.severity === "critical") ? "critical" : "warning",
      check,
      reason: `${ruleName(best.r)} matches SQL injection in the body but ${
        best.problems.map((p) => p.text).join("; ")
      }`,
    };
  }
  const managed = rules.find((r) =>
    r.Statement?.ManagedRuleGroupStatement?.Name === "AWSManagedRulesSQLiRuleSet"
  );
  return {
    severity: "critical",
    check,
    reason: "no rule blocks on a SqliMatchStatement on the body" +
      (managed
        ? ` (${
          ruleName(managed)
        } uses the managed group AWSManagedRulesSQLiRuleSet, whose rules are not read here)`
        : ""),
  };
}

/** Judges the rate-based rule of the auth path. */
function judgeRate(rules: Rule[], cfg: AwsWafConfig): EvidenceFinding {
  const check = "auth rate limit";
  const seed = `${cfg.rate_limit} per ${cfg.rate_window_seconds} s per IP on ${cfg.auth_path}`;
  const decoder = new TextDecoder();
  const judged = rules.filter((r) => r.Statement?.RateBasedStatement).map((r) => {
    const s = r.Statement!.RateBasedStatement!;
    const window = s.EvaluationWindowSec ?? 300;
    const problems: { severity: "warning" | "critical"; text: string }[] = [];
    const bm = s.ScopeDownStatement?.ByteMatchStatement;
    const search = bm?.SearchString ? decoder.decode(bm.SearchString) : undefined;
    let scope: string;
    if (!s.ScopeDownStatement) {
      scope = "every path";
      problems.push({ severity: "warning", text: `it counts every path, not only ${cfg.auth_path}` });
    } else if (
      bm?.FieldToMatch?.UriPath && bm.PositionalConstraint === "STARTS_WITH" && search !== undefined &&
      cfg.auth_path.startsWith(search)
    ) {
      scope = `paths starting with ${search}`;
    } else {
      // A scope that leaves the auth path out does not limit it at all.
      return undefined;
    }
    if (s.AggregateKeyType !== "IP" && s.AggregateKeyType !== "FORWARDED_IP") {
      problems.push({ severity: "warning", text: `it aggregates by ${s.AggregateKeyType}, not per IP` });
    }
    if (s.Limit! * cfg.rate_window_seconds > cfg.rate_limit * window) {
      problems.push({
        severity: "warning",
        text:
          `it allows ${s.Limit} per ${window} s, more than ${cfg.rate_limit} per ${cfg.rate_window_seconds} s`,
      });
    }
    const action = actionOf(r);
    if (action !== "Block") {
      problems.push({ severity: "critical", text: `its action is ${action}, not Block` });
    }
    const per = s.AggregateKeyType === "FORWARDED_IP" ? "per forwarded IP" : `per ${s.AggregateKeyType}`;
    return { r, problems, text: `at most ${s.Limit} requests per ${window} s ${per} on ${scope}` };
  }).filter((x) => x !== undefined).sort((a, b) => a.problems.length - b.problems.length);
  const best = judged[0];
  if (best && !best.problems.length) {
    return { severity: "ok", check, reason: `${ruleName(best.r)}: ${best.text}, Block (the seed: ${seed})` };
  }
  if (best) {
    return {
      severity: best.problems.some((p) => p.severity === "critical") ? "critical" : "warning",
      check,
      reason: `${ruleName(best.r)} (${best.text}): ${
        best.problems.map((p) => p.text).join("; ")
      } (the seed: ${seed})`,
    };
  }
  return {
    severity: "critical",
    check,
    reason: `no rate-based rule limits ${cfg.auth_path} (the seed: ${seed}, scoped by a ByteMatchStatement ` +
      "STARTS_WITH on UriPath)",
  };
}

/** Judges a web ACL's rules against the seed's two. */
export function judgeWebAcl(acl: WebACL, cfg: AwsWafConfig): EvidenceFinding[] {
  const rules = acl.Rules ?? [];
  const out = [judgeSqli(rules), judgeRate(rules, cfg)];
  const groups = rules.filter((r) => r.Statement?.RuleGroupReferenceStatement);
  if (groups.length && out.some((f) => f.severity !== "ok")) {
    out.push({
      severity: "warning",
      check: "rule groups",
      reason: `${groups.map(ruleName).join(", ")} reference rule groups, whose rules are not read here`,
    });
  }
  return out;
}

function awsFailure(err: unknown, cfg: AwsWafConfig): OpsError {
  const e = err as { name?: string; message?: string; $metadata?: { httpStatusCode?: number } };
  const where = `AWS WAF (${cfg.region}${cfg.endpoint ? `, ${cfg.endpoint}` : ""})`;
  if (e?.name === "CredentialsProviderError") {
    return new OpsError(
      "not_configured",
      "no AWS credentials in the SDK's default chain (environment, shared config, web identity/IRSA, " +
        `container or instance role): ${e.message?.split("\n")[0]}`,
    );
  }
  if (e?.$metadata?.httpStatusCode) {
    return new OpsError(
      "unreachable",
      `${where} answered ${e.$metadata.httpStatusCode} ${e.name}: ${
        (e.message ?? "").split("\n")[0].slice(0, 400)
      }`,
    );
  }
  return new OpsError("unreachable", `${where} does not answer: ${failureText(err)}`);
}

/**
 * The AWS WAF evidence of `target`.
 * @throws {NotConfigured} for an unknown target
 */
export async function readWafRules(target: string, deps: OpDeps): Promise<EvidenceReport> {
  deps.targets.members(target);
  const cfg = deps.config.targets[target].aws_waf;
  if (!cfg) return notConfigured(target, "AWS WAF", "aws_waf");
  const source = `AWS WAF web ACL ${cfg.web_acl} (${cfg.scope}, ${cfg.region}), read with WAFV2 GetWebACL`;
  // The default chain's first link is the environment: read it where this process got its environment (the
  // CLI's --env-file too); without keys there, the SDK walks the rest of its chain (IRSA, roles, files).
  const keyId = deps.targets.variable("AWS_ACCESS_KEY_ID");
  const secret = deps.targets.variable("AWS_SECRET_ACCESS_KEY");
  const { WAFV2Client, ListWebACLsCommand, GetWebACLCommand } = await import("@aws-sdk/client-wafv2");
  const client = new WAFV2Client({
    region: cfg.region,
    ...(cfg.endpoint ? { endpoint: cfg.endpoint } : {}),
    ...(keyId && secret
      ? {
        credentials: {
          accessKeyId: keyId,
          secretAccessKey: secret,
          sessionToken: deps.targets.variable("AWS_SESSION_TOKEN"),
        },
      }
      : {}),
    maxAttempts: 2,
  });
  try {
    try {
      const creds = await client.config.credentials();
      deps.secrets.add(creds.secretAccessKey);
      deps.secrets.add(creds.sessionToken);
    } catch (err) {
      throw awsFailure(err, cfg);
    }
    let id: string | undefined;
    const seen: string[] = [];
    try {
      let marker: string | undefined;
      do {
        const page = await client.send(
          new ListWebACLsCommand({ Scope: cfg.scope, Limit: 100, NextMarker: marker }),
        );
        for (const a of page.WebACLs ?? []) {
          seen.push(a.Name ?? "?");
          if (a.Name === cfg.web_acl) id = a.Id;
        }
        marker = page.NextMarker;
      } while (!id && marker);
    } catch (err) {
      throw awsFailure(err, cfg);
    }
    if (!id) {
      return {
        target,
        source,
        findings: [{
          severity: "critical",
          check: "web ACL",
          reason: `there is no ${cfg.scope} web ACL named ${cfg.web_acl} in ${cfg.region}` +
            (seen.length ? ` (there are: ${seen.slice(0, 10).join(", ")})` : " (there are none)"),
        }],
        unchecked: [],
      };
    }
    let acl: WebACL | undefined;
    try {
      acl = (await client.send(new GetWebACLCommand({ Name: cfg.web_acl, Scope: cfg.scope, Id: id }))).WebACL;
    } catch (err) {
      throw awsFailure(err, cfg);
    }
    if (!acl) throw new OpsError("unreachable", "GetWebACL answered without a WebACL");
    return { target, source, findings: judgeWebAcl(acl, cfg), unchecked: [] };
  } catch (err) {
    return { target, source, findings: [], unchecked: [deps.secrets.scrub(failureText(err))] };
  } finally {
    client.destroy();
  }
}
