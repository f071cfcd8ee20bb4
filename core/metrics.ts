/**
 * The process's Prometheus metrics, on prom-client 15. It runs under Deno (CPU from `process.cpuUsage()`,
 * event-loop delay from `node:perf_hooks`' `monitorEventLoopDelay`, which Deno implements natively), except
 * for the series it reads from /proc/self: Deno lets only `--allow-all` read there, so under the image's
 * named permissions they read 0. Those are replaced (resident memory from `Deno.memoryUsage()`) or left out
 * (open and maximum file descriptors, virtual memory, heap size).
 *
 * The interface is the one call sites have always used: `inc`, `set`, `observe` declare a metric on first
 * use (its help text, its label names, a histogram's buckets) and `value` reads a counter or gauge back.
 * On top of that:
 *
 * - Label names a scrape target already has are renamed: Prometheus keeps its own `job` and `instance`
 *   target labels and renames clashing scraped ones to `exported_job`/`exported_instance` when
 *   `honor_labels` is false (https://prometheus.io/docs/prometheus/latest/configuration/configuration/#scrape_config),
 *   so the bot writes a `job` label as `bisman_job` (and `instance` as `bisman_instance`) itself. Callers
 *   and `value()` keep saying `job`.
 * - {@link Metrics.onScrape} registers a reader run when `/metrics` is scraped (values that live in the
 *   state database), bounded by a timeout and cached, so a slow database never holds a scrape.
 * - `process: true` adds prom-client's process metrics (resident memory, CPU, event-loop delay, ...) and
 *   `bisman_build_info`.
 *
 * Label values must be bounded: names from the config, enums, outcomes; never user input.
 *
 * @module
 */

import client from "prom-client";

type Labels = Record<string, string>;

/** Target labels Prometheus attaches to every scraped series; a scraped label of the same name is renamed. */
const TARGET_LABELS: Record<string, string> = { job: "bisman_job", instance: "bisman_instance" };

/** `labels`, with target label names renamed (the same object when there are none: the common case). */
function exportedLabels(labels: Labels): Labels {
  if (!("job" in labels) && !("instance" in labels)) return labels;
  const out: Labels = {};
  for (const k in labels) out[TARGET_LABELS[k] ?? k] = labels[k];
  return out;
}

/** A stable key of a label set, for {@link Metrics.value}. */
function labelKey(labels: Labels): string {
  const keys = Object.keys(labels);
  if (!keys.length) return "";
  if (keys.length > 1) keys.sort();
  let out = "";
  for (const k of keys) out += `${k}\u0000${labels[k]}\u0001`;
  return out;
}

type Kind = "counter" | "gauge" | "histogram";

interface Entry {
  kind: Kind;
  metric: client.Counter<string> | client.Gauge<string> | client.Histogram<string>;
  /** Counters and gauges: the current value per label set (prom-client only reads values asynchronously). */
  values?: Map<string, number>;
}

/** A reader of values that live elsewhere (the state database), run at scrape time. */
interface ScrapeSource {
  name: string;
  read: () => Promise<void>;
  timeoutMs: number;
  cacheMs: number;
  onError?: (err: unknown) => void;
  startedAt: number;
  inflight?: Promise<void>;
}

/** Options of {@link Metrics}. */
export interface MetricsOptions {
  /**
   * Export the process's own metrics too (prom-client's defaults: `process_resident_memory_bytes`,
   * `process_cpu_seconds_total`, `nodejs_eventloop_lag_*_seconds`, ...) and `bisman_build_info`. The bot sets
   * it; the CLI and unit tests do not.
   */
  process?: boolean;
  /** The build, for `bisman_build_info` (default: version `dev`, commit `unknown`). */
  build?: { version?: string; commit?: string };
}

/**
 * Resolution of the event-loop delay histogram. With prom-client's default (10 ms) an otherwise idle Deno
 * process here used about 11 ms more CPU per second than without it, with 100 ms about 3 ms (10 s runs of
 * a bare script, process.cpuUsage()); 50 ms is between, and any stall longer than that is still recorded.
 */
