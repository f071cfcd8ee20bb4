/**
 * Credential rotation time: one role, and `rotate all` with 20 roles sharing one Vault secret (as the seed
 * keeps them), each on a real cluster and the Vault stand-in through node-vault. Times plan() and run()
 * (ALTER with a SCRAM verifier, KV write with check-and-set, COMMIT, a fresh login to verify, the sessions
 * check on the primary and the replica).
 *
 *   deno task bench rotation
 */

import { startCluster } from "../standins/cluster.ts";
import { testConfig } from "../tests/support/bot.ts";
import { testOpDeps } from "../tests/support/op_deps.ts";
import { VaultStandIn } from "../standins/vault.ts";
import { VaultClient } from "../core/vault.ts";
import { rotateArgs, rotateCredentials } from "../ops/rotate_credentials.ts";
import { latencySummary } from "./_stats.ts";

const ROLES = 20;

export async function run(): Promise<void> {
  await using cluster = await startCluster({ name: "bench-rotation", replica: true });
  const vault = await VaultStandIn.start();
  const sql = cluster.primary.sql();
  const names = Array.from({ length: ROLES }, (_, i) => `bench_role_${String(i + 1).padStart(2, "0")}`);
  const data: Record<string, string> = {};
  for (const n of names) {
    await sql`create role ${sql(n)} login password ${sql.unsafe(`'${n}-initial'`)}`.simple();
    data[`${n}_password`] = `${n}-initial`;
  }
  vault.kvPut("bisman/db", data);
  await cluster.waitForReplay();
  const config = testConfig(cluster, (doc) => {
    doc.targets.main.roles = Object.fromEntries(
      names.map((n) => [n, { path: "bisman/db", key: `${n}_password` }]),
    );
  });
  const deps = await testOpDeps(cluster, { config, migrate: true });
  deps.vault = new VaultClient({ addr: vault.addr, token: vault.rootToken, secrets: deps.secrets });
  try {
    const time = async (role: string) => {
      const t0 = performance.now();
      const plan = await rotateCredentials.plan(rotateArgs.parse({ role }), deps);
      const t1 = performance.now();
      const result = await rotateCredentials.run(plan, deps);
      const t2 = performance.now();
      if (result.roles.some((r) => r.status !== "rotated" || !r.verified)) {
        throw new Error("rotation incomplete");
      }
      return { plan: t1 - t0, run: t2 - t1, total: t2 - t0 };
    };
    await time(names[0]); // warm-up: pools, JIT
    const one = [];
    for (let i = 0; i < 15; i++) one.push(await time(names[i % ROLES]));
    console.log(`rotate <role>, 15 rotations, plan + run:  ${latencySummary(one.map((x) => x.total))}`);
    console.log(`  of which plan():                        ${latencySummary(one.map((x) => x.plan))}`);
    console.log(`  of which run():                         ${latencySummary(one.map((x) => x.run))}`);
    const all = [];
    for (let i = 0; i < 3; i++) all.push(await time("all"));
    for (const [i, x] of all.entries()) {
      console.log(
        `rotate all (${ROLES} roles, one shared secret), run ${i + 1}: plan ${x.plan.toFixed(0)} ms, ` +
          `run ${x.run.toFixed(0)} ms (${(x.run / ROLES).toFixed(1)} ms a role), total ${
            x.total.toFixed(0)
          } ms`,
      );
    }
    console.log(`Vault versions written: ${vault.kvVersions("bisman/db") - 1}`);
  } finally {
    await deps.close();
    await vault.stop();
  }
}
