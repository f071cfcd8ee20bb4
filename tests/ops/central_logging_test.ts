import assert from "node:assert/strict";
import { startCluster, type TestCluster } from "../../standins/cluster.ts";
import { testConfig } from "../support/bot.ts";
import { testOpDeps } from "../support/op_deps.ts";
import { waitFor } from "../../standins/wait.ts";
import { SearchStandIn } from "../../standins/search.ts";
import { readCentralLogging } from "../../ops/central_logging.ts";
import { evidenceStatus } from "../../ops/_evidence.ts";

const PASSWORD = `es-test-${crypto.randomUUID()}`;
const env = (name: string) => ({ BISMAN_TEST_ES_PASSWORD: PASSWORD } as Record<string, string>)[name];

/**
 * What the seed's Fluent Bit does, done by the test: reads the server's real log files in its log_directory and
 * sends each line to the index with its %m time as @timestamp and the server's host as `hostname`.
 */
async function shipLog(dir: string, search: SearchStandIn, index: string, hostname: string): Promise<number> {
  const docs: Record<string, unknown>[] = [];
  for await (const e of Deno.readDir(dir)) {
    if (!e.name.endsWith(".log")) continue;
    for (const line of (await Deno.readTextFile(`${dir}/${e.name}`)).split("\n")) {
      // log_line_prefix "%m [%p] %q%u@%d ": 2026-12-07 00:14:32.387 UTC [123] …
      const m = /^(\d{4}-\d\d-\d\d) (\d\d:\d\d:\d\d\.\d{3}) UTC \[(\d+)\] (.*)$/.exec(line);
      if (m) docs.push({ "@timestamp": `${m[1]}T${m[2]}Z`, hostname, pid: Number(m[3]), message: m[4] });
    }
  }
  search.add(index, docs);
  return docs.length;
}

async function restart(cluster: TestCluster): Promise<void> {
  await cluster.primary.stop();
  await cluster.primary.start();
}

