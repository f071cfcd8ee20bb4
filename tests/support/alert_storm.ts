/**
 * An Alertmanager-like alert storm for the storm test and the alert_storm benchmark: deliveries at a steady
 * pace, each re-sending every alert of its group so far (as Alertmanager does), four large groups and one
 * single-alert group in every fifth delivery, spread over several bot replicas.
 */

/** One alert of the storm. */
export interface StormAlert {
  fp: string;
  labels: Record<string, string>;
}

/** What was sent, so a test can check every alert against Slack. */
export interface StormPlan {
  groups: { key: string; name: string; alerts: StormAlert[] }[];
  singles: { key: string; alert: StormAlert }[];
}

/** A version 4 webhook body for `alerts` of one group. */
export function deliveryBody(groupKey: string, alerts: StormAlert[], status: "firing" | "resolved") {
  const now = new Date().toISOString();
  return {
    version: "4",
    groupKey,
    status,
    receiver: "bot",
    alerts: alerts.map((a) => ({
      status,
      labels: a.labels,
      annotations: { summary: `${a.labels.alertname} on ${a.labels.instance}` },
      startsAt: "2026-01-01T00:00:00Z",
      endsAt: status === "resolved" ? now : "0001-01-01T00:00:00Z",
      fingerprint: a.fp,
    })),
  };
}

/** POSTs one delivery; returns the bot's answer. @throws unless the answer is 200 */
export async function postDelivery(
  botUrl: string,
  token: string,
  body: unknown,
): Promise<{ received: number; queued: number }> {
  const res = await fetch(`${botUrl}/alerts`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
    body: JSON.stringify(body),
  });
  if (res.status !== 200) throw new Error(`POST /alerts answered ${res.status}: ${await res.text()}`);
  return await res.json();
}

/** Figures of one storm. */
export interface StormResult {
  plan: StormPlan;
  /** Time from sending to the bot's answer, per delivery (ms). */
  ackMs: number[];
  /** Seconds from the first delivery to the last. */
  sentSeconds: number;
  /** performance.now() of the last delivery's answer. */
  lastAt: number;
}

/**
 * Sends `total` alerts (a multiple of 25: 24 of every 25 in four big groups, 1 alone) in `deliveries`
 * deliveries spread evenly over `seconds`, round-robin over `botUrls`.
 */
export async function sendStorm(opts: {
  botUrls: string[];
  token: string;
  total?: number;
  seconds?: number;
}): Promise<StormResult> {
  const total = opts.total ?? 500;
  const seconds = opts.seconds ?? 30;
  if (total % 25) throw new Error("total must be a multiple of 25");
  const deliveries = total / 5; // 4 of every 5 add 6 alerts to a group, the 5th sends one single alert
  const plan: StormPlan = {
    groups: ["HighReplicationLag", "TooManyConnections", "SlowQueries", "DiskAlmostFull"].map((name) => ({
      key: `{}:{alertname="${name}"}`,
      name,
      alerts: [],
    })),
    singles: [],
  };
  let n = 0;
  const fp = () => (0x1000000 + n++).toString(16);
  const ackMs: number[] = [];
  const started = performance.now();
  let lastAt = started;
  const gap = (seconds * 1000) / deliveries;
  for (let i = 0; i < deliveries; i++) {
    const due = started + i * gap;
    if (performance.now() < due) await new Promise((r) => setTimeout(r, due - performance.now()));
    const url = opts.botUrls[i % opts.botUrls.length];
    const t0 = performance.now();
    if (i % 5 === 4) {
      const key = `{}:{instance="host${i}"}`;
      const alert = { fp: fp(), labels: { alertname: "SingleAlert", instance: `host${i}:9100` } };
      plan.singles.push({ key, alert });
      await postDelivery(url, opts.token, deliveryBody(key, [alert], "firing"));
    } else {
      const g = plan.groups[i % 4];
      for (let k = 0; k < 6; k++) {
        g.alerts.push({ fp: fp(), labels: { alertname: g.name, instance: `db${g.alerts.length}:5432` } });
      }
      const r = await postDelivery(url, opts.token, deliveryBody(g.key, g.alerts, "firing"));
      if (r.queued !== 6) {
        throw new Error(`expected the 6 new alerts of a re-sent group to be queued, got ${r.queued}`);
      }
    }
    lastAt = performance.now();
    ackMs.push(lastAt - t0);
  }
  return { plan, ackMs, sentSeconds: (lastAt - started) / 1000, lastAt };
}

/** Resolves every alert of the storm at once (one delivery per group). */
export async function resolveStorm(plan: StormPlan, botUrls: string[], token: string): Promise<void> {
  await Promise.all([
    ...plan.groups.map((g, i) =>
      postDelivery(botUrls[i % botUrls.length], token, deliveryBody(g.key, g.alerts, "resolved"))
    ),
    ...plan.singles.map((s, i) =>
      postDelivery(botUrls[i % botUrls.length], token, deliveryBody(s.key, [s.alert], "resolved"))
    ),
  ]);
}

/** "p50 12.3 ms, max 80.1 ms" of a list of milliseconds. */
export function ackSummary(ms: number[]): string {
  const s = [...ms].sort((a, b) => a - b);
  return `p50 ${s[Math.floor(s.length / 2)].toFixed(1)} ms, max ${s[s.length - 1].toFixed(1)} ms`;
}
