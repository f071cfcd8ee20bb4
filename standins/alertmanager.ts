/**
 * A real Alertmanager for tests: Debian's prometheus-alertmanager (0.25) on a free loopback port, with its
 * storage in a temp folder, no cluster gossip, and one webhook receiver (bearer token) pointing at the bot.
 *
 * ```ts
 * const am = await startAlertmanager({ webhookUrl: `${bot.url}/alerts`, token });
 * try {
 *   await am.push({ alertname: "HighReplicationLag", instance: "db1:5432" });   // amtool alert add
 *   await am.resolve({ alertname: "HighReplicationLag", instance: "db1:5432" }); // v2 API, endsAt in the past
 * } finally {
 *   await am.stop();
 * }
 * ```
 */

import { freePort } from "./ports.ts";
import { waitFor } from "./wait.ts";

export const ALERTMANAGER_BIN = "/usr/bin/prometheus-alertmanager";
export const AMTOOL_BIN = "/usr/bin/amtool";

export interface AlertmanagerOptions {
  /** The bot's receiver, e.g. http://127.0.0.1:1234/alerts. */
  webhookUrl: string;
  /** Sent as `Authorization: Bearer <token>`. */
  token: string;
  groupBy?: string[];
  /** Go durations, e.g. "1s". */
  groupWait?: string;
  groupInterval?: string;
  repeatInterval?: string;
  /** Listen here (a port the bot's config already names as alerts.alertmanager_url); default a free one. */
  port?: number;
}

export interface RunningAlertmanager {
  url: string;
  port: number;
  dir: string;
  /** Adds (or re-adds) a firing alert with `amtool alert add`. */
  push(labels: Record<string, string>, annotations?: Record<string, string>): Promise<void>;
  /** Posts alerts to the v2 API (`POST /api/v2/alerts`). */
  postAlerts(
    alerts: {
      labels: Record<string, string>;
      annotations?: Record<string, string>;
      startsAt?: string;
      endsAt?: string;
    }[],
  ): Promise<void>;
  /** Resolves an alert: posts it again with endsAt in the past. */
  resolve(labels: Record<string, string>, annotations?: Record<string, string>): Promise<void>;
  /** Alerts Alertmanager holds (v2 API). */
  alerts(): Promise<{ labels: Record<string, string>; fingerprint: string; status: { state: string } }[]>;
  /** Runs amtool against this Alertmanager (`--alertmanager.url` is added); returns stdout, throws on failure. */
  amtool(...args: string[]): Promise<string>;
  /** Alertmanager's own log so far. */
  log(): Promise<string>;
  stop(): Promise<void>;
}

/** Alertmanager and amtool get a PATH and nothing else of this process's environment (the bot's secrets). */
const NO_ENV = { env: { PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin" }, clearEnv: true } as const;

function yamlString(s: string): string {
  return JSON.stringify(s); // JSON strings are valid YAML double-quoted scalars
}

/** Starts Alertmanager and waits until `/-/ready` answers. */
export async function startAlertmanager(opts: AlertmanagerOptions): Promise<RunningAlertmanager> {
  const dir = await Deno.makeTempDir({ prefix: "bisman-am-" });
  const port = opts.port ?? await freePort();
  const url = `http://127.0.0.1:${port}`;
  const config = [
    "route:",
    "  receiver: bot",
    `  group_by: [${(opts.groupBy ?? ["alertname"]).map(yamlString).join(", ")}]`,
    `  group_wait: ${opts.groupWait ?? "1s"}`,
    `  group_interval: ${opts.groupInterval ?? "1s"}`,
    `  repeat_interval: ${opts.repeatInterval ?? "1h"}`,
    "receivers:",
    "  - name: bot",
    "    webhook_configs:",
    `      - url: ${yamlString(opts.webhookUrl)}`,
    "        send_resolved: true",
    "        max_alerts: 0",
    "        http_config:",
    "          authorization:",
    "            type: Bearer",
    `            credentials: ${yamlString(opts.token)}`,
    "",
  ].join("\n");
  await Deno.writeTextFile(`${dir}/alertmanager.yml`, config, { mode: 0o600 });
  const logFile = await Deno.open(`${dir}/alertmanager.log`, { write: true, create: true, truncate: true });
  const child = new Deno.Command(ALERTMANAGER_BIN, {
    args: [
      `--config.file=${dir}/alertmanager.yml`,
      `--storage.path=${dir}/data`,
      `--web.listen-address=127.0.0.1:${port}`,
      // The externalURL every notification carries (Alertmanager's own default is http://<hostname>:<port>/);
      // the bot silences only at its configured alerts.alertmanager_url, which the tests point here.
      `--web.external-url=${url}`,
      "--cluster.listen-address=",
      "--log.level=debug",
    ],
    ...NO_ENV,
    stdout: "null",
    stderr: "piped",
    stdin: "null",
  }).spawn();
  const logging = child.stderr.pipeTo(logFile.writable).catch(() => {});
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    try {
      child.kill("SIGTERM");
    } catch {
      // already gone
    }
    await child.status;
    await logging;
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  };
  const readLog = () => Deno.readTextFile(`${dir}/alertmanager.log`).catch(() => "");
  try {
    await waitFor(async () => {
      const r = await fetch(`${url}/-/ready`).catch(() => undefined);
      await r?.body?.cancel();
      return r?.status === 200;
    }, { timeoutMs: 15_000, intervalMs: 100, what: "Alertmanager /-/ready" });
  } catch (err) {
    const log = await readLog();
    await stop();
    throw new Error(`Alertmanager did not start: ${err}\n${log.slice(-2000)}`);
  }

  const postAlerts: RunningAlertmanager["postAlerts"] = async (alerts) => {
    const res = await fetch(`${url}/api/v2/alerts`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(alerts.map((a) => ({ annotations: {}, ...a }))),
    });
    const text = await res.text();
    if (res.status !== 200) throw new Error(`POST /api/v2/alerts: ${res.status} ${text}`);
  };

  return {
    url,
    port,
    dir,
    push: async (labels, annotations = {}) => {
      const { alertname, ...rest } = labels;
      const args = [
        `--alertmanager.url=${url}`,
        "alert",
        "add",
        alertname,
        ...Object.entries(rest).map(([k, v]) => `${k}=${v}`),
        ...Object.entries(annotations).map(([k, v]) => `--annotation=${k}=${v}`),
      ];
      const out = await new Deno.Command(AMTOOL_BIN, { args, ...NO_ENV, stdout: "piped", stderr: "piped" })
        .output();
      if (out.code !== 0) {
        throw new Error(`amtool alert add failed (${out.code}): ${new TextDecoder().decode(out.stderr)}`);
      }
    },
    postAlerts,
    resolve: async (labels, annotations = {}) => {
      const past = new Date(Date.now() - 60_000).toISOString();
      await postAlerts([{
        labels,
        annotations,
        startsAt: new Date(Date.now() - 120_000).toISOString(),
        endsAt: past,
      }]);
    },
    alerts: async () => {
      const res = await fetch(`${url}/api/v2/alerts`);
      return await res.json();
    },
    amtool: async (...args) => {
      const out = await new Deno.Command(AMTOOL_BIN, {
        args: [`--alertmanager.url=${url}`, ...args],
        ...NO_ENV,
        stdout: "piped",
        stderr: "piped",
      }).output();
      if (out.code !== 0) {
        throw new Error(
          `amtool ${args.join(" ")} failed (${out.code}): ${new TextDecoder().decode(out.stderr)}`,
        );
      }
      return new TextDecoder().decode(out.stdout);
    },
    log: readLog,
    stop,
  };
}