const EVENT_LOOP_RESOLUTION_MS = 50;

/** prom-client's default series that read /proc/self, which Deno opens only to `--allow-all`. */
const PROCFS_SERIES = [
  "process_resident_memory_bytes",
  "process_virtual_memory_bytes",
  "process_heap_bytes",
  "process_open_fds",
  "process_max_fds",
];

let processRegistry: client.Registry | undefined;

/** prom-client's process metrics, registered once per process (several bots in one test process share them). */
function processMetrics(): client.Registry {
  if (!processRegistry) {
    const registry = new client.Registry();
    client.collectDefaultMetrics({
      register: registry,
      eventLoopMonitoringPrecision: EVENT_LOOP_RESOLUTION_MS,
    });
    for (const name of PROCFS_SERIES) registry.removeSingleMetric(name);
    new client.Gauge({
      name: "process_resident_memory_bytes",
      help: "Resident memory size in bytes.",
      registers: [registry],
      collect() {
        this.set(Deno.memoryUsage().rss);
      },
    });
    processRegistry = registry;
  }
  return processRegistry;
}

/** Holds every metric of the process. */
export class Metrics {
  /** prom-client's registry of this bot's own metrics. */
  readonly registry: client.Registry = new client.Registry();
  #entries = new Map<string, Entry>();
  #sources: ScrapeSource[] = [];
  #process: boolean;

  constructor(opts: MetricsOptions = {}) {
    this.#process = opts.process ?? false;
    if (this.#process) {
      processMetrics();
      this.set(
        "bisman_build_info",
        {
          version: opts.build?.version || "dev",
          commit: opts.build?.commit || "unknown",
          deno: Deno.version.deno,
        },
        1,
        "The running build: version and commit (from the image's BISMAN_VERSION and BISMAN_COMMIT)",
      );
    }
  }

  /** Adds `by` to a counter. */
  inc(name: string, labels: Labels = {}, by = 1, help = name): void {
    const l = exportedLabels(labels);
    const e = this.#entry(name, "counter", help, l);
    (e.metric as client.Counter<string>).inc(l, by);
    const k = labelKey(l);
    e.values!.set(k, (e.values!.get(k) ?? 0) + by);
  }

  /** Sets a gauge. */
  set(name: string, labels: Labels, value: number, help = name): void {
    const l = exportedLabels(labels);
    const e = this.#entry(name, "gauge", help, l);
    (e.metric as client.Gauge<string>).set(l, value);
    e.values!.set(labelKey(l), value);
  }

  /** Removes one series of a gauge (its subject could not be measured this time: no value beats a stale one). */
  remove(name: string, labels: Labels): void {
    const e = this.#entries.get(name);
    if (!e || e.kind !== "gauge") return;
    const l = exportedLabels(labels);
    const k = labelKey(l);
    if (!e.values!.has(k)) return;
    (e.metric as client.Gauge<string>).remove(l);
    e.values!.delete(k);
  }

  /**
   * Replaces every series of a gauge at once (values read at scrape time: a series whose subject is gone,
   * such as a target without pending approvals, disappears instead of keeping its last value). Synchronous,
   * so a scrape never sees the gauge half-filled.
   * @param labelNames the gauge's label names (needed when `rows` is empty on first use)
   */
  replace(name: string, labelNames: string[], rows: { labels: Labels; value: number }[], help = name): void {
    const proto: Labels = {};
    for (const n of labelNames) proto[n] = "";
    const e = this.#entry(name, "gauge", help, exportedLabels(proto));
    const g = e.metric as client.Gauge<string>;
    g.reset();
    e.values!.clear();
    for (const r of rows) {
      const l = exportedLabels(r.labels);
      g.set(l, r.value);
      e.values!.set(labelKey(l), r.value);
    }
  }

