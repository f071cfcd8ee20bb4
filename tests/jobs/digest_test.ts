import assert from "node:assert/strict";
import { startCluster } from "../../standins/cluster.ts";
import { waitFor } from "../../standins/wait.ts";
import { freePort } from "../../standins/ports.ts";
import { OPS_CHANNEL, startTestBot, testConfig, USERS } from "../support/bot.ts";
import { connectAs } from "../support/bisman_schema.ts";
import { VaultStandIn } from "../../standins/vault.ts";
import type { StoredMessage } from "../../standins/slack.ts";
import { downDoc, HOUR, prepareTarget, seedRestoreTests, targetDoc } from "./_digest_fixture.ts";
import { buildDigest, type Digest, type DigestCheck, type TargetDigest } from "../../jobs/digest.ts";
import { renderDigest } from "../../views/digest.ts";
import { OpsError } from "../../core/errors.ts";
import { readRuns } from "../../jobs/run_store.ts";
import { readFreeze } from "../../gate/store.ts";

/** Every mrkdwn text of a message, joined. */
function textOf(m: { blocks?: unknown[] }): string {
  return JSON.stringify(m.blocks ?? []).replace(/\\n/g, "\n");
}

/** The lines of one target's section(s) in a posted digest. */
function targetSection(m: StoredMessage, target: string): string {
  const texts = (m.blocks as { type: string; text?: { text: string } }[])
    .filter((b) => b.type === "section" && b.text)
    .map((b) => b.text!.text);
  const start = texts.findIndex((t) => t.startsWith(`*${target}*`));
  assert.ok(start >= 0, `a section for ${target} in ${texts.join("\n---\n")}`);
  const out = [texts[start]];
  for (const t of texts.slice(start + 1)) {
    if (/^\*[a-z_0-9]+\*/.test(t)) break;
    out.push(t);
  }
  return out.join("\n");
}

function assertWithinSlackLimits(blocks: unknown[]): void {
  assert.ok(blocks.length <= 50, `${blocks.length} blocks`);
  for (const b of blocks as { type: string; text?: { text: string } }[]) {
    if (b.type === "section" && b.text) {
      assert.ok(b.text.text.length <= 3000, "section under 3,000 characters");
    }
  }
}

