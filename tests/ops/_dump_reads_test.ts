import assert from "node:assert/strict";
import { startCluster } from "../../standins/cluster.ts";
import { waitFor } from "../../standins/wait.ts";
import { MAX_CONCURRENT_READS } from "../../ops/_dump_reads.ts";
import { OPS_CHANNEL, startTestBot, testConfig, USERS } from "../support/bot.ts";
import { pgDump, setAge } from "../support/dumps.ts";

const HOUR = 3600_000;
const TARGETS = ["main", "t2", "t3", "t4"];

/** The pg_restore runs a wrapper logged, as `start <pid> <args>` and `end <pid>` lines in order. */
async function runsIn(log: string): Promise<{ started: string[]; maxAtOnce: number }> {
  const lines = (await Deno.readTextFile(log).catch(() => "")).split("\n").filter(Boolean);
  let now = 0;
  let maxAtOnce = 0;
  const started: string[] = [];
  for (const l of lines) {
    if (l.startsWith("start ")) {
      started.push(l.split(" ").slice(2).join(" "));
      maxAtOnce = Math.max(maxAtOnce, ++now);
    } else if (l.startsWith("end ")) now--;
  }
  return { started, maxAtOnce };
}

Deno.test("ten people asking /bisman backups at once: each dump is read once, at most two reads at a time", async (t) => {
  await using cluster = await startCluster({ name: "dump-reads" });
  const src = await cluster.createDatabase("src");
  // Random text compresses badly: a dump of several MB, whose full read takes real disk and CPU time.
  await cluster.primary.psql(
    "create table clients(id int primary key, note text); " +
      "insert into clients select g, md5(g::text) || md5((g * 7)::text) from generate_series(1, 150000) g;",
    src,
  );
  const big = `${cluster.dir}/big.dump`;
  await pgDump(cluster, src, big);

  // One large folder per target: 400 older (small) files, and its own copy of the big dump as the newest.
  const folders: Record<string, string> = {};
  for (const target of TARGETS) {
    const dir = `${cluster.dir}/dumps_${target}`;
    await Deno.mkdir(dir);
    for (let i = 1; i <= 400; i++) {
      const f = `${dir}/bisman_${String(i).padStart(4, "0")}.dump`;
      await Deno.writeFile(f, new Uint8Array(1024));
      await setAge(f, (i + 1) * 24 * HOUR);
    }
    await Deno.copyFile(big, `${dir}/bisman_newest.dump`);
    await setAge(`${dir}/bisman_newest.dump`, HOUR);
    folders[target] = dir;
  }
  // Every pg_restore run is logged by a wrapper, from outside the bot.
  const log = `${cluster.dir}/pg_restore.log`;
  const wrapper = `${cluster.dir}/pg_restore_logged`;
  await Deno.writeTextFile(
    wrapper,
    `#!/bin/sh\necho "start $$ $*" >> "${log}"\n"${cluster.binDir}/pg_restore" "$@"\nrc=$?\necho "end $$" >> "${log}"\nexit $rc\n`,
  );
  await Deno.chmod(wrapper, 0o755);

  const config = testConfig(cluster, (doc) => {
    const main = doc.targets.main;
    doc.targets = {};
    for (const target of TARGETS) {
      doc.targets[target] = {
        ...structuredClone(main),
        backups: {
          dump_folder: {
            path: folders[target],
            pattern: "bisman_*.dump",
            retention_days: 0,
            read_check: "full",
          },
          tools: { pg_restore: wrapper },
        },
      };
    }
  });
  const tb = await startTestBot(cluster, { config });
  /** Sends /bisman backups as `user` and resolves with its final answer's text. */
  const backups = async (user: string): Promise<string> => {
    const url = tb.slack.responseUrl({ user, channel: OPS_CHANNEL });
    const res = await tb.command("backups", user, { response_url: url });
    assert.equal(res.status, 200);
    if (!/Working on/.test(String(res.body?.text))) return String(res.body?.text);
    const answer = await waitFor(
      () => tb.slack.responses.find((r) => r.url === url && !/Working on/.test(String(r.body.text))),
      { what: `${user}'s /bisman backups`, timeoutMs: 120_000 },
    );
    return JSON.stringify(answer.body);
  };
  const users = [USERS.alice, USERS.bob, USERS.carol, USERS.dave, USERS.erin];
  try {
    await t.step(
      "ten at once: one --list and one full read per target's newest dump, never more than two at a time",
      async () => {
        const answers = await Promise.all(
          Array.from({ length: 10 }, (_, i) => backups(users[i % users.length])),
        );
        for (const a of answers) {
          for (const target of TARGETS) assert.match(a, new RegExp(`${target}`), "every target answered");
          assert.match(a, /pg_restore read bisman_newest\.dump to its end/);
        }
        const runs = await runsIn(log);
        const lists = runs.started.filter((r) => r.startsWith("--list"));
        const fulls = runs.started.filter((r) => r.startsWith("-f /dev/null"));
        assert.equal(lists.length, TARGETS.length, runs.started.join("\n"));
        assert.equal(fulls.length, TARGETS.length, runs.started.join("\n"));
        assert.deepEqual(new Set(fulls).size, TARGETS.length, "each target's own file, once");
        assert.ok(runs.maxAtOnce <= MAX_CONCURRENT_READS, `${runs.maxAtOnce} pg_restore runs at once`);
        console.log(
          `10 × /bisman backups over ${TARGETS.length} folders of 401 files: ${runs.started.length} pg_restore runs, at most ${runs.maxAtOnce} at once`,
        );
      },
    );

    await t.step("a dump that changed is read again; the others are not", async () => {
      const before = (await runsIn(log)).started.length;
      await setAge(`${folders.t3}/bisman_newest.dump`, 2 * HOUR);
      await backups(USERS.alice);
      const after = (await runsIn(log)).started.slice(before);
      assert.equal(after.length, 2, after.join("\n"));
      for (const r of after) assert.ok(r.endsWith(`${folders.t3}/bisman_newest.dump`), r);
    });
  } finally {
    await tb.stop();
  }
});