Deno.test("readCentralLogging() judges each server's log settings and the lines that reached the index", async (t) => {
  const logDir = `/tmp/bisman-pglog-${crypto.randomUUID().slice(0, 8)}`;
  await using cluster = await startCluster({
    name: "central-logging",
    conf: {
      logging_collector: "on",
      log_directory: logDir,
      log_filename: "postgresql-%Y-%m-%d.log",
      log_destination: "stderr",
    },
  });
  const search = SearchStandIn.start({ users: { "fluent-reader": PASSWORD } });
  const config = testConfig(cluster, (doc) => {
    doc.targets.main.central_logging = {
      log_directory: logDir,
      search: {
        url: search.url,
        index: "postgres-logs",
        username: "fluent-reader",
        password_env: "BISMAN_TEST_ES_PASSWORD",
      },
    };
  });
  const deps = await testOpDeps(cluster, { config });
  const read = () => readCentralLogging("main", deps, env);
  try {
    await t.step(
      "good: the files Fluent Bit tails, a parsable prefix, and this server's lines in the index",
      async () => {
        await cluster.primary.psql("do $$ begin raise log 'bisman-ops central logging test'; end $$");
        const shipped = await waitFor(async () => {
          search.deleteIndex("postgres-logs");
          const n = await shipLog(logDir, search, "postgres-logs", "127.0.0.1");
          return n > 0 && n;
        }, { what: "lines in the server's log file" });
        const r = await read();
        assert.equal(evidenceStatus(r), "ok", JSON.stringify(r, null, 1));
        assert.deepEqual(r.findings.map((f) => f.reason), [
          `logging_collector on, files ${logDir}/postgresql-%Y-%m-%d.log (stderr), log_line_prefix "%m [%p] %q%u@%d " has %m %p %u %d`,
          `${shipped} line(s) with hostname "127.0.0.1" in postgres-logs in the last 15 min`,
        ]);
        assert.match(
          r.source,
          new RegExp(`^server settings \\(pg_settings\\) and ${search.url} \\(_count in postgres-logs\\)$`),
        );
        const call = search.calls.at(-1)!;
        assert.equal(call.path, "/postgres-logs/_count");
        assert.deepEqual(call.body, {
          query: {
            bool: {
              filter: [
                { range: { "@timestamp": { gte: "now-15m" } } },
                { match_phrase: { hostname: "127.0.0.1" } },
              ],
            },
          },
        });
      },
    );

    await t.step(
      "bad: lines that stopped arriving, or an index that does not exist, name what is wrong",
      async () => {
        search.deleteIndex("postgres-logs");
        search.add("postgres-logs", [
          {
            "@timestamp": new Date(Date.now() - 3 * 3600_000).toISOString(),
            hostname: "127.0.0.1",
            message: "old",
          },
          { "@timestamp": new Date().toISOString(), hostname: "db-elsewhere", message: "another server" },
        ]);
        let r = await read();
        assert.equal(evidenceStatus(r), "warning");
        assert.match(
          r.findings[1].reason,
          /no line with hostname "127\.0\.0\.1" reached postgres-logs in the last 15 min \(1 in the last 24 h: the pipeline stalled/,
        );
        search.deleteIndex("postgres-logs");
        r = await read();
        assert.equal(evidenceStatus(r), "critical");
        assert.match(
          r.findings[1].reason,
          /the index postgres-logs does not exist \(404 index_not_found_exception\)/,
        );
      },
    );

    await t.step(
      "bad: settings Fluent Bit's tail input cannot use are named, each with its value",
      async () => {
        await cluster.primary.psql(
          "alter system set log_destination = 'csvlog'; alter system set log_line_prefix = '%t '; " +
            "alter system set log_filename = 'postgresql-%a.txt'",
        );
        await cluster.primary.reload();
        let r = await read();
        const reasons = r.findings.filter((f) => f.severity !== "ok").map((f) =>
          `${f.severity}: ${f.reason}`
        );
        assert.deepEqual(reasons.slice(0, 3), [
          'critical: log_destination is "csvlog": only stderr writes plain-text .log files (csvlog and jsonlog files end in .csv and .json)',
          `critical: log_filename "postgresql-%a.txt" does not end in .log: ${logDir}/*.log misses it`,
          'warning: log_line_prefix "%t " lacks %m %p %u %d, which the pipeline parses (expected %m %p %u %d)',
        ]);
        await cluster.primary.psql(
          "alter system set logging_collector = off; alter system set log_directory = 'log'",
        );
        await restart(cluster);
        await deps.targets.reset("main");
        r = await read();
        const dataDir = cluster.primary.dataDir;
        assert.match(
          r.findings[0].reason,
          /^logging_collector is off: the server writes no log files of its own/,
        );
        assert.equal(
          r.findings[1].reason,
          `log_directory is ${dataDir}/log; Fluent Bit reads ${logDir}/*.log`,
        );
        // A server whose logs live elsewhere is named in log_directories.
        const elsewhere = testConfig(cluster, (doc) => {
          doc.targets.main.central_logging = {
            log_directory: logDir,
            log_directories: { primary: `${dataDir}/log` },
          };
        });
        r = await readCentralLogging("main", { ...deps, config: elsewhere }, env);
        assert.ok(!r.findings.some((f) => /log_directory/.test(f.reason)), JSON.stringify(r.findings));
        await cluster.primary.psql("alter system reset all");
        await restart(cluster);
        await deps.targets.reset("main");
      },
    );

    await t.step(
      "unreachable: a refused password or a search cluster that does not answer is could-not-check, and the settings are still judged",
      async () => {
        const wrong = (name: string) => name === "BISMAN_TEST_ES_PASSWORD" ? "not-the-password" : undefined;
        let r = await readCentralLogging("main", deps, wrong);
        assert.equal(r.findings.length, 1, "the settings were judged");
        assert.deepEqual(r.unchecked, [
          `primary: lines with hostname "127.0.0.1" in postgres-logs: ${search.url} refused the credentials ` +
          `(401 security_exception: unable to authenticate user [fluent-reader] for REST request [/postgres-logs/_count])`,
        ]);
        assert.equal(evidenceStatus({ ...r, findings: [] }), "could_not_check");
        r = await readCentralLogging("main", deps, () => undefined);
        assert.deepEqual(r.unchecked, [
          "lines in postgres-logs: environment variable BISMAN_TEST_ES_PASSWORD is not set (targets.main.central_logging.search)",
        ]);
        await search.close();
        r = await read();
        assert.match(
          r.unchecked[0],
          new RegExp(
            `^primary: lines with hostname "127\\.0\\.0\\.1" in postgres-logs: ${search.url} does not answer`,
          ),
        );
        assert.ok(!JSON.stringify(r).includes(PASSWORD), "the password appears nowhere");
        await cluster.primary.stop();
        r = await read();
        assert.equal(evidenceStatus(r), "could_not_check");
        assert.match(r.unchecked[0], /^primary: main\/primary \(127\.0\.0\.1:\d+\) does not answer/);
      },
    );

    await t.step("not configured: says which key to set", async () => {
      const r = await readCentralLogging("main", { ...deps, config: testConfig(cluster) }, env);
      assert.equal(evidenceStatus(r), "not_configured");
      assert.equal(r.notConfigured, "not configured: set targets.main.central_logging");
    });
  } finally {
    await deps.close();
    await search.close();
    await Deno.remove(logDir, { recursive: true }).catch(() => {});
  }
});
