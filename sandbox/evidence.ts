/**
 * The sandbox's sources for the checklist items that are read from outside PostgreSQL (issue 19), so that
 * `/bisman checklist` in the console shows each item with where its evidence came from:
 *
 * - a Kubernetes API (the HTTPS stand-in, its own CA made with openssl) holding the shipped `postgres-access`
 *   NetworkPolicy, with the shipped Role for the bot's service account, whose token is in the data folder;
 * - AWS WAF (the WAFV2 stand-in) holding a web ACL with the seed's two rules, signed requests only, the
 *   key in the bot's environment (the SDK's default chain reads it there);
 * - a real `pg_receivewal` streaming the primary's WAL through a slot into the cluster's folder;
 * - Elasticsearch (the search stand-in), fed every two seconds with the lines both servers write to their
 *   log files, as Fluent Bit would;
 * - PostgreSQL's versions feed: the real URL, and the recorded copy when it does not answer (offline).
 *
 * Everything stops with the sandbox; a pg_receivewal left by a killed sandbox is stopped on the next start.
 *
 * @module
 */

import { parseAllDocuments } from "yaml";
import { fileURLToPath } from "node:url";
import type { PersistentCluster } from "../standins/cluster.ts";
import { makeTestCertificates } from "../standins/tls.ts";
import { KubernetesStandIn, type PolicyRule } from "../standins/kubernetes.ts";
import { AwsWafV2StandIn, blob } from "../standins/aws_wafv2.ts";
import { SearchStandIn } from "../standins/search.ts";

const REPO = fileURLToPath(new URL("../", import.meta.url));
/** The variable holding the search user's password (never in the YAML). */
export const ES_PASSWORD_ENV = "BISMAN_SANDBOX_ES_PASSWORD";
const REGION = "eu-central-1";
const SLOT = "sandbox_wal_archive";

/** What the sandbox's config and environment take from here. */
export interface SandboxEvidence {
  /** Keys for the target (network_policy, aws_waf, wal_streaming, central_logging). */
  target: Record<string, unknown>;
  /** Top-level keys (kubernetes, checklist). */
  top: Record<string, unknown>;
  /** Variables for the bot and the CLI (the AWS key, the search password). */
  env: Record<string, string>;
  /** pg_receivewal's pid, kept in sandbox.json so a later start can stop it after a kill. */
  receiveWalPid?: number;
  stop(): Promise<void>;
}

const visibility = (name: string) => ({
  SampledRequestsEnabled: true,
  CloudWatchMetricsEnabled: true,
  MetricName: name,
});

/** The seed's two WAF rules (runbook section 7). */
function seedWafRules() {
  return [
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
      VisibilityConfig: visibility("SQLInjection"),
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
      Action: { Block: {} },
      VisibilityConfig: visibility("RateLimitAuth"),
    },
  ];
}

function postgresIds(): { uid: number; gid: number } | undefined {
  if (Deno.uid() !== 0) return undefined;
  const line = Deno.readTextFileSync("/etc/passwd").split("\n").find((l) => l.startsWith("postgres:"));
  if (!line) return undefined;
  const f = line.split(":");
  return { uid: Number(f[2]), gid: Number(f[3]) };
}

/** Stops the pg_receivewal a killed sandbox left, if `pid` is still that program writing into `dir`. */
export function stopLeftoverReceiveWal(pid: number | undefined, dir: string): boolean {
  if (!pid) return false;
  try {
    const cmd = Deno.readTextFileSync(`/proc/${pid}/cmdline`).split("\0");
    if (!cmd[0]?.endsWith("pg_receivewal") || !cmd.includes(dir)) return false;
    Deno.kill(pid, "SIGTERM");
    return true;
  } catch {
    return false;
  }
}

