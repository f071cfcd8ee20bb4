/**
 * A small Prometheus registry: counters and histograms with labels, rendered in the text exposition
 * format (https://prometheus.io/docs/instrumenting/exposition_formats/).
 *
 * @module
 */

type Labels = Record<string, string>;

function labelKey(labels: Labels): string {
  const keys = Object.keys(labels).sort();
  if (!keys.length) return "";
  const esc = (v: string) => v.replace(/\\/g, "\\\\").replace(/\n/g, "\\n").replace(/"/g, '\\"');
  return `{${keys.map((k) => `${k}="${esc(labels[k])}"`).join(",")}}`;
}

interface Series {
  help: string;
  type: "counter" | "gauge" | "histogram";
}

/** Holds every metric of the process. */
export class Metrics {
  #meta = new Map<string, Series>();
  #values = new Map<string, Map<string, number>>();
  #hist = new Map<
    string,
    { buckets: number[]; series: Map<string, { counts: number[]; sum: number; count: number }> }
  >();

  /** Adds `by` to a counter. */
  inc(name: string, labels: Labels = {}, by = 1, help = name): void {
    this.#declare(name, "counter", help);
    const m = this.#values.get(name)!;
    const k = labelKey(labels);
    m.set(k, (m.get(k) ?? 0) + by);
  }

  /** Sets a gauge. */
  set(name: string, labels: Labels, value: number, help = name): void {
    this.#declare(name, "gauge", help);
    this.#values.get(name)!.set(labelKey(labels), value);
  }

  /** Records one observation (seconds) in a histogram. */
  observe(name: string, labels: Labels, value: number, help = name, buckets = DEFAULT_BUCKETS): void {
    this.#declare(name, "histogram", help);
    let h = this.#hist.get(name);
    if (!h) this.#hist.set(name, h = { buckets, series: new Map() });
    const k = labelKey(labels);
    let s = h.series.get(k);
    if (!s) h.series.set(k, s = { counts: h.buckets.map(() => 0), sum: 0, count: 0 });
    h.buckets.forEach((b, i) => {
      if (value <= b) s!.counts[i]++;
    });
    s.sum += value;
    s.count++;
  }

  /** The current value of a counter or gauge (tests and /readyz). */
  value(name: string, labels: Labels = {}): number {
    return this.#values.get(name)?.get(labelKey(labels)) ?? 0;
  }

  #declare(name: string, type: Series["type"], help: string) {
    const existing = this.#meta.get(name);
    if (existing) {
      if (existing.type !== type) throw new Error(`Metric ${name} is a ${existing.type}, not a ${type}`);
      return;
    }
    this.#meta.set(name, { help, type });
    if (type !== "histogram") this.#values.set(name, new Map());
  }

  /** The text exposition of every metric. */
  render(): string {
    const lines: string[] = [];
    for (const [name, meta] of this.#meta) {
      lines.push(`# HELP ${name} ${meta.help}`, `# TYPE ${name} ${meta.type}`);
      if (meta.type === "histogram") {
        const h = this.#hist.get(name);
        for (const [k, s] of h?.series ?? []) {
          const inner = k ? k.slice(1, -1) + "," : "";
          h!.buckets.forEach((b, i) => lines.push(`${name}_bucket{${inner}le="${b}"} ${s.counts[i]}`));
          lines.push(`${name}_bucket{${inner}le="+Inf"} ${s.count}`);
          lines.push(`${name}_sum${k} ${s.sum}`, `${name}_count${k} ${s.count}`);
        }
      } else {
        for (const [k, v] of this.#values.get(name) ?? []) lines.push(`${name}${k} ${v}`);
      }
    }
    return lines.join("\n") + "\n";
  }
}

/** Buckets (seconds) suited to acknowledgement latency: fine below 100 ms, coarse up to Slack's 3 s. */
export const DEFAULT_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 3, 5, 10];
