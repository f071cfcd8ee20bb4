/**
 * How long the daily digest takes to build for 10 targets (the budget: under 2 s). The targets are
 * three real BISMAN databases on one throwaway cluster (with a streaming replica), each target with its own
 * dump folder (read to its end by pg_restore, as backups.dump_folder.read_check "full" does), Vault secrets
 * in the Vault stand-in, and restore-test history; every check of every target runs, concurrently.
 *
 *   deno task bench digest
 */

import { startCluster } from "../standins/cluster.ts";
import { startTestBot, testConfig } from "../tests/support/bot.ts";
import { VaultStandIn } from "../standins/vault.ts";
import {
  type FixtureTarget,
  prepareTarget,
  seedRestoreTests,
  targetDoc,
} from "../tests/jobs/_digest_fixture.ts";
import { buildDigest, countTargets, type Digest } from "../jobs/digest.ts";
import { renderDigest } from "../views/digest.ts";

const TARGETS = 10;
const DATABASES = 3;
const RUNS = 7;

export async function run(): Promise<void> {
  await using cluster = await startCluster({
    name: "bench-digest",
    replica: true,
    preload: ["pgaudit", "pg_stat_statements"],
  });
  const vault = await VaultStandIn.start();
  const dbs: FixtureTarget[] = [];
  for (let i = 0; i < DATABASES; i++) dbs.push(await prepareTarget(cluster, vault, `db${i}`));
  const targets: FixtureTarget[] = [];
  for (let i = 0; i < TARGETS; i++) {
    const base = dbs[i % DATABASES];
    targets.push(
      await prepareTarget(cluster, vault, `t${i}`, {
        shareDb: base.db,
        dumpFrom: `${base.dumps}/bisman_${base.name}.dump`,
      }),
    );
  }
  const config = testConfig(cluster, (doc) => {
    doc.targets = Object.fromEntries(
      targets.map((t, i) => [t.name, targetDoc(cluster, t, { replica: i % 2 === 0 })]),
    );
    doc.alerts = { lag_check: { enabled: false } };
  });
  const tb = await startTestBot(cluster, {
    config,
    env: { VAULT_ADDR: vault.addr, VAULT_TOKEN: vault.rootToken },
  });
  try {
    for (const t of targets) {
      await seedRestoreTests(tb.bot.deps.state, t.name, [{ ageDays: 20, restoreMs: 900 }, {
        ageDays: 2,
        restoreMs: 1000,
      }]);
    }
    const services = tb.bot.scheduler.services;
    let previous: Digest["snapshots"] | undefined;
    const times: number[] = [];
    let last!: Digest;
    for (let i = 0; i <= RUNS; i++) {
      const started = performance.now();
      last = await buildDigest(tb.bot.deps, { services, previous });
      const ms = performance.now() - started;
      previous = last.snapshots;
      if (i > 0) times.push(ms); // the first run opens the connection pools
      else console.log(`first digest (cold pools): ${ms.toFixed(0)} ms`);
    }
    times.sort((a, b) => a - b);
    const c = countTargets(last);
    const { main, thread } = renderDigest(last);
    const checks = last.targets.reduce((n, t) => n + t.sections.length, 0) + last.global.length;
    console.log(
      `digest of ${TARGETS} targets on ${DATABASES} databases (${checks} checks), ${RUNS} runs: ` +
        `min ${times[0].toFixed(0)} ms, median ${times[Math.floor(times.length / 2)].toFixed(0)} ms, ` +
        `max ${times.at(-1)!.toFixed(0)} ms (budget 2000 ms)`,
    );
    console.log(
      `targets: ${c.critical} critical, ${c.unknown} could not check, ${c.warning} warning, ${c.ok} ok; ` +
        `message ${main.blocks?.length} blocks, ${thread.length} thread replies`,
    );
    const slowest = last.targets.flatMap((t) =>
      t.sections.filter((s) => s.result.state === "failed").map((s) => `${t.target}/${s.key}`)
    );
    if (slowest.length) console.log(`sections that could not be checked: ${slowest.join(", ")}`);
    if (times[Math.floor(times.length / 2)] > 2000) {
      throw new Error("the digest took longer than 2 s (median)");
    }
  } finally {
    await tb.stop();
    await vault.stop();
  }
}

if (import.meta.main) await run();
