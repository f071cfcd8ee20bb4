/** Percentiles and formatting shared by the benchmarks. */

/** The p-th percentile (0–100) of `values`, nearest-rank. */
export function percentile(values: number[], p: number): number {
  if (!values.length) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank];
}

/** "p50 4.1 ms  p99 19.8 ms  max 25.0 ms" */
export function latencySummary(ms: number[]): string {
  const f = (v: number) => `${v.toFixed(1)} ms`;
  return `n=${ms.length}  p50 ${f(percentile(ms, 50))}  p90 ${f(percentile(ms, 90))}  p99 ${
    f(percentile(ms, 99))
  }  max ${f(Math.max(...ms))}`;
}

/** Runs `fn` for each of `n` items with at most `concurrency` in flight. */
export async function pool<T>(n: number, concurrency: number, fn: (i: number) => Promise<T>): Promise<T[]> {
  const out: T[] = new Array(n);
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(concurrency, n) }, async () => {
    while (next < n) {
      const i = next++;
      out[i] = await fn(i);
    }
  }));
  return out;
}