  /** Records one observation (seconds) in a histogram. */
  observe(name: string, labels: Labels, value: number, help = name, buckets = DEFAULT_BUCKETS): void {
    const l = exportedLabels(labels);
    (this.#entry(name, "histogram", help, l, buckets).metric as client.Histogram<string>).observe(l, value);
  }

  /** The current value of a counter or gauge (tests and /readyz); 0 when the series does not exist. */
  value(name: string, labels: Labels = {}): number {
    return this.#entries.get(name)?.values?.get(labelKey(exportedLabels(labels))) ?? 0;
  }

  /**
   * Registers a reader run when the metrics are rendered, at most once per `cacheMs`; a render waits for it
   * at most `timeoutMs` and then shows the values of the last read. `bisman_metrics_source_up{source}` is 1
   * while the latest read succeeded in time, and `bisman_metrics_source_read_timestamp_seconds{source}` says
   * when the values shown were read. Only one read of a source runs at a time.
   */
  onScrape(
    name: string,
    read: () => Promise<void>,
    opts: { timeoutMs?: number; cacheMs?: number; onError?: (err: unknown) => void } = {},
  ): void {
    this.#sources.push({
      name,
      read,
      timeoutMs: opts.timeoutMs ?? 2_000,
      cacheMs: opts.cacheMs ?? 10_000,
      onError: opts.onError,
      startedAt: -Infinity,
    });
  }

  async #refresh(s: ScrapeSource): Promise<void> {
    const now = performance.now();
    if (!s.inflight && now - s.startedAt >= s.cacheMs) {
      s.startedAt = now;
      s.inflight = s.read().then(
        () => {
          this.set("bisman_metrics_source_up", { source: s.name }, 1, SOURCE_UP_HELP);
          this.set(
            "bisman_metrics_source_read_timestamp_seconds",
            { source: s.name },
            Date.now() / 1000,
            "When the values of each scrape-time source were read (Unix time)",
          );
        },
        (err) => {
          this.set("bisman_metrics_source_up", { source: s.name }, 0, SOURCE_UP_HELP);
          s.onError?.(err);
        },
      ).finally(() => s.inflight = undefined);
    }
    if (!s.inflight) return;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timedOut = await Promise.race([
      s.inflight.then(() => false),
      new Promise<boolean>((resolve) => timer = setTimeout(() => resolve(true), s.timeoutMs)),
    ]);
    clearTimeout(timer);
    if (timedOut) this.set("bisman_metrics_source_up", { source: s.name }, 0, SOURCE_UP_HELP);
  }

  /** The `Content-Type` of {@link render}'s text. */
  get contentType(): string {
    return this.registry.contentType;
  }

  /** The text exposition of every metric (https://prometheus.io/docs/instrumenting/exposition_formats/). */
  async render(): Promise<string> {
    if (this.#sources.length) await Promise.all(this.#sources.map((s) => this.#refresh(s)));
    const own = await this.registry.metrics();
    return this.#process ? `${own}\n${await processMetrics().metrics()}` : own;
  }

  #entry(name: string, kind: Kind, help: string, labels: Labels, buckets?: number[]): Entry {
    const existing = this.#entries.get(name);
    if (existing) {
      if (existing.kind !== kind) throw new Error(`Metric ${name} is a ${existing.kind}, not a ${kind}`);
      return existing;
    }
    const config = { name, help, labelNames: Object.keys(labels), registers: [this.registry] };
    const entry: Entry = kind === "counter"
      ? { kind, metric: new client.Counter(config), values: new Map() }
      : kind === "gauge"
      ? { kind, metric: new client.Gauge(config), values: new Map() }
      : { kind, metric: new client.Histogram({ ...config, buckets: buckets ?? DEFAULT_BUCKETS }) };
    this.#entries.set(name, entry);
    return entry;
  }
}

const SOURCE_UP_HELP = "1 while the latest scrape-time read of a source succeeded in time";

/** Buckets (seconds) suited to acknowledgement latency: fine below 100 ms, coarse up to Slack's 3 s. */
export const DEFAULT_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 3, 5, 10];
