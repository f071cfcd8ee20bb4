import assert from "node:assert/strict";
import { startCluster } from "../../standins/cluster.ts";
import { testConfig } from "../support/bot.ts";
import { testOpDeps } from "../support/op_deps.ts";
import { waitFor } from "../../standins/wait.ts";
import { freePort } from "../../standins/ports.ts";
import {
  formatBytes,
  formatSeconds,
  readReplicationLag,
  receiverApplicationName,
  replicationLag,
} from "../../ops/replication_lag.ts";

Deno.test("replication_lag helpers format figures and read a receiver's application_name", () => {
  assert.equal(formatBytes(812), "812 B");
  assert.equal(formatBytes(1572864), "1.5 MiB");
  assert.equal(formatSeconds(185), "3 min 5 s");
  assert.equal(formatSeconds(4.25), "4.3 s");
  assert.equal(
    receiverApplicationName("user=postgres host=x fallback_application_name=replica sslmode=prefer"),
    "replica",
  );
  assert.equal(
    receiverApplicationName("application_name='my app' user=a fallback_application_name=walreceiver"),
    "my app",
  );
  assert.equal(receiverApplicationName(null), null);
});

Deno.test("replication_lag reports bytes and seconds from both ends, ignores an idle primary, and flags a missing replica", async (t) => {
  await using cluster = await startCluster({ name: "lag-op", replica: true });
  const replica = cluster.replica!;
  const config = testConfig(cluster, (doc) => {
    doc.thresholds = {
      lag: {
        bytes_warning: 1024 * 1024,
        bytes_critical: 512 * 1024 * 1024,
        seconds_warning: 2,
        seconds_critical: 600,
      },
    };
  });
  const deps = await testOpDeps(cluster, { config });
  const primary = cluster.primary.sql();
  try {
    await primary`create table lag_t (id serial primary key, pad text)`;
    await cluster.waitForReplay();

    await t.step("plan() names what is read; run() matches the replica to its walsender", async () => {
      const plan = await replicationLag.plan({ target: "main" }, deps);
      assert.match(plan.summary, /main \(1 replica/);
      const r = await replicationLag.run(plan, deps);
      assert.equal(r.replicas.length, 1);
      const x = r.replicas[0];
      assert.equal(x.replica, "replica1");
      assert.ok(x.sender, "found in pg_stat_replication");
      assert.equal(x.sender.applicationName, "replica");
      assert.equal(x.sender.state, "streaming");
      assert.equal(x.sender.syncState, "async");
      assert.match(x.sender.replayLsn ?? "", /^[0-9A-F]+\/[0-9A-F]+$/);
      assert.equal(x.view.reachable, true);
      assert.equal(x.view.inRecovery, true);
      assert.equal(x.view.receiver?.status, "streaming");
      assert.equal(x.view.receiver?.senderPort, cluster.primary.port);
      assert.equal(typeof x.lagBytes, "number");
      assert.equal(typeof x.lagSeconds, "number");
    });

    await t.step(
      "an idle primary raises nothing although the last replay grows older than the seconds threshold",
      async () => {
        await primary`insert into lag_t (pad) values ('one')`;
        await cluster.waitForReplay();
        const idle = await waitFor(async () => {
          const r = await readReplicationLag("main", deps);
          assert.equal(
            r.severity,
            "ok",
            `idle primary judged ${r.severity}: ${r.replicas[0].reasons.join("; ")}`,
          );
          const since = r.replicas[0].view.secondsSinceLastReplay ?? 0;
          return since > 2.5 ? r : undefined;
        }, { timeoutMs: 15_000, intervalMs: 250, what: "the last replay to be older than 2.5 s" });
        const x = idle.replicas[0];
        assert.equal(x.lagBytes, 0);
        assert.equal(x.reasons.length, 0);
        assert.ok(x.notes.some((n) => /idle/.test(n)), `notes say idle: ${x.notes.join("; ")}`);
      },
    );

    await t.step("paused replay while the primary writes: lag grows past both thresholds", async () => {
      await replica.psql("select pg_wal_replay_pause()");
      const lagging = await waitFor(async () => {
        await primary`insert into lag_t (pad) select repeat('x', 500) from generate_series(1, 2000)`;
        const r = await readReplicationLag("main", deps);
        const x = r.replicas[0];
        return (x.lagBytes ?? 0) > 1024 * 1024 && (x.lagSeconds ?? 0) > 2 ? r : undefined;
      }, { timeoutMs: 20_000, intervalMs: 300, what: "lag past 1 MiB and 2 s" });
      const x = lagging.replicas[0];
      assert.equal(lagging.severity, "warning");
      assert.ok(x.reasons.some((r) => /MiB behind \(warning at 1\.0 MiB\)/.test(r)), x.reasons.join("; "));
      assert.ok(x.reasons.some((r) => / s behind \(warning at 2\.0 s\)/.test(r)), x.reasons.join("; "));
      assert.ok(x.notes.some((n) => /paused/.test(n)));
      assert.equal(x.view.replayPaused, true);
      assert.equal(x.idle, false);
    });

    await t.step("resumed replay catches up and the report is ok again", async () => {
      await replica.psql("select pg_wal_replay_resume()");
      await cluster.waitForReplay();
      const r = await waitFor(async () => {
        const r = await readReplicationLag("main", deps);
        return r.severity === "ok" ? r : undefined;
      }, { timeoutMs: 15_000, what: "lag to recover" });
      assert.equal(r.replicas[0].lagBytes, 0);
    });

    await t.step("a configured replica that does not answer is critical", async () => {
      const deadPort = await freePort();
      const withGhost = testConfig(cluster, (doc) => {
        doc.targets.main.replicas.push({
          name: "ghost",
          host: "127.0.0.1",
          port: deadPort,
          user: "postgres",
          sslmode: "disable",
          connect_timeout_seconds: 1,
        });
      });
      const d2 = await testOpDeps(cluster, { config: withGhost });
      try {
        const r = await readReplicationLag("main", d2);
        assert.equal(r.severity, "critical");
        const ghost = r.replicas.find((x) => x.replica === "ghost")!;
        assert.equal(ghost.severity, "critical");
        assert.ok(ghost.reasons.some((x) => /does not answer/.test(x)), ghost.reasons.join("; "));
        assert.ok(ghost.reasons.some((x) => /absent from the primary's pg_stat_replication/.test(x)));
        assert.equal(r.replicas.find((x) => x.replica === "replica1")!.severity, "ok");
      } finally {
        await d2.close();
      }
    });

    await t.step(
      "a replica that answers but stopped streaming is critical: absent from pg_stat_replication",
      async () => {
        const conninfo = (await replica.psql("show primary_conninfo")).trim();
        await replica.psql("alter system set primary_conninfo = ''");
        await replica.reload();
        try {
          const r = await waitFor(async () => {
            const r = await readReplicationLag("main", deps);
            return r.replicas[0].sender === null ? r : undefined;
          }, { timeoutMs: 15_000, what: "the walsender to go away" });
          const x = r.replicas[0];
          assert.equal(x.severity, "critical");
          assert.ok(
            x.reasons.some((m) => /absent from the primary's pg_stat_replication/.test(m)),
            x.reasons.join("; "),
          );
        } finally {
          await replica.psql(`alter system set primary_conninfo = '${conninfo.replaceAll("'", "''")}'`);
          await replica.reload();
        }
        await waitFor(async () => (await readReplicationLag("main", deps)).severity === "ok", {
          timeoutMs: 20_000,
          what: "streaming to resume",
        });
      },
    );
  } finally {
    await deps.close();
  }
});
