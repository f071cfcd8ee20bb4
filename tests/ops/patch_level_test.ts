import assert from "node:assert/strict";
import { startCluster } from "../../standins/cluster.ts";
import { testConfig } from "../support/bot.ts";
import { testOpDeps } from "../support/op_deps.ts";
import { serve } from "../../standins/_serve.ts";
import {
  forgetVersionsFeed,
  judgeVersion,
  loadVersionsFeed,
  parseVersionsFeed,
  readPatchLevel,
} from "../../ops/patch_level.ts";
import { evidenceStatus } from "../../ops/_evidence.ts";
import { postgresVersionsSchema } from "../../core/config_evidence.ts";

const FIXTURE = new URL("../fixtures/postgresql_versions.json", import.meta.url).pathname;
const recorded = JSON.parse(await Deno.readTextFile(FIXTURE)) as Record<string, unknown>[];
const majors = parseVersionsFeed(recorded);
/** The day these tests take as today for the pure judgements (the feed copy is from August 2026). */
const SEPT_2026 = new Date("2026-09-01T00:00:00Z");

/** Serves `body()` as PostgreSQL's versions feed and counts the requests. */
function startFeed(body: () => unknown = () => recorded) {
  let requests = 0;
  let status = 200;
  const server = serve(() => {
    requests++;
    return status === 200 ? Response.json(body()) : new Response("<html>Service Unavailable</html>", {
      status,
      headers: { "content-type": "text/html" },
    });
  });
  return {
    url: `${server.url}/versions.json`,
    requests: () => requests,
    fail: (s: number) => void (status = s),
    close: () => server.close(),
  };
}