/** Tails both servers' log files into the search stand-in, as the seed's Fluent Bit does. */
function shipLogs(search: SearchStandIn, dirs: Record<string, string>): () => void {
  const offsets = new Map<string, number>();
  let busy = false;
  const tick = async () => {
    if (busy) return;
    busy = true;
    try {
      for (const [server, dir] of Object.entries(dirs)) {
        const entries: string[] = [];
        for await (const e of Deno.readDir(dir)) if (e.name.endsWith(".log")) entries.push(e.name);
        for (const name of entries) {
          const path = `${dir}/${name}`;
          const text = await Deno.readTextFile(path);
          const from = offsets.get(path) ?? 0;
          const end = text.lastIndexOf("\n") + 1;
          if (end <= from) continue;
          offsets.set(path, end);
          const docs = text.slice(from, end).split("\n").flatMap((line) => {
            const m = /^(\d{4}-\d\d-\d\d) (\d\d:\d\d:\d\d\.\d{3}) UTC \[(\d+)\] (.*)$/.exec(line);
            return m
              ? [{ "@timestamp": `${m[1]}T${m[2]}Z`, hostname: server, pid: Number(m[3]), message: m[4] }]
              : [];
          });
          search.add("postgres-logs", docs);
        }
      }
    } catch {
      // A folder not there yet (the server has not rotated into it): the next tick tries again.
    } finally {
      busy = false;
    }
  };
  void tick();
  const timer = setInterval(() => void tick(), 2000);
  return () => clearInterval(timer);
}

