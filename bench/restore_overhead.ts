/**
 * The bot's restore test against a bare `pg_restore -j <N>` of the same dump into a fresh database, in one
 * run, on a dump of a few hundred thousand rows (clients, invoices, payment_requests, payments). The bot's
 * test adds `pg_restore --list`, the marker, three verification counts on the restored database and on the
 * source, the drop and its history rows; the target is an overhead ratio of at most 1.10.
 *
 *   deno task bench restore_overhead        (ROWS_SCALE=2 doubles the rows, JOBS=4 sets -j, ROUNDS=7)
 */

import { startCluster, type TestCluster } from "../standins/cluster.ts";
import { testConfig } from "../tests/support/bot.ts";
import { primaryConnArgs, withSampleRestoreTest } from "../tests/support/dumps.ts";
import { testOpDeps } from "../tests/support/op_deps.ts";
import { applyTargetSql } from "../tests/support/bisman_schema.ts";
import { planRestoreTest, runRestoreTest } from "../ops/restore_test.ts";
import { humanBytes } from "../ops/_findings.ts";

const ROUNDS = Number(Deno.env.get("ROUNDS") ?? "7");

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

async function must(cluster: TestCluster, cmd: string[]): Promise<void> {
  const r = await cluster.run(cmd);
  if (r.code !== 0) throw new Error(`${cmd[0]} failed: ${r.stderr}`);
}

export async function run(): Promise<void> {
  const scale = Number(Deno.env.get("ROWS_SCALE") ?? "1");
  const jobs = Number(Deno.env.get("JOBS") ?? "2");
  const rows = {
    clients: 100_000 * scale,
    invoices: 100_000 * scale,
    payment_requests: 200_000 * scale,
    payments: 200_000 * scale,
  };
  await using cluster = await startCluster({ name: "bench-restore" });
  const src = await cluster.createDatabase("bisman");
  const srcSql = cluster.primary.sql(src);
  let t = performance.now();
  await applyTargetSql(srcSql, { parts: ["sample_schema", "audit"], sample: true, rows });
  const total = Object.values(rows).reduce((a, b) => a + b, 0);
  console.log(
    `seeded ${total.toLocaleString("en")} rows in ${((performance.now() - t) / 1000).toFixed(1)} s`,
  );

  const dumps = `${cluster.dir}/dumps`;
  await Deno.mkdir(dumps);
  const file = `${dumps}/bisman_bench.dump`;
  const conn = primaryConnArgs(cluster);
  t = performance.now();
  await must(cluster, ["pg_dump", "-Fc", ...conn, "-f", file, src]);
  console.log(
    `pg_dump -Fc: ${humanBytes((await Deno.stat(file)).size)} in ${
      ((performance.now() - t) / 1000).toFixed(1)
    } s`,
  );

  const config = testConfig(cluster, (doc) =>
    withSampleRestoreTest(doc, {
      cluster,
      src,
      dumps,
      serverPort: cluster.primary.port,
      restoreTest: { allow_on_primary: true, jobs, compare_with: "primary" },
    }));
  const deps = await testOpDeps(cluster, { config, migrate: true });
  try {
    const bare: number[] = [];
    const bot: number[] = [];
    const botRestore: number[] = [];
    // A warm-up round of each is not counted.
    const bareRun = async (round: number): Promise<number> => {
      const db = `bare_${round}`;
      const started = performance.now();
      await must(cluster, ["createdb", ...conn, "-T", "template0", db]);
      await must(cluster, [
        "pg_restore",
        "-j",
        String(jobs),
        "--exit-on-error",
        "--no-owner",
        "--no-privileges",
        ...conn,
        "-d",
        db,
        file,
      ]);
      const ms = performance.now() - started;
      await must(cluster, ["dropdb", ...conn, db]);
      return ms;
    };
    const botRun = async () => {
      const plan = await planRestoreTest({ target: "main" }, deps);
      const phases: Record<string, number> = {};
      const result = await runRestoreTest(plan, deps, {
        onProgress: (p) => (phases[p.phase] ??= p.elapsedMs),
      });
      if (!result.passed) throw new Error(`the bot's restore test failed: ${JSON.stringify(result.error)}`);
      return { result, phases };
    };
    // Each timed run starts after a checkpoint (the previous restore's dirty pages are not its cost), and
    // the order alternates between rounds, so neither side always runs second.
    const checkpoint = () => must(cluster, ["psql", ...conn, "-X", "-q", "-c", "checkpoint", "postgres"]);
    for (let round = 0; round <= ROUNDS; round++) {
      let bareMs = 0;
      let bot_: Awaited<ReturnType<typeof botRun>> | undefined;
      for (const side of round % 2 ? ["bare", "bot"] : ["bot", "bare"]) {
        await checkpoint();
        if (side === "bare") bareMs = await bareRun(round);
        else bot_ = await botRun();
      }
      const { result, phases } = bot_!;
      const label = round === 0 ? "warm-up" : `round ${round}`;
      console.log(
        `${label}: bare createdb + pg_restore -j ${jobs} ${(bareMs / 1000).toFixed(2)} s; bot restore test ${
          (result.totalMs / 1000).toFixed(2)
        } s (create + pg_restore ${
          (result.restoreMs! / 1000).toFixed(2)
        } s, ${result.objectsTotal} objects, ${humanBytes(result.restoredBytes ?? 0)} restored)`,
      );
      const marks = Object.entries(phases).map(([k, v]) => `${k} at ${(v / 1000).toFixed(2)} s`).join(", ");
      console.log(`  phases: ${marks}, done at ${(result.totalMs / 1000).toFixed(2)} s`);
      if (round === 0) continue;
      bare.push(bareMs);
      bot.push(result.totalMs);
      botRestore.push(result.restoreMs!);
    }
    const ratio = median(bot) / median(bare);
    const perRound = bot.map((b, i) => b / bare[i]);
    console.log(
      `median over ${ROUNDS} rounds: bare ${(median(bare) / 1000).toFixed(2)} s, bot ${
        (median(bot) / 1000).toFixed(2)
      } s ` +
        `(its create + pg_restore alone ${(median(botRestore) / 1000).toFixed(2)} s)`,
    );
    console.log(
      `overhead ratio (bot restore test / bare pg_restore, medians): ${ratio.toFixed(3)} (target ≤ 1.10) ${
        ratio <= 1.1 ? "OK" : "ABOVE TARGET"
      }; per round ${perRound.map((r) => r.toFixed(3)).join(", ")} (median ${median(perRound).toFixed(3)})`,
    );
  } finally {
    await deps.close();
  }
}

if (import.meta.main) await run();