Deno.test("parseVersionsFeed() reads the recorded feed and refuses another shape", () => {
  assert.deepEqual(majors.find((m) => m.major === "15"), {
    major: "15",
    latestMinor: 19,
    eolDate: "2027-11-11",
    supported: true,
  });
  assert.equal(majors.find((m) => m.major === "9.6")?.latestMinor, 24);
  assert.throws(() => parseVersionsFeed({ versions: [] }), /not in the expected shape \(top level/);
  assert.throws(() => parseVersionsFeed([{ major: "15" }]), /0\.latestMinor/);
});

Deno.test("judgeVersion() warns when a newer minor exists, naming both versions", () => {
  const f = judgeVersion("primary", 150010, majors, SEPT_2026, 180);
  assert.equal(f.severity, "warning");
  assert.match(
    f.reason,
    /runs 15\.10; 15\.19 is the newest 15\.x release: update \(9 minor release\(s\) behind\)/,
  );
});

Deno.test("judgeVersion() is critical for a major past its end of life or marked unsupported", () => {
  const thirteen = judgeVersion("replica1", 130023, majors, SEPT_2026, 180);
  assert.equal(thirteen.severity, "critical");
  assert.match(
    thirteen.reason,
    /runs 13\.23: PostgreSQL 13 is no longer supported \(end of life 2025-11-13\)/,
  );
  // The copy still says 14 is supported; its end of life has passed by December 2026 all the same.
  const fourteen = judgeVersion("primary", 140024, majors, new Date("2026-12-07T00:00:00Z"), 180);
  assert.equal(fourteen.severity, "critical");
  assert.match(fourteen.reason, /end of life 2026-11-12/);
  assert.equal(judgeVersion("old", 90624, majors, SEPT_2026, 180).severity, "critical");
});

Deno.test("judgeVersion() passes the newest minor, and warns when its major's end of life is near", () => {
  const ok = judgeVersion("primary", 150019, majors, SEPT_2026, 180);
  assert.equal(ok.severity, "ok");
  assert.match(ok.reason, /runs 15\.19, the newest 15\.x release; 15 is supported until 2027-11-11/);
  const near = judgeVersion("primary", 140024, majors, SEPT_2026, 180);
  assert.equal(near.severity, "warning");
  assert.match(near.reason, /end of life is 2026-11-12 \(72 days\): plan the major upgrade/);
  const unknown = judgeVersion("primary", 190001, majors, SEPT_2026, 180);
  assert.equal(unknown.severity, "warning");
  assert.match(unknown.reason, /does not list major 19/);
});

Deno.test("readPatchLevel() reads each server's server_version_num and judges it against the feed", async (t) => {
  await using cluster = await startCluster({ name: "patch-level", replica: true });
  const feed = startFeed();
  const versionNum = Number((await cluster.primary.psql("show server_version_num")).trim());
  const minor = versionNum % 10000;
  const major = String(Math.floor(versionNum / 10000));
  // A fixed today, so the judgement does not change as the recorded copy ages (the feed's dates are real).
  const today = new Date("2026-12-07T00:00:00Z");
  let now = today;
  const deps = await testOpDeps(cluster, {
    config: testConfig(cluster, (doc) => {
      doc.checklist = { postgres_versions: { url: feed.url, cache_hours: 24 } };
    }),
    now: () => now,
  });
  try {
    forgetVersionsFeed();
    await t.step("good: every server runs the newest minor the feed knows", async () => {
      const r = await readPatchLevel("main", deps);
      assert.equal(evidenceStatus(r), "ok", JSON.stringify(r));
      assert.deepEqual(r.findings.map((f) => f.check), ["primary", "replica1"]);
      assert.match(r.findings[0].reason, new RegExp(`runs ${major}\\.${minor}`));
      assert.equal(r.source, `PostgreSQL versions feed: ${feed.url}`);
    });

    await t.step("the feed is read once a day: later checks use the cached copy", async () => {
      const before = feed.requests();
      await Promise.all([readPatchLevel("main", deps), readPatchLevel("main", deps)]);
      assert.equal(feed.requests(), before, "answered from the cache");
      now = new Date(now.getTime() + 25 * 3600_000);
      await Promise.all([readPatchLevel("main", deps), readPatchLevel("main", deps)]);
      assert.equal(feed.requests(), before + 1, "a day later: one request for both checks");
    });

    await t.step("bad: a newer minor in the feed is a warning naming both versions", async () => {
      forgetVersionsFeed();
      // The recorded copy as the next minor release will make it: one more minor of the server's major.
      const next = recorded.map((e) => e.major === major ? { ...e, latestMinor: String(minor + 1) } : e);
      const bumped = startFeed(() => next);
      const r = await readPatchLevel("main", {
        ...deps,
        config: {
          ...deps.config,
          checklist: {
            ...deps.config.checklist,
            postgres_versions: postgresVersionsSchema.parse({ url: bumped.url }),
          },
        },
      });
      await bumped.close();
      assert.equal(evidenceStatus(r), "warning");
      assert.match(
        r.findings[0].reason,
        new RegExp(
          `runs ${major}\\.${minor}; ${major}\\.${minor + 1} is the newest ${major}\\.x release: update`,
        ),
      );
    });

    await t.step("bad: a major past its end of life is critical", async () => {
      forgetVersionsFeed();
      const eol = recorded.find((e) => e.major === major)!.eolDate as string;
      now = new Date(`${eol}T12:00:00Z`);
      const r = await readPatchLevel("main", deps);
      assert.equal(evidenceStatus(r), "critical");
      assert.match(
        r.findings[0].reason,
        new RegExp(`PostgreSQL ${major} is no longer supported \\(end of life ${eol}\\)`),
      );
      now = today;
    });

    await t.step("unreachable: no feed and no local copy is could-not-check, never ok", async () => {
      forgetVersionsFeed();
      feed.fail(503);
      const r = await readPatchLevel("main", deps);
      assert.equal(evidenceStatus(r), "could_not_check");
      assert.deepEqual(r.findings, []);
      assert.deepEqual(r.unchecked, [`${feed.url} answered HTTP 503`]);
    });

    await t.step("unreachable: the local copy is used, and the evidence says so", async () => {
      forgetVersionsFeed();
      const cfg = postgresVersionsSchema.parse({ url: feed.url, offline_copy: FIXTURE });
      const f = await loadVersionsFeed(cfg, new Date());
      assert.match(
        f.from,
        /^the local copy .*postgresql_versions\.json, written \d{4}-\d\d-\d\d \(.* answered HTTP 503\)$/,
      );
      const r = await readPatchLevel("main", {
        ...deps,
        config: { ...deps.config, checklist: { ...deps.config.checklist, postgres_versions: cfg } },
      });
      assert.equal(evidenceStatus(r), "ok");
      assert.match(r.source, /the local copy/);
      // Not cached: the next check asks the URL again.
      const before = feed.requests();
      await loadVersionsFeed(cfg, new Date());
      assert.equal(feed.requests(), before + 1);
    });

    await t.step("unreachable: a server that does not answer is listed, the others are judged", async () => {
      forgetVersionsFeed();
      feed.fail(200);
      await cluster.replica!.stop();
      const r = await readPatchLevel("main", deps);
      assert.equal(evidenceStatus(r), "could_not_check");
      assert.deepEqual(r.findings.map((f) => [f.check, f.severity]), [["primary", "ok"]]);
      assert.match(r.unchecked[0], /^replica1: main\/replica1 \(127\.0\.0\.1:\d+\) does not answer/);
    });
  } finally {
    await deps.close();
    await feed.close();
  }
});
