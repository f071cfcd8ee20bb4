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
  /** Fires one of {@link SANDBOX_ALERTS} (default HighReplicationLag); returns what happened, for the console. */
  fire(name?: SandboxAlertName): Promise<string>;
  /** Resolves every alert fired so far (Alertmanager sends the resolved notification). */
  resolveAll(): Promise<string>;
  stop(): Promise<void>;
}

async function installed(path: string): Promise<boolean> {
  try {
    return (await Deno.stat(path)).isFile;
  } catch {
    return false;
  }
}

/** The alerts the runbook names (its Prometheus rules and its incident-response list), by alertname. */
export const SANDBOX_ALERTS = [
  "HighReplicationLag",
  "ReplicationFailure",
  "TooManyConnections",
  "SlowQueries",
  "UnexpectedDbUser",
  "SuspiciousQueries",
] as const;
/** One of the sandbox's alert names. */
export type SandboxAlertName = typeof SANDBOX_ALERTS[number];

/** The labels and annotations of one runbook alert on the sandbox's target. */
export function sandboxAlert(
  replicaPort: number | undefined,
  name: SandboxAlertName = "HighReplicationLag",
  primaryPort?: number,
) {
  const fromPanel = "Fired from the sandbox's make-trouble panel.";
  const primary = { target: "sandbox", instance: `127.0.0.1:${primaryPort ?? 0}`, job: "postgres" };
  const replica = {
    target: "sandbox",
    replica: "replica1",
    instance: `127.0.0.1:${replicaPort ?? 0}`,
    job: "postgres",
  };
  // An address in TEST-NET-3 (documentation only): the "suspicious client" the incident alerts name.
  const client = { client_addr: "203.0.113.7" };
  const table: Record<
    SandboxAlertName,
    { labels: Record<string, string>; summary: string; description: string }
  > = {
    HighReplicationLag: {
      labels: { ...replica, severity: "warning" },
      summary: "replica1 of sandbox is more than 30 s behind its primary",
      description: `pg_replication_lag > 30 for 5m (the seed's rule). ${fromPanel}`,
    },
    ReplicationFailure: {
      labels: { ...replica, severity: "critical" },
      summary: "replica1 of sandbox is not streaming from its primary",
      description:
        `The runbook's incident step: replication failure, promote the replica, investigate. ${fromPanel}`,
    },
    TooManyConnections: {
      labels: { ...primary, severity: "warning" },
      summary: "sandbox's primary has more than 100 connections",
      description: `pg_stat_activity_count > 100 for 5m (the seed's rule). ${fromPanel}`,
    },
    SlowQueries: {
      labels: { ...primary, severity: "warning" },
      summary: "statements on sandbox take more than 1 s on average",
      description: `pg_stat_statements_mean_exec_time_seconds > 1 for 10m (the seed's rule). ${fromPanel}`,
    },
    UnexpectedDbUser: {
      labels: { ...primary, ...client, user: "mallory", severity: "critical" },
      summary: "an unexpected role logged in to sandbox",
      description: `The runbook's incident step: unexpected DB user, rotate all credentials. ${fromPanel}`,
    },
    SuspiciousQueries: {
      labels: { ...primary, ...client, severity: "critical" },
      summary: "suspicious queries on sandbox from 203.0.113.7",
      description:
        `The runbook's incident step: suspicious queries, check audit logs, block the IP. ${fromPanel}`,
    },
  };
  const a = table[name];
  return {
    labels: { alertname: name, ...a.labels },
    annotations: { summary: a.summary, description: a.description },
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
  primaryPort?: number;
  log: (line: string) => void;
}): Promise<SandboxAlerts> {
  const alertOf = (name: SandboxAlertName) => sandboxAlert(opts.replicaPort, name, opts.primaryPort);
  const fired = new Set<SandboxAlertName>();
  const firedAt = new Map<SandboxAlertName, Date>();
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
        fire: async (name = "HighReplicationLag") => {
          const alert = alertOf(name);
          firedAt.set(name, new Date());
          await running.push(alert.labels, alert.annotations);
          fired.add(name);
          return `${name} fired through Alertmanager (amtool alert add): its webhook reaches the ` +
            "bot in about a second, and the bot opens a thread with the runbook's buttons.";
        },
        resolveAll: async () => {
          const names = [...fired];
          // Ended now, from the time it was fired: the stand-in's resolve() ends an alert a minute ago, which
          // Alertmanager does not apply to an alert that started later (one fired seconds ago stayed firing).
          const endsAt = new Date().toISOString();
          await running.postAlerts(names.map((name) => ({
            ...alertOf(name),
            startsAt: (firedAt.get(name) ?? new Date()).toISOString(),
            endsAt,
          })));
          fired.clear();
          return names.length
            ? `${
              names.join(", ")
            } resolved in Alertmanager (endsAt in the past): its resolved notification ` +
              "reaches the bot, which marks each thread RESOLVED."
            : "No alert fired from this panel is open.";
        },
        stop: () => running.stop(),
      };
    }
  } else {
    opts.log(
      "prometheus-alertmanager is not installed: the panel posts Alertmanager's webhook payload directly",
    );
  }
  const post = async (name: SandboxAlertName, status: "firing" | "resolved") => {
    const alert = alertOf(name);
    const now = new Date().toISOString();
    const body = {
      version: "4",
      groupKey: `{}:{alertname="${alert.labels.alertname}"}`,
      truncatedAlerts: 0,
      status,
      receiver: "bot",
      groupLabels: { alertname: alert.labels.alertname },
      commonLabels: alert.labels,
      commonAnnotations: alert.annotations,
      externalURL: "http://sandbox-alertmanager.invalid",
      alerts: [{
        status,
        labels: alert.labels,
        annotations: alert.annotations,
        startsAt: now,
        endsAt: status === "resolved" ? now : "0001-01-01T00:00:00Z",
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
  };
  return {
    via: "webhook",
    fire: async (name = "HighReplicationLag") => {
      await post(name, "firing");
      fired.add(name);
      return `${name} posted to the bot's /alerts (Alertmanager's webhook payload): the bot opens ` +
        "a thread with the runbook's buttons.";
    },
    resolveAll: async () => {
      const names = [...fired];
      for (const name of names) await post(name, "resolved");
      fired.clear();
      return names.length
        ? `${names.join(", ")} posted as resolved to the bot's /alerts: each thread is marked RESOLVED.`
        : "No alert fired from this panel is open.";
    },
    stop: () => Promise.resolve(),
  };
}