Deno.test("digest shows seeded problems as warning or critical, healthy targets as ok, and an unreachable target as could not check", async (t) => {
  await using cluster = await startCluster({
    name: "digest",
    replica: true,
    preload: ["pgaudit", "pg_stat_statements"],
  });
  const vault = await VaultStandIn.start();
  const healthy = await prepareTarget(cluster, vault, "healthy");
  const problems = await prepareTarget(cluster, vault, "problems", {
    dumpAgeMs: 60 * HOUR,
    credentialAgeDays: 120,
  });
  const downPort = await freePort();
  const config = testConfig(cluster, (doc) => {
    doc.targets = {
      healthy: targetDoc(cluster, healthy),
      problems: targetDoc(cluster, problems, { replica: true, restoreTest: false }),
      down: downDoc(downPort),
    };
    doc.thresholds = { lag: { bytes_warning: 1024 * 1024, seconds_warning: 2 } };
    doc.alerts = { lag_check: { enabled: false } };
  });
  const tb = await startTestBot(cluster, {
    config,
    env: { VAULT_ADDR: vault.addr, VAULT_TOKEN: vault.rootToken },
  });
  const replicaSql = cluster.replica!.sql(problems.db);
  const primaryProblems = cluster.primary.sql(problems.db);
  // The set-up's own statements (the bot's state database, created just now, took over a second on a busy
  // machine) are not what the healthy target's slow-query line is about: start its statistics here.
  await cluster.primary.sql(healthy.db)`select pg_stat_statements_reset()`;
  try {
    await seedRestoreTests(tb.bot.deps.state, "healthy", [
      { ageDays: 33, restoreMs: 1000 },
      { ageDays: 3, restoreMs: 1200 },
    ]);
    // A detection finding: the application's role writing from a console, without app context.
    const app = await connectAs(cluster, problems.db, "bisman_app");
    await app`update clients set country = 'KZ' where id = 2`;
    await app.end();
    // A lagging replica: replay paused while the primary writes.
    await cluster.waitForReplay();
    await cluster.replica!.psql("select pg_wal_replay_pause()");
    await primaryProblems`create table lag_pad (id serial primary key, pad text)`;
    await primaryProblems`insert into lag_pad (pad) select repeat('y', 500) from generate_series(1, 5000)`;
    await waitFor(async () => {
      await primaryProblems`insert into lag_pad (pad) values ('z')`;
      const [r] =
        await replicaSql`select extract(epoch from now() - pg_last_xact_replay_timestamp())::float8 as s`;
      return r.s > 3;
    }, { timeoutMs: 15_000, intervalMs: 500, what: "the paused replica to fall 3 s behind" });

    let digest!: StoredMessage;
    await t.step(
      "/bisman digest posts one message in the ops channel, recorded as a run of the digest job",
      async () => {
        const res = await tb.command("digest");
        assert.equal(res.status, 200);
        digest = await waitFor(
          () =>
            tb.slack.messages.find((m) => m.channel === OPS_CHANNEL && /^Daily digest/.test(m.text ?? "")),
          { timeoutMs: 20_000, what: "the digest message" },
        );
        assertWithinSlackLimits(digest.blocks!);
        const runs = await waitFor(async () => {
          const r = await readRuns(tb.bot.deps.state, "digest");
          return r[0]?.outcome === "ok" ? r : undefined;
        }, { what: "the digest run record" });
        assert.equal(runs[0].trigger, "manual");
        assert.equal(runs[0].invoker, USERS.alice);
        assert.match(runs[0].summary ?? "", /3 target\(s\): 1 critical, 1 could not check, 0 warning, 1 ok/);
        assert.equal(tb.slack.messages.filter((m) => /^Daily digest/.test(m.text ?? "")).length, 1);
      },
    );

    await t.step("targets come worst first: problems, then down, then healthy", () => {
      const order = ["problems", "down", "healthy"].map((n) => textOf(digest).indexOf(`*${n}*`));
      assert.ok(order.every((i) => i >= 0) && order[0] < order[1] && order[1] < order[2], String(order));
    });

    await t.step("each seeded problem is a warning or critical line", () => {
      const s = targetSection(digest, "problems");
      assert.match(s, /\*problems\*.*:red_circle: critical/);
      assert.match(s, /:red_circle: critical \*Backups\*: newest dump age: .*2\.5 days/);
      assert.match(
        s,
        /:(red_circle: critical|large_yellow_circle: warning) \*Replication lag\*: replica1 .*behind/,
      );
      assert.match(s, /:red_circle: critical \*Credential ages\*: bisman_app is 120 days old/);
      assert.match(
        s,
        /:(red_circle: critical|large_yellow_circle: warning) \*Audit anomalies and security events\*: .*bisman_app/,
      );
      assert.match(
        s,
        /:heavy_minus_sign: not configured \*Last restore test\*: restore tests are not configured/,
      );
      // Worst first: no warning line comes before a critical one.
      const lines = s.split("\n").slice(1);
      const firstWarning = lines.findIndex((l) => l.includes(":large_yellow_circle:"));
      const lastCritical = lines.findLastIndex((l) => l.includes(":red_circle:"));
      assert.ok(firstWarning === -1 || lastCritical < firstWarning, lines.join("\n"));
    });

    await t.step(
      "the healthy target is ok on every line it checked, with the restore test's duration and trend",
      () => {
        const s = targetSection(digest, "healthy");
        assert.match(s, /\*healthy\*.*:large_green_circle: ok/);
        assert.doesNotMatch(s, /yellow_circle|red_circle|white_circle/);
        // It has no replica: nothing was looked at, so the line says so instead of "ok".
        assert.match(s, /:heavy_minus_sign: not configured \*Replication lag\*: no replicas configured/);
        assert.doesNotMatch(s, /ok \*Replication lag\*/);
        // The sections whose source this fixture does not configure say so, and are not counted as ok.
        for (const title of ["Network policies", "WAF rules", "WAL streaming", "Centralized logging"]) {
          assert.match(s, new RegExp(`:heavy_minus_sign: not configured \\*${title}\\*: `), title);
        }
        for (
          const title of [
            "Backups",
            "Last restore test",
            "Connections",
            "Slow queries",
            "Autovacuum",
            "Credential ages",
            "Audit anomalies and security events",
            "Security patches",
          ]
        ) {
          assert.match(s, new RegExp(`:large_green_circle: ok \\*${title}\\*`), title);
        }
        assert.match(s, /Last restore test\*: passed .* restored in 1 s, \+20% vs the 1 before/);
      },
    );

    await t.step("the unreachable target says could not check, once, and the rest was still posted", () => {
      const s = targetSection(digest, "down");
      assert.match(s, /\*down\*.*: :white_circle: could not check\n/);
      assert.match(
        s,
        /:white_circle: could not check: down\/primary \(127\.0\.0\.1:\d+\) does not answer: .*\(Replication lag, Connections, Slow queries, Autovacuum, Audit anomalies and security events, Security patches\)/,
      );
      // What needs no server is still judged: the config names no backup source and maps no roles.
      assert.match(
        s,
        /:heavy_minus_sign: not configured \*Backups\*: backup sources: no backup source is configured/,
      );
      assert.match(
        s,
        /:heavy_minus_sign: not configured \*Credential ages\*: no rotatable roles are mapped for this target/,
      );
      assert.doesNotMatch(s, /ok \*Credential ages\*/);
      assert.equal(s.match(/does not answer/g)?.length, 1, "the unreachable primary is said once");
      const text = textOf(digest);
      assert.match(text, /\*Freeze\*: destructive actions are not frozen/);
      assert.match(text, /\*Open approvals\*: no open requests/);
      assert.match(text, /\*Alert threads still firing\*: no alert is firing/);
    });

    await t.step("a freeze shows in the digest; /bisman digest preview answers only the asker", async () => {
      const callsBefore = tb.slack.messages.length;
      await tb.command('freeze "maintenance window"', USERS.bob);
      await waitFor(async () => (await readFreeze(tb.bot.deps.state)).frozen, { what: "the freeze" });
      const res = await tb.command("digest preview healthy");
      assert.equal(res.status, 200);
      const reply = await waitFor(
        () => tb.slack.responses.map((r) => r.body).find((b) => /Daily digest/.test(String(b.text))),
        { timeoutMs: 20_000, what: "the preview" },
      );
      assert.equal(reply.response_type, "ephemeral");
      assert.match(
        textOf(reply as { blocks?: unknown[] }),
        /:large_yellow_circle: warning \*Freeze\*: destructive actions are frozen .*maintenance window/,
      );
      assert.equal(
        tb.slack.messages.slice(callsBefore).filter((m) => /^Daily digest/.test(m.text ?? "")).length,
        0,
        "the preview posted nothing in the channel",
      );
    });

    await t.step(
      "buildDigest() says not available, could not check or timed out, never ok, for checks that did not run",
      async () => {
        const deps = {
          ...tb.bot.deps,
          config: {
            ...tb.bot.deps.config,
            digest: { ...tb.bot.deps.config.digest, check_timeout_seconds: 1 },
          },
        };
        const checks: DigestCheck[] = [
          {
            key: "absent",
            title: "Absent",
            scope: "target",
            unavailable: () => "not in this build",
            run: () => Promise.resolve([]),
          },
          {
            key: "broken",
            title: "Broken",
            scope: "target",
            run: () => Promise.reject(new OpsError("step_failed", "permission denied for pg_stat_activity")),
          },
          { key: "hung", title: "Hung", scope: "target", run: () => new Promise(() => {}) },
          {
            key: "fine",
            title: "Fine",
            scope: "target",
            run: () => Promise.resolve([{ status: "ok", text: "all good" }]),
          },
        ];
        const d = await buildDigest(deps, { checks, targets: ["healthy"] });
        assert.ok(d.ms < 3000, `bounded by the timeout: ${d.ms} ms`);
        const text = textOf(renderDigest(d).main);
        assert.match(text, /:heavy_minus_sign: not available: Absent/);
        assert.match(text, /Not available: Absent: not in this build/);
        assert.match(
          text,
          /:white_circle: could not check \*Broken\*: could not check: permission denied for pg_stat_activity/,
        );
        assert.match(text, /:white_circle: could not check \*Hung\*: could not check: timed out after 1 s/);
        assert.match(text, /:large_green_circle: ok \*Fine\*: all good/);
        assert.match(
          text,
          /\*healthy\*.*: :white_circle: could not check/,
          "the target is not shown as fine",
        );
      },
    );
  } finally {
    await cluster.replica!.psql("select pg_wal_replay_resume()").catch(() => undefined);
    await tb.stop();
    await vault.stop();
  }
});

