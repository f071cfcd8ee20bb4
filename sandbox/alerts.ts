/**
 * Alerts for the sandbox's "make trouble" panel: a real Alertmanager (Debian's prometheus-alertmanager,
 * through standins/alertmanager.ts) whose webhook points at the bot's `POST /alerts`, or, where it is
 * not installed, the same version-4 webhook payload posted directly with the bearer token.
 *
 * @module
 */

import { ALERTMANAGER_BIN, type RunningAlertmanager, startAlertmanager } from "../standins/alertmanager.ts";

/**
 * Stops an Alertmanager left running by a sandbox that was killed (SIGKILL leaves child processes behind):
 * finds it by its storage folder on the command line, and removes the folder.
 */
export async function stopLeftoverAlertmanager(dir: string | undefined): Promise<boolean> {
  if (!dir || !/^\/[A-Za-z0-9_./-]+$/.test(dir)) return false;
  let stopped = false;
  for (const e of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(e.name)) continue;
    const cmdline = await Deno.readTextFile(`/proc/${e.name}/cmdline`).catch(() => "");
    const args = cmdline.split("\0");
    if (args[0] === ALERTMANAGER_BIN && args.includes(`--storage.path=${dir}/data`)) {
      try {
        Deno.kill(Number(e.name), "SIGTERM");
        stopped = true;
      } catch {
        // already gone
      }
    }
  }
  await Deno.remove(dir, { recursive: true }).catch(() => {});
  return stopped;
}

/** The alerts side of the sandbox. */
export interface SandboxAlerts {
  /** "alertmanager" or "webhook" (posted directly). */
  readonly via: "alertmanager" | "webhook";
  /** Alertmanager's URL when it runs. */
  readonly url?: string;
  /** Alertmanager's temp folder (storage, config, log) when it runs. */
  readonly dir?: string;
  /** Fires the sandbox's HighReplicationLag alert; returns what happened, for the console. */
  fire(): Promise<string>;
  stop(): Promise<void>;
}

async function installed(path: string): Promise<boolean> {
  try {
    return (await Deno.stat(path)).isFile;
  } catch {
    return false;
  }
}

/** The alert the panel fires: replica1 of the sandbox lags. */
export function sandboxAlert(replicaPort: number | undefined) {
  return {
    labels: {
      alertname: "HighReplicationLag",
      severity: "warning",
      target: "sandbox",
      replica: "replica1",
      instance: `127.0.0.1:${replicaPort ?? 0}`,
      job: "postgres",
    },
    annotations: {
      summary: "replica1 of sandbox is more than 30 s behind its primary",
      description:
        "pg_replication_lag > 30 for 5m (the seed's rule). Fired from the sandbox's make-trouble panel.",
    },
  };
}

/** Hex of SHA-256 of the sorted labels: stands in for Alertmanager's fingerprint. */
async function fingerprint(labels: Record<string, string>): Promise<string> {
  const text = Object.keys(labels).sort().map((k) => `${k}=${labels[k]}`).join("\u00ff");
  const d = new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text)));
  return Array.from(d.slice(0, 8), (b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * Starts Alertmanager (when installed) with its webhook at `webhookUrl`; otherwise prepares direct posts.
 * `replicaPort` labels the alert's instance.
 */
export async function startSandboxAlerts(opts: {
  webhookUrl: string;
  token: string;
  replicaPort?: number;
  log: (line: string) => void;
}): Promise<SandboxAlerts> {
  const alert = sandboxAlert(opts.replicaPort);
  if (await installed(ALERTMANAGER_BIN)) {
    let am: RunningAlertmanager | undefined;
    try {
      am = await startAlertmanager({ webhookUrl: opts.webhookUrl, token: opts.token, groupWait: "1s" });
    } catch (err) {
      opts.log(
        `Alertmanager did not start (${
          err instanceof Error ? err.message.split("\n")[0] : err
        }); alerts are posted directly`,
      );
    }
    if (am) {
      const running = am;
      opts.log(`Alertmanager at ${running.url}, webhook to the bot's /alerts`);
      return {
        via: "alertmanager",
        url: running.url,
        dir: running.dir,
        fire: async () => {
          await running.push(alert.labels, alert.annotations);
          return "HighReplicationLag fired through Alertmanager (amtool alert add): its webhook reaches the " +
            "bot in about a second, and the bot opens a thread with the runbook's buttons.";
        },
        stop: () => running.stop(),
      };
    }
  } else {
    opts.log(
      "prometheus-alertmanager is not installed: the panel posts Alertmanager's webhook payload directly",
    );
  }
  return {
    via: "webhook",
    fire: async () => {
      const now = new Date().toISOString();
      const body = {
        version: "4",
        groupKey: `{}:{alertname="${alert.labels.alertname}"}`,
        truncatedAlerts: 0,
        status: "firing",
        receiver: "bot",
        groupLabels: { alertname: alert.labels.alertname },
        commonLabels: alert.labels,
        commonAnnotations: alert.annotations,
        externalURL: "http://sandbox-alertmanager.invalid",
        alerts: [{
          status: "firing",
          labels: alert.labels,
          annotations: alert.annotations,
          startsAt: now,
          endsAt: "0001-01-01T00:00:00Z",
          generatorURL: "",
          fingerprint: await fingerprint(alert.labels),
        }],
      };
      const res = await fetch(opts.webhookUrl, {
        method: "POST",
        headers: { "content-type": "application/json", authorization: `Bearer ${opts.token}` },
        body: JSON.stringify(body),
      });
      const text = await res.text();
      if (!res.ok) throw new Error(`POST /alerts answered ${res.status}: ${text.slice(0, 200)}`);
      return "HighReplicationLag posted to the bot's /alerts (Alertmanager's webhook payload): the bot opens " +
        "a thread with the runbook's buttons.";
    },
    stop: () => Promise.resolve(),
  };
}
