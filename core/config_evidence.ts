/**
 * Config of the checks that read the seed's remaining items from the systems that hold the truth (issue 19):
 * Kubernetes NetworkPolicies, the AWS WAF web ACL, `pg_receivewal` streaming, centralized logging and
 * PostgreSQL's published versions feed. core/config.ts puts them in place; every key is documented in
 * bisman.example.yaml. No secret is ever written here: the search API's password or API key is named by the
 * environment variable that holds it.
 *
 * @module
 */

import { z } from "zod";

const absolutePath = z.string().regex(/^\/[^\0]*$/, "an absolute path");
const envName = z.string().regex(/^[A-Z_][A-Z0-9_]*$/, "an environment variable name");

// Label keys and values as Kubernetes validates them ("Labels and Selectors", Syntax and character set:
// https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#syntax-and-character-set).
const LABEL_KEY =
  /^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/;
const labelValue = z.string().max(63).regex(
  /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/,
  "a Kubernetes label value (63 characters: letters, digits, - _ .)",
);
// Keys are checked here rather than by the record's key schema, so the error names the key and says why.
const labels = z.record(z.string(), labelValue).superRefine((l, ctx) => {
  for (const k of Object.keys(l)) {
    if (k.length > 316 || !LABEL_KEY.test(k)) {
      ctx.addIssue({
        code: "custom",
        path: [k],
        message: "a Kubernetes label key such as app or app.kubernetes.io/name",
      });
    }
  }
});
const namespaceName = z.string().regex(
  /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/,
  "a Kubernetes namespace name (lower-case letters, digits, -)",
);
const cidr = z.string().regex(
  /^(\d{1,3}(\.\d{1,3}){3}\/\d{1,2}|[0-9A-Fa-f:]+\/\d{1,3})$/,
  "a CIDR such as 10.0.1.0/24",
);

/** Where the in-cluster Kubernetes API and the pod's service-account credentials are. */
export const kubernetesSchema = z.strictObject({
  /** Default: https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT, which only a pod has. */
  api_url: z.url({ protocol: /^https?$/ }).optional(),
  token_file: absolutePath.default("/var/run/secrets/kubernetes.io/serviceaccount/token"),
  ca_file: absolutePath.default("/var/run/secrets/kubernetes.io/serviceaccount/ca.crt"),
  timeout_seconds: z.number().min(1).max(60).default(5),
}).prefault({});
export type KubernetesConfig = z.infer<typeof kubernetesSchema>;

/** One source the seed's NetworkPolicy admits to the database pods. */
export const allowedPeerSchema = z.strictObject({
  /** Namespaces carrying these labels (with `pod_labels`: only those pods in them). */
  namespace_labels: labels.optional(),
  /** Pods carrying these labels; without `namespace_labels`, in the database's own namespace. */
  pod_labels: labels.optional(),
  /** An address block (`ipBlock.cidr` with no `except`). */
  ip_block: cidr.optional(),
}).refine((p) => !!(p.namespace_labels || p.pod_labels || p.ip_block), {
  message: "name namespace_labels, pod_labels or ip_block",
}).refine((p) => !(p.ip_block && (p.namespace_labels || p.pod_labels)), {
  message: "ip_block stands alone (Kubernetes allows no selector beside it)",
});
export type AllowedPeer = z.infer<typeof allowedPeerSchema>;

/**
 * The seed's rule for the database pods (runbook section 2, `postgres-access`): ingress on `port` only from
 * `allowed_from`, nothing else. Judged from the NetworkPolicies of `namespace`.
 */
