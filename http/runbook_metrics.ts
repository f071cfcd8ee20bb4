/**
 * The runbook's health that lives in the state database, read when `/metrics` is scraped: pending approvals
 * (how many, the oldest, how many are past their expiry), open alert threads, and the last passing restore
 * test (when, and how long its restore took: the measured RTO). Every replica reads the same rows, so every
 * replica reports the same values.
 *
 * A scrape waits for the read at most `timeoutMs` (and the database cancels it after that too), and a read
 * serves `cacheMs` of scrapes, so a slow or unreachable state database never hangs `/metrics`: the values of
 * the last read stay, and `bisman_metrics_source_up{source="state_db"}` says 0 (core/metrics.ts onScrape).
 *
 * The values set when a check runs (backups, lag, credential ages, the audit chain) are in
 * ops/_runbook_metrics.ts.
 *
 * @module
 */

import type { AppDeps } from "../core/deps.ts";
import type { Config } from "../core/config.ts";
import { transaction } from "../core/pg_tx.ts";
import { memberOf } from "../alerts/buttons.ts";

/** The names of the series read at scrape time (deploy/prometheus/rules.yaml reads them). */
export const STATE_SERIES = {
  approvalsPending: "bisman_approvals_pending",
  approvalsOldest: "bisman_approvals_pending_oldest_timestamp_seconds",
  approvalsPastExpiry: "bisman_approvals_pending_past_expiry",
  alertThreadsOpen: "bisman_alert_threads_open",
  restoreLastSuccess: "bisman_restore_test_last_success_timestamp_seconds",
  restoreLastDuration: "bisman_restore_test_last_success_duration_seconds",
} as const;

/** The label value for rows that name no configured target (a freeze, an alert about another server). */
export const NO_TARGET = "none";

/** A configured target's name, or {@link NO_TARGET}: label values stay bounded by the config. */
function targetLabel(config: Config, target: string | null | undefined): string {
  return target && Object.hasOwn(config.targets, target) ? target : NO_TARGET;
}

/** Adds `n` to `map[key]`. */
function add(map: Map<string, number>, key: string, n: number) {
  map.set(key, (map.get(key) ?? 0) + n);
}

/**
 * Registers the state database's reader on `deps.metrics`.
 * @param opts.timeoutMs how long a scrape waits for the read (default 2 s)
 * @param opts.cacheMs how long one read serves (default 10 s; Prometheus scrapes every 30 s here)
 */
export function registerRunbookMetrics(
  deps: Pick<AppDeps, "state" | "metrics" | "log"> & { config: Config },
  opts: { timeoutMs?: number; cacheMs?: number } = {},
): void {
  const timeoutMs = opts.timeoutMs ?? 2_000;
  const m = deps.metrics;
  deps.metrics.onScrape("state_db", async () => {
    // Read at each scrape: SIGHUP may have replaced the config.
    const config = deps.config;
    const targets = Object.keys(config.targets);
    const { requests, alerts, restores } = await transaction(deps.state, async (tx) => {
      await tx`select set_config('statement_timeout', ${String(timeoutMs)}, true)`;
      const requests = await tx<
        { target: string | null; n: number; oldest: number; past_expiry: number }[]
      >`
        select target, count(*)::int as n, extract(epoch from min(created_at))::float8 as oldest,
               (count(*) filter (where expires_at < now()))::int as past_expiry
          from bisman_ops.requests
         where state = 'pending'
         group by target`;
      const alerts = await tx<{ labels: Record<string, string>; n: number }[]>`
        select labels, count(*)::int as n from bisman_ops.alert_state where status = 'firing' group by labels`;
      // The last proven restore as ops/restore_history.ts lastProvenRestore() defines it (the newest
      // passing run), for every target at once.
      const tested = targets.filter((t) => config.targets[t].restore_test);
      const proven = await tx<{ target: string; at: number; restore_ms: number }[]>`
        select distinct on (target) target, extract(epoch from finished_at)::float8 as at,
               restore_ms::float8 as restore_ms
          from bisman_ops.restore_tests
         where status = 'passed' and target = any(${tested})
         order by target, finished_at desc`;
      const restores = tested.map((t) => ({ target: t, proven: proven.find((p) => p.target === t) }));
      return { requests, alerts, restores };
    }, "read only");

    const pending = new Map<string, number>(targets.map((t) => [t, 0]));
    const pastExpiry = new Map<string, number>(targets.map((t) => [t, 0]));
    const oldest = new Map<string, number>();
    for (const r of requests) {
      const t = targetLabel(config, r.target);
      add(pending, t, r.n);
      add(pastExpiry, t, r.past_expiry);
      oldest.set(t, Math.min(oldest.get(t) ?? Infinity, r.oldest));
    }
    const open = new Map<string, number>(targets.map((t) => [t, 0]));
    for (const a of alerts) add(open, targetLabel(config, memberOf(config, a.labels).target), a.n);

    const rows = (map: Map<string, number>) =>
      [...map].map(([target, value]) => ({ labels: { target }, value }));
    m.replace(
      STATE_SERIES.approvalsPending,
      ["target"],
      rows(pending),
      "Approval requests waiting for a click",
    );
    m.replace(
      STATE_SERIES.approvalsOldest,
      ["target"],
      rows(oldest),
      "When the oldest pending approval request was made (Unix time)",
    );
    m.replace(
      STATE_SERIES.approvalsPastExpiry,
      ["target"],
      rows(pastExpiry),
      "Pending approval requests past their expiry (the expiry sweep should have closed them)",
    );
    m.replace(STATE_SERIES.alertThreadsOpen, ["target"], rows(open), "Alert threads whose alert is firing");
    m.replace(
      STATE_SERIES.restoreLastSuccess,
      ["target"],
      restores.map((r) => ({
        labels: { target: r.target },
        value: r.proven ? r.proven.at : 0,
      })),
      "When the last passing restore test finished (Unix time; 0: none has passed)",
    );
    m.replace(
      STATE_SERIES.restoreLastDuration,
      ["target"],
      restores.flatMap((r) =>
        r.proven ? [{ labels: { target: r.target }, value: r.proven.restore_ms / 1000 }] : []
      ),
      "How long the restore of the last passing restore test took (the measured RTO, seconds)",
    );
  }, {
    timeoutMs,
    cacheMs: opts.cacheMs ?? 10_000,
    onError: (err) => deps.log.warn("runbook metrics: state database read failed", { error: err }),
  });
}
