import assert from "node:assert/strict";
import { startCluster } from "../../standins/cluster.ts";
import { createTroublePanel } from "../../sandbox/trouble.ts";
import type { VaultStandIn } from "../../standins/vault.ts";

// The make-trouble panel on a real primary and streaming replica: "Stop the primary" stops it and starts it
// again while the replica is a standby; once the replica is promoted, "Pause replay" answers plainly (it once
// failed with HTTP 500 and psql's "recovery is not in progress") and the old primary stays stopped.
Deno.test({
  name: "trouble panel: stop and start the primary; after a promotion, pause replay and start answer plainly",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    await using cluster = await startCluster({ replica: true });
    const panel = createTroublePanel({
      cluster,
      vault: {} as VaultStandIn,
      dumpDir: "/nonexistent",
      subcommands: () => ["lag", "promote"],
      hooks: {},
    });
    try {
      const isUp = async () =>
        await Deno.stat(`${cluster.primary.dataDir}/postmaster.pid`).then(() => true, () => false);
      const label = () => panel.list().find((t) => t.id === "stop-primary")!.label;

      assert.equal(label(), "Stop the primary");
      assert.match(await panel.run("stop-primary", "U0ALICE"), /The primary is stopped/);
      assert.equal(await isUp(), false);
      assert.equal(label(), "Start the primary again");
      assert.match(await panel.run("stop-primary", "U0ALICE"), /The primary runs again/);
      assert.equal(await isUp(), true);
      assert.equal(label(), "Stop the primary");

      await panel.run("stop-primary", "U0ALICE");
      await cluster.replica!.psql("select pg_promote(true, 60)");
      assert.equal((await cluster.replica!.psql("select pg_is_in_recovery()")).trim(), "f");
      assert.equal(
        await panel.run("pause-replay", "U0ALICE"),
        "replica1 is no longer a standby since its promotion: it has no WAL replay to pause or resume.",
      );
      assert.match(await panel.run("stop-primary", "U0ALICE"), /would make two primaries: it stays stopped/);
      assert.equal(await isUp(), false, "the old primary is not started next to the promoted replica");
    } finally {
      await panel.stop();
    }
  },
});