export const networkPolicySchema = z.strictObject({
  namespace: namespaceName,
  /** The database pods' labels, all of them: a policy selects the pods when its podSelector matches these. */
  pod_labels: labels.refine((l) => Object.keys(l).length > 0, "at least one label"),
  port: z.number().int().min(1).max(65535).default(5432),
  /** The port's name in the pods' spec, when policies name it instead of the number. */
  port_name: z.string().regex(/^[a-z0-9]([-a-z0-9]{0,13}[a-z0-9])?$/, "an IANA service name").optional(),
  /** The seed: namespace bisman-app (by the label Kubernetes sets, kubernetes.io/metadata.name) and pods app=bisman-backend. */
  allowed_from: z.array(allowedPeerSchema).min(1).default([
    { namespace_labels: { "kubernetes.io/metadata.name": "bisman-app" } },
    { pod_labels: { app: "bisman-backend" } },
  ]),
});
export type NetworkPolicyConfig = z.infer<typeof networkPolicySchema>;

/** The AWS WAF web ACL in front of the app, and the seed's two rules (runbook section 7). */
export const awsWafSchema = z.strictObject({
  /** The web ACL's name (its Id is looked up with ListWebACLs). */
  web_acl: z.string().regex(/^[\w-]{1,128}$/, "a web ACL name (letters, digits, _ and -)"),
  /** REGIONAL (ALB, API Gateway, ...) or CLOUDFRONT. */
  scope: z.enum(["REGIONAL", "CLOUDFRONT"]).default("REGIONAL"),
  region: z.string().regex(/^[a-z]{2}(-[a-z]+)+-\d$/, "an AWS region such as eu-central-1"),
  /** A different endpoint (a VPC endpoint, a test stand-in); default: the SDK's for the region. */
  endpoint: z.url({ protocol: /^https?$/ }).optional(),
  /** The rate-based rule must be scoped to paths starting with this (the seed: /api/auth). */
  auth_path: z.string().regex(/^\/[^\s]*$/, "a URI path such as /api/auth").default("/api/auth"),
  /** At most this many requests per IP... */
  rate_limit: z.number().int().min(10).max(2_000_000_000).default(100),
  /** ...in this many seconds (AWS's default evaluation window, which the seed's rule does not change). */
  rate_window_seconds: z.union([z.literal(60), z.literal(120), z.literal(300), z.literal(600)]).default(300),
}).refine((w) => w.scope !== "CLOUDFRONT" || w.region === "us-east-1", {
  // https://docs.aws.amazon.com/waf/latest/APIReference/API_ListWebACLs.html (Scope): "To work with
  // CloudFront, you must also specify the Region US East (N. Virginia)".
  message: "CLOUDFRONT web ACLs are read in us-east-1",
  path: ["region"],
});
export type AwsWafConfig = z.infer<typeof awsWafSchema>;

/** The seed's "WAL streaming, continuous, 7 days, pg_receivewal" (runbook section 5). */
export const walStreamingSchema = z.strictObject({
  /** The application_name pg_receivewal connects with (its default is pg_receivewal). */
  application_name: z.string().min(1).max(63).default("pg_receivewal"),
  /** The physical replication slot it streams through (`pg_receivewal -S`). */
  slot: z.string().regex(/^[a-z0-9_]{1,63}$/, "a replication slot name (lower-case letters, digits, _)"),
  /** Its `-D` directory as the bot sees it (a mount); without it only the stream is checked. */
  directory: absolutePath.optional(),
  /** WAL the primary wrote that the receiver has not confirmed writing: warning, critical. */
  lag_bytes_warning: z.number().int().positive().default(64 * 1024 * 1024),
  lag_bytes_critical: z.number().int().positive().default(1024 * 1024 * 1024),
  /** A newest segment that is not the primary's current one and unwritten this long: warning (twice: critical). */
  newest_max_age_minutes: z.number().positive().default(15),
  /** The oldest segment must reach back this far (the seed: 7 days). */
  retention_days: z.number().min(0).default(7),
}).refine((w) => w.lag_bytes_warning <= w.lag_bytes_critical, {
  message: "lag_bytes_warning must not exceed lag_bytes_critical",
  path: ["lag_bytes_warning"],
});
export type WalStreamingConfig = z.infer<typeof walStreamingSchema>;

