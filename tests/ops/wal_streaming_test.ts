import assert from "node:assert/strict";
import { startCluster } from "../../standins/cluster.ts";
import { testConfig } from "../support/bot.ts";
import { testOpDeps } from "../support/op_deps.ts";
import { waitFor } from "../../standins/wait.ts";
import { type ReceiveWal, startReceiveWal } from "../support/pg_receivewal.ts";
import { parseSegmentName, readWalStreaming } from "../../ops/wal_streaming.ts";
import { evidenceStatus } from "../../ops/_evidence.ts";

const MiB = 1024 * 1024;
const DAY = 86_400_000;

Deno.test("parseSegmentName() reads timeline and segment number, compressed and partial files too", () => {
  assert.deepEqual(parseSegmentName("000000010000000000000003.partial", 16 * MiB), {
    timeline: 1,
    segno: 3,
    partial: true,
  });
  assert.deepEqual(parseSegmentName("0000000200000001000000FF.gz", 16 * MiB), {
    timeline: 2,
    segno: 256 + 255,
    partial: false,
  });
  assert.equal(parseSegmentName("00000002.history", 16 * MiB), undefined);
});

Deno.test("readWalStreaming() judges a real pg_receivewal: its stream, its slot, its lag and its directory", async (t) => {
  await using cluster = await startCluster({ name: "wal-streaming" });
  const dir = `${cluster.dir}/wal-archive`;
  const config = testConfig(cluster, (doc) => {
    doc.targets.main.wal_streaming = { slot: "wal_archive", directory: dir, lag_bytes_warning: 4 * MiB };
  });
  const deps = await testOpDeps(cluster, { config });
  const read = () => readWalStreaming("main", deps);
  const reason = (r: Awaited<ReturnType<typeof read>>, check: string) =>
    r.findings.filter((f) => f.check === check).map((f) => `${f.severity}: ${f.reason}`).join("\n");
  /** Writes about `mb` MiB of WAL on the primary and switches to a new segment. */
  const writeWal = (mb: number) =>
    cluster.primary.psql(
      `create table if not exists filler (x text); insert into filler select repeat('x', 1000) from generate_series(1, ${
        mb * 1000
      }); select pg_switch_wal();`,
    );
  /** Backdates a file of the directory, as if pg_receivewal had written it that long ago. */
  const backdate = async (name: string, ms: number) => {
    const t = new Date(Date.now() - ms);
    await Deno.utime(`${dir}/${name}`, t, t);
  };
  const names = async () => {
    const out: string[] = [];
    for await (const e of Deno.readDir(dir)) out.push(e.name);
    return out.sort();
  };
  const started: ReceiveWal[] = [];
  const receive = async (opts: Parameters<typeof startReceiveWal>[1]) => {
    const r = await startReceiveWal(cluster, opts);
    started.push(r);
    return r;
  };
  let rw = await receive({ slot: "wal_archive", statusInterval: 1 });
  try {
    await t.step(
      "good: it streams through its slot, keeps up, and the directory reaches back 7 days",
      async () => {
        await writeWal(20);
        // pg_receivewal wrote the oldest segment a moment ago; as if it had written it 8 days ago:
        await backdate((await names())[0], 8 * DAY);
        // The client reports its write position every second (--status-interval=1).
        const r = await waitFor(async () => {
          const r = await read();
          return evidenceStatus(r) === "ok" && r;
        }, { what: "pg_receivewal to catch up" });
        const ok = await read();
        assert.equal(evidenceStatus(ok), "ok", JSON.stringify(ok.findings, null, 1));
        assert.match(reason(ok, "slot"), /^ok: streams through slot wal_archive is active/);
        assert.match(
          reason(ok, "lag"),
          /^ok: application_name pg_receivewal \(pid \d+ from 127\.0\.0\.1\) has written up to [0-9A-F]+\/[0-9A-F]+, [\d.]+ (B|KiB|MiB) behind the primary, last report/,
        );
        assert.match(reason(ok, "newest"), /^ok: newest segment [0-9A-F]{24}(\.partial)?, written .* ago/);
        assert.match(
          reason(ok, "retention"),
          /^ok: oldest segment 000000010000000000000001, 8 days old \(the seed keeps 7 days\)/,
        );
        assert.equal(r.source, `the primary's pg_stat_replication and pg_replication_slots, and ${dir}`);
      },
    );

    await t.step("bad: a receiver that falls behind is named with how far", async () => {
      rw.pause();
      try {
        await writeWal(8);
        const r = await read();
        assert.equal(evidenceStatus(r), "warning");
        assert.match(
          reason(r, "lag"),
          /^warning: application_name pg_receivewal .* ([5-9]|\d\d)(\.\d)? MiB behind the primary.*\(limit 4 MiB\)/,
        );
      } finally {
        rw.resume();
      }
    });

    await t.step(
      "bad: no receiver, a stale newest segment, a gap and a short history are each named",
      async () => {
        await writeWal(40);
        await waitFor(async () => (await names()).length >= 4, { what: "pg_receivewal to write 4 segments" });
        await rw.stop();
        // The primary goes on without it.
        await writeWal(20);
        const complete = (await names()).filter((f) => !f.endsWith(".partial"));
        await Deno.remove(`${dir}/${complete[1]}`);
        const files = await names();
        await backdate(complete[0], 2 * DAY);
        await backdate(files.at(-1)!, 3600_000);
        const r = await read();
        assert.equal(evidenceStatus(r), "critical");
        assert.match(
          reason(r, "stream"),
          /^critical: no client with application_name pg_receivewal streams from the primary \(pg_stat_replication\); slot wal_archive is inactive and holds [\d.]+ MiB of WAL/,
        );
        assert.match(
          reason(r, "newest"),
          /^critical: newest segment .*, written 60 min ago; the primary writes [0-9A-F]{24}, \d+ segment\(s\) further \(limit 15 min\)/,
        );
        assert.equal(
          reason(r, "continuity"),
          `critical: 1 segment(s) missing between ${complete[0]} and ${files.at(-1)} (first: ${
            complete[1]
          }): no point-in-time recovery across the gap`,
        );
        assert.match(
          reason(r, "retention"),
          /^warning: oldest segment .*, 2 days old: the directory reaches back less than the 7 days the seed keeps/,
        );
      },
    );

    await t.step("bad: a receiver streaming without the slot is critical", async () => {
      rw = await receive({ statusInterval: 1, dir: `${cluster.dir}/wal-no-slot` });
      const r = await read();
      assert.match(
        reason(r, "slot"),
        /^critical: application_name pg_receivewal .* streams without a replication slot, not wal_archive: the primary may remove WAL it has not received/,
      );
      await rw.stop();
    });

    await t.step(
      "unreachable: an unmounted directory is could-not-check and the stream is still judged",
      async () => {
        const r = await readWalStreaming("main", {
          ...deps,
          config: testConfig(cluster, (doc) => {
            doc.targets.main.wal_streaming = { slot: "wal_archive", directory: "/nonexistent/wal" };
          }),
        });
        assert.deepEqual(r.unchecked, [
          "directory: the WAL directory /nonexistent/wal: not found: is it mounted on the bot's host?",
        ]);
        // The stream was judged (the receiver the step before stopped may still be leaving
        // pg_stat_replication, so which finding it gives is not fixed, only that one is there).
        assert.ok(
          r.findings.some((f) => ["stream", "slot", "lag"].includes(f.check)),
          JSON.stringify(r.findings),
        );
        await cluster.primary.stop();
        const down = await read();
        assert.match(down.unchecked[0], /^stream: main\/primary \(127\.0\.0\.1:\d+\) does not answer/);
        assert.ok(down.findings.every((f) => f.check !== "stream"), "nothing claimed about the stream");
      },
    );

    await t.step("not configured: says which key to set", async () => {
      const r = await readWalStreaming("main", { ...deps, config: testConfig(cluster) });
      assert.equal(evidenceStatus(r), "not_configured");
      assert.equal(r.notConfigured, "not configured: set targets.main.wal_streaming");
    });
  } finally {
    for (const r of started) await r.stop();
    await deps.close();
  }
});