/** Starts the sources; `leftoverPid` is the pg_receivewal a previous (killed) start recorded. */
export async function startSandboxEvidence(opts: {
  cluster: PersistentCluster;
  dataDir: string;
  leftoverPid?: number;
  log: (line: string) => void;
}): Promise<SandboxEvidence> {
  const { cluster, dataDir, log } = opts;
  const stops: (() => Promise<unknown> | unknown)[] = [];
  const stop = async () => {
    for (const s of stops.splice(0).reverse()) await Promise.resolve(s()).catch(() => {});
  };
  try {
    // Kubernetes: the shipped policy and Role, a fresh CA and token each start.
    const k8sDir = `${dataDir}/k8s`;
    await Deno.remove(k8sDir, { recursive: true }).catch(() => {});
    await Deno.mkdir(k8sDir, { recursive: true });
    const certs = await makeTestCertificates(k8sDir);
    const kube = KubernetesStandIn.start({
      cert: await Deno.readTextFile(certs.certFile),
      key: await Deno.readTextFile(certs.keyFile),
    });
    stops.push(() => kube.close());
    const docs = async (f: string) =>
      parseAllDocuments(await Deno.readTextFile(`${REPO}deploy/k8s/${f}`)).map((d) => d.toJS());
    const [role] = await docs("rbac-networkpolicy-reader.yaml");
    const [policy] = await docs("networkpolicy-postgres.yaml");
    const token = `sandbox-sa-${crypto.randomUUID()}`;
    kube.addServiceAccount(token, {
      namespace: "bisman-ops",
      name: "bisman-ops",
      roles: { [role.metadata.namespace]: role.rules as PolicyRule[] },
    });
    kube.apply(policy.metadata.namespace, policy);
    await Deno.writeTextFile(`${k8sDir}/token`, token, { mode: 0o600 });

    // AWS WAF: the seed's rules; a key only this sandbox knows.
    const aws = AwsWafV2StandIn.start({ region: REGION });
    stops.push(() => aws.close());
    const keyId = `AKIASANDBOX${crypto.randomUUID().replaceAll("-", "").slice(0, 9).toUpperCase()}`;
    const secret = crypto.randomUUID();
    aws.addKey(keyId, {
      secretAccessKey: secret,
      arn: "arn:aws:iam::123456789012:user/bisman-ops",
      allow: ["wafv2:ListWebACLs", "wafv2:GetWebACL"],
    });
    aws.putWebAcl("REGIONAL", { Name: "bisman-sandbox", Rules: seedWafRules() });

    // pg_receivewal into the cluster's folder (the postgres user can reach it), through its slot.
    const walDir = `${cluster.dir}/wal-archive`;
    if (stopLeftoverReceiveWal(opts.leftoverPid, walDir)) {
      log("Stopped the pg_receivewal a killed sandbox left running");
    }
    const bin = `${cluster.binDir}/pg_receivewal`;
    const conn = ["-h", "127.0.0.1", "-p", String(cluster.primary.port), "-U", "postgres", "--no-password"];
    await cluster.run(["mkdir", "-p", walDir], { asPostgres: true });
    await cluster.run([bin, ...conn, "-S", SLOT, "--create-slot", "--if-not-exists"], { asPostgres: true });
    const env = Object.fromEntries(Object.entries(Deno.env.toObject()).filter(([k]) => !k.startsWith("PG")));
    const child = new Deno.Command(bin, {
      args: [...conn, "-S", SLOT, "-D", walDir, "--status-interval=5"],
      ...postgresIds(),
      cwd: cluster.dir,
      env,
      clearEnv: true,
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).spawn();
    stops.push(async () => {
      try {
        child.kill("SIGTERM");
      } catch { /* exited */ }
      await child.status;
    });

    // Elasticsearch, fed from both servers' log files.
    const esPassword = crypto.randomUUID();
    const search = SearchStandIn.start({ users: { "fluent-reader": esPassword } });
    stops.push(() => search.close());
    search.add("postgres-logs");
    const logDirs = {
      "sandbox-primary": `${cluster.primary.dataDir}/log`,
      ...(cluster.replica ? { "sandbox-replica1": `${cluster.replica.dataDir}/log` } : {}),
    };
    stops.push(shipLogs(search, logDirs));
    log(
      `Checklist sources: Kubernetes API ${kube.url}, AWS WAF ${aws.url}, Elasticsearch ${search.url}, ` +
        `pg_receivewal into ${walDir}`,
    );

    return {
      target: {
        network_policy: {
          namespace: policy.metadata.namespace,
          pod_labels: policy.spec.podSelector.matchLabels,
          allowed_from: [
            { namespace_labels: { "kubernetes.io/metadata.name": "bisman-app" } },
            { pod_labels: { app: "bisman-backend" } },
            {
              namespace_labels: { "kubernetes.io/metadata.name": "bisman-ops" },
              pod_labels: { "app.kubernetes.io/name": "bisman-ops" },
            },
          ],
        },
        aws_waf: { web_acl: "bisman-sandbox", region: REGION, endpoint: aws.url },
        wal_streaming: { slot: SLOT, directory: walDir },
        central_logging: {
          log_directory: logDirs["sandbox-primary"],
          log_directories: cluster.replica ? { replica1: `${cluster.replica.dataDir}/log` } : {},
          search: {
            url: search.url,
            index: "postgres-logs",
            username: "fluent-reader",
            password_env: ES_PASSWORD_ENV,
            server_values: {
              primary: "sandbox-primary",
              ...(cluster.replica ? { replica1: "sandbox-replica1" } : {}),
            },
          },
        },
      },
      top: {
        kubernetes: { api_url: kube.url, token_file: `${k8sDir}/token`, ca_file: certs.caFile },
        checklist: {
          postgres_versions: { offline_copy: `${REPO}tests/fixtures/postgresql_versions.json` },
        },
      },
      env: {
        AWS_ACCESS_KEY_ID: keyId,
        AWS_SECRET_ACCESS_KEY: secret,
        // The sandbox's WAF is the stand-in: no instance metadata, no developer's ~/.aws.
        AWS_EC2_METADATA_DISABLED: "true",
        AWS_CONFIG_FILE: `${k8sDir}/no-aws-config`,
        AWS_SHARED_CREDENTIALS_FILE: `${k8sDir}/no-aws-credentials`,
        [ES_PASSWORD_ENV]: esPassword,
      },
      receiveWalPid: child.pid,
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}