function fakeTarget(name: string, lines: number): TargetDigest {
  return {
    target: name,
    sections: [{
      key: "x",
      title: "Check",
      result: {
        state: "checked",
        status: "warning",
        lines: Array.from(
          { length: lines },
          (_, i) => ({ status: "warning" as const, text: `finding ${i} `.repeat(8) }),
        ),
      },
    }],
  };
}

function fakeDigest(targets: TargetDigest[], inlineTargets = 10): Digest {
  return {
    generatedAt: new Date(),
    since: new Date(Date.now() - 86_400_000),
    global: [],
    targets,
    snapshots: {},
    ms: 5,
    inlineTargets,
  };
}

Deno.test("renderDigest() keeps 10 targets in one message and moves more to its thread, within Slack's limits", () => {
  const ten = renderDigest(fakeDigest(Array.from({ length: 10 }, (_, i) => fakeTarget(`t${i}`, 12))));
  assert.equal(ten.thread.length, 0);
  assertWithinSlackLimits(ten.main.blocks!);
  for (let i = 0; i < 10; i++) assert.match(textOf(ten.main), new RegExp(`\\*t${i}\\*`));

  const many = renderDigest(fakeDigest(Array.from({ length: 60 }, (_, i) => fakeTarget(`t${i}`, 40))));
  assertWithinSlackLimits(many.main.blocks!);
  assert.match(textOf(many.main), /Details for each target are in this message's thread/);
  assert.equal(many.thread.length, 60);
  for (const r of many.thread) assertWithinSlackLimits(r.blocks!);
  // A target with more lines than one section holds is split over several, none cut.
  assert.ok(many.thread[0].blocks!.length > 1);
  assert.match(textOf(many.thread[0]), /finding 39/);
});