/** Where an Elasticsearch or OpenSearch cluster receives the server logs (the seed's Fluent Bit output). */
export const logSearchSchema = z.strictObject({
  url: z.url({ protocol: /^https?$/ }),
  /** The seed: postgres-logs. Wildcards (postgres-logs-*) are allowed, as _count allows them. */
  index: z.string().regex(
    /^[a-z0-9*][a-z0-9_.*+-]{0,254}$/,
    "an index name or pattern such as postgres-logs",
  ),
  /** Basic authentication: the user, and the variable holding its password... */
  username: z.string().min(1).optional(),
  password_env: envName.optional(),
  /** ...or an API key (the base64 `id:api_key` value Elasticsearch returns as `encoded`). */
  api_key_env: envName.optional(),
  /** CA of the cluster's certificate, when it is not in the system store. */
  ca_file: absolutePath.optional(),
  /** The field holding each line's time (Fluent Bit's elasticsearch output: @timestamp). */
  time_field: z.string().min(1).default("@timestamp"),
  /** The field naming the server a line came from (a Fluent Bit record_modifier, e.g. `hostname`). */
  server_field: z.string().min(1).default("hostname"),
  /** Its value per member (`primary`, a replica's name); default: the member's configured host. */
  server_values: z.record(z.string().regex(/^[a-z_][a-z0-9_]{0,62}$/), z.string().min(1)).default({}),
  /** Lines must have arrived within this many minutes (the issue: 15). */
  window_minutes: z.number().int().min(1).max(24 * 60).default(15),
  timeout_seconds: z.number().min(1).max(60).default(5),
}).refine((s) => !(s.password_env && s.api_key_env), {
  message: "give password_env (with username) or api_key_env, not both",
  path: ["api_key_env"],
}).refine((s) => !s.password_env || !!s.username, {
  message: "password_env needs username",
  path: ["username"],
});
export type LogSearchConfig = z.infer<typeof logSearchSchema>;

/** The seed's centralized logging (runbook section 4): Fluent Bit tails the server logs into Elasticsearch. */
export const centralLoggingSchema = z.strictObject({
  /** The folder Fluent Bit's tail input reads (the seed: Path /var/log/postgresql/*.log). */
  log_directory: absolutePath.default("/var/log/postgresql"),
  /** Per member (`primary`, a replica's name), where one server's logs live elsewhere. */
  log_directories: z.record(z.string().regex(/^[a-z_][a-z0-9_]{0,62}$/), absolutePath).default({}),
  /** ...and the file names it matches: log_filename must end with this. */
  file_suffix: z.string().regex(/^\.[A-Za-z0-9]{1,10}$/, "a file suffix such as .log").default(".log"),
  /** The log_line_prefix escapes the pipeline's parser reads (Debian's default prefix is "%m [%p] %q%u@%d "). */
  log_line_prefix_fields: z.array(z.string().regex(/^%[a-zA-Z]$/, "a log_line_prefix escape such as %m"))
    .default(["%m", "%p", "%u", "%d"]),
  search: logSearchSchema.optional(),
});
export type CentralLoggingConfig = z.infer<typeof centralLoggingSchema>;

/** PostgreSQL's published versions feed, for "Update security patches promptly". */
export const postgresVersionsSchema = z.strictObject({
  /** An array with one entry per major: major, latestMinor, eolDate, supported (the feed postgresql.org renders). */
  url: z.url({ protocol: /^https?$/ }).default("https://www.postgresql.org/versions.json"),
  /** A copy of the feed on disk, used when the URL does not answer (an air-gapped deployment). */
  offline_copy: absolutePath.optional(),
  /** The feed is read again after this long. */
  cache_hours: z.number().min(0).max(24 * 30).default(24),
  /** A supported major this close to its end of life is a warning. */
  eol_warning_days: z.number().int().min(0).max(3650).default(180),
  timeout_seconds: z.number().min(1).max(60).default(5),
}).prefault({});
export type PostgresVersionsConfig = z.infer<typeof postgresVersionsSchema>;
