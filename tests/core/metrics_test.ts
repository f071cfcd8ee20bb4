import assert from "node:assert/strict";
import { Metrics } from "../../core/metrics.ts";

/** The sample lines of `text` (no comments), as `name{labels} value`. */
function samples(text: string): string[] {
  return text.split("\n").filter((l) => l && !l.startsWith("#"));
}

/** Runs `promtool check metrics` (the exposition linter of Prometheus) on `text`. */
async function promtoolCheckMetrics(text: string): Promise<{ code: number; out: string }> {
  const child = new Deno.Command("promtool", {
    args: ["check", "metrics"],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const w = child.stdin.getWriter();
  await w.write(new TextEncoder().encode(text));
  await w.close();
  const r = await child.output();
  const dec = new TextDecoder();
  return { code: r.code, out: dec.decode(r.stdout) + dec.decode(r.stderr) };
}

/** A promise and the functions that settle it. */
function deferred<T = void>() {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

Deno.test("Metrics inc(), set(), observe() and value() keep their interface on prom-client", async () => {
  const m = new Metrics();
  m.inc("bisman_things_total", { kind: "a" }, 1, "Things");
  m.inc("bisman_things_total", { kind: "a" }, 2, "Things");
  m.inc("bisman_things_total", { kind: "b" }, 1, "Things");
  m.set("bisman_level", {}, 7, "A level");
  m.observe("bisman_wait_seconds", { kind: "a" }, 0.02, "Waits");
  m.observe("bisman_wait_seconds", { kind: "a" }, 4, "Waits");
  assert.equal(m.value("bisman_things_total", { kind: "a" }), 3);
  assert.equal(m.value("bisman_things_total", { kind: "b" }), 1);
  assert.equal(m.value("bisman_things_total", { kind: "none" }), 0);
  assert.equal(m.value("bisman_level"), 7);
  const text = await m.render();
  assert.match(text, /# HELP bisman_things_total Things\n# TYPE bisman_things_total counter/);
  assert.ok(samples(text).includes('bisman_things_total{kind="a"} 3'));
  assert.ok(samples(text).includes("bisman_level 7"));
  assert.ok(samples(text).includes('bisman_wait_seconds_bucket{le="0.025",kind="a"} 1'));
  assert.ok(samples(text).includes('bisman_wait_seconds_bucket{le="+Inf",kind="a"} 2'));
  assert.ok(samples(text).includes('bisman_wait_seconds_count{kind="a"} 2'));
  assert.throws(() => m.set("bisman_things_total", {}, 1), /is a counter, not a gauge/);
  assert.match(m.contentType, /^text\/plain; version=0\.0\.4/);
  const lint = await promtoolCheckMetrics(text);
  assert.equal(lint.code, 0, lint.out);
});

Deno.test("Metrics writes a `job` or `instance` label as bisman_job / bisman_instance, so Prometheus does not rename it", async () => {
  const m = new Metrics();
  m.set("bisman_job_failing", { job: "digest" }, 1, "Failing");
  m.inc("bisman_job_runs_total", { job: "digest", outcome: "ok" }, 1, "Runs");
  m.set("bisman_probe", { instance: "db1:5432" }, 1, "Probe");
  const text = await m.render();
  assert.ok(samples(text).includes('bisman_job_failing{bisman_job="digest"} 1'), text);
  assert.ok(samples(text).includes('bisman_job_runs_total{bisman_job="digest",outcome="ok"} 1'));
  assert.ok(samples(text).includes('bisman_probe{bisman_instance="db1:5432"} 1'));
  assert.doesNotMatch(text, /[{,]job="|[{,]instance="/);
  assert.equal(m.value("bisman_job_failing", { job: "digest" }), 1, "callers keep saying job");
});

Deno.test("Metrics replace() and remove(): a subject that is gone, or could not be measured, disappears", async () => {
  const m = new Metrics();
  m.replace("bisman_pending", ["target"], [{ labels: { target: "a" }, value: 2 }, {
    labels: { target: "b" },
    value: 1,
  }], "Pending");
  m.replace("bisman_pending", ["target"], [{ labels: { target: "b" }, value: 3 }], "Pending");
  const text = await m.render();
  assert.deepEqual(samples(text).filter((l) => l.startsWith("bisman_pending")), [
    'bisman_pending{target="b"} 3',
  ]);
  assert.equal(m.value("bisman_pending", { target: "a" }), 0);
  m.set("bisman_lag", { replica: "r1" }, 5, "Lag");
  m.set("bisman_lag", { replica: "r2" }, 6, "Lag");
  m.remove("bisman_lag", { replica: "r1" });
  assert.deepEqual(samples(await m.render()).filter((l) => l.startsWith("bisman_lag")), [
    'bisman_lag{replica="r2"} 6',
  ]);
  assert.equal(m.value("bisman_lag", { replica: "r1" }), 0);
  m.replace("bisman_empty", ["target"], [], "Nothing yet");
  assert.match(await m.render(), /# TYPE bisman_empty gauge/);
});

Deno.test("Metrics onScrape(): a slow source never holds a render, a failing one says so, and reads are cached", async (t) => {
  const m = new Metrics();
  let reads = 0;
  let gate = deferred();
  const errors: unknown[] = [];
  m.onScrape("slow", async () => {
    reads++;
    await gate.promise;
    m.set("bisman_from_db", {}, reads, "Read at scrape time");
  }, { timeoutMs: 50, cacheMs: 0, onError: (e) => errors.push(e) });

  await t.step("a read that has not answered within the timeout: the render goes on without it", async () => {
    const text = await m.render();
    assert.equal(reads, 1);
    assert.ok(samples(text).includes('bisman_metrics_source_up{source="slow"} 0'), text);
    assert.ok(!text.includes("bisman_from_db "), "no value was read yet");
  });

  await t.step(
    "the next render waits for the same read (one at a time) and then shows its value",
    async () => {
      const rendering = m.render();
      gate.resolve();
      const text = await rendering;
      assert.equal(reads, 1, "no second read was started while the first was in flight");
      assert.ok(samples(text).includes("bisman_from_db 1"));
      assert.ok(samples(text).includes('bisman_metrics_source_up{source="slow"} 1'));
      assert.match(text, /bisman_metrics_source_read_timestamp_seconds\{source="slow"\} \d/);
    },
  );

  await t.step("a read that fails: up 0, the error goes to onError, the last values stay", async () => {
    gate = deferred();
    gate.reject(new Error("state database unreachable"));
    const text = await m.render();
    assert.equal(reads, 2);
    assert.ok(samples(text).includes('bisman_metrics_source_up{source="slow"} 0'));
    assert.ok(samples(text).includes("bisman_from_db 1"));
    assert.match(String(errors.at(-1)), /state database unreachable/);
  });

  await t.step("within cacheMs, renders reuse the last read", async () => {
    let cached = 0;
    const c = new Metrics();
    c.onScrape("cached", () => {
      cached++;
      return Promise.resolve();
    }, { cacheMs: 60_000 });
    await c.render();
    await c.render();
    await c.render();
    assert.equal(cached, 1);
  });
});

Deno.test("Metrics with process: true exports resident memory, CPU, event-loop delay and the build", async () => {
  const m = new Metrics({ process: true, build: { version: "1.2.3", commit: "abc1234" } });
  const text = await m.render();
  for (
    const name of [
      "process_resident_memory_bytes",
      "process_cpu_seconds_total",
      "process_start_time_seconds",
      "nodejs_eventloop_lag_seconds",
      "nodejs_eventloop_lag_p99_seconds",
      "nodejs_heap_size_used_bytes",
    ]
  ) {
    assert.match(text, new RegExp(`^${name} [0-9.e+-]+$`, "m"), `${name} is exported`);
  }
  const rss = Number(/^process_resident_memory_bytes (\S+)$/m.exec(text)![1]);
  assert.ok(rss > 10 * 2 ** 20 && rss < 4 * 2 ** 30, `resident memory is plausible: ${rss}`);
  assert.match(
    text,
    new RegExp(
      `^bisman_build_info\\{version="1\\.2\\.3",commit="abc1234",deno="${Deno.version.deno}"\\} 1$`,
      "m",
    ),
  );
  // The bot's own series pass promtool's linter; prom-client's nodejs_active_*_total gauges do not (a naming
  // choice upstream), so only the bot's registry is linted here.
  const lint = await promtoolCheckMetrics(await m.registry.metrics());
  assert.equal(lint.code, 0, lint.out);
});
