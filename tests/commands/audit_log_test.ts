import assert from "node:assert/strict";
import { startCluster } from "../../standins/cluster.ts";
import { startTestBot, TEST_SIGNING_KEY, testConfig, USERS } from "../support/bot.ts";
import { ask } from "../support/gate.ts";
import { waitFor } from "../../standins/wait.ts";
import { chainHash, rowContent, verifyExport } from "../../core/audit.ts";
import { csvField, toCsv } from "../../views/csv.ts";
import { runCli } from "../support/cli_process.ts";

/** Runs the break-glass CLI as a subprocess with exactly `env`. */
function cli(env: Record<string, string>, ...args: string[]) {
  return runCli({ HOME: Deno.env.get("HOME") ?? "/root", ...env }, args);
}

Deno.test("csvField() quotes what CSV needs and defuses spreadsheet formulas", () => {
  assert.equal(csvField('say "hi", bob'), '"say ""hi"", bob"');
  assert.equal(csvField("=HYPERLINK(1)"), "'=HYPERLINK(1)");
  assert.equal(csvField({ a: 1 }), '"{""a"":1}"');
  assert.equal(csvField(null), "");
  assert.equal(toCsv(["a", "b"], [[1, "x\ny"]]), 'a,b\r\n1,"x\ny"\r\n');
});

Deno.test("/bisman audit-log: search with a CSV in a direct message, export, and offline verification of an export", async (t) => {
  await using cluster = await startCluster({ name: "auditlog" });
  const stateDb = await cluster.createDatabase("alstate");
  const dir = await Deno.makeTempDir({ prefix: "bisman-auditlog-test-" });
  const tb = await startTestBot(cluster, {
    stateDb,
    config: testConfig(cluster, (d) => {
      d.access.cli_operators = { alice: USERS.alice };
    }),
  });
  // alice's own login on the state database: the CLI's identity (the bot's migration made bisman_cli).
  await cluster.primary.psql(`create role alice login password 'alice-pw' in role bisman_cli`);
  const env = {
    BISMAN_CLI_DATABASE_URL: cluster.primary.url({ database: stateDb, user: "alice", password: "alice-pw" }),
  };
  try {
    for (let i = 0; i < 45; i++) {
      await tb.bot.deps.audit.append({
        actor: USERS.carol,
        action: "test.fixture",
        target: i % 2 ? "main" : undefined,
        outcome: "ok",
        details: { i, note: `row, "quoted" ${i}` },
      });
    }
    await ask(tb, "help", USERS.bob);

    await t.step(
      "a search narrows by actor, action (or prefix), target and time, newest first, ephemeral",
      async () => {
        const r = await ask(
          tb,
          "audit-log actor=U0CAROL action=test.fixture target=main since=1h",
          USERS.bob,
        );
        assert.equal(r.visibility, "ephemeral");
        assert.match(
          r.text,
          /^audit log: 22 row\(s\) \(actor=U0CAROL action=test\.fixture target=main since=1h\)/,
        );
        const lines = r.text.split("\n").slice(1);
        assert.match(lines[0], /^#\d+ .* U0CAROL test\.fixture main ok \{"i":43,/);
        const prefix = await ask(tb, "audit-log action=command.* since=1h", USERS.bob);
        assert.match(prefix.text, /command\.received/);
        for (const line of prefix.text.split("\n").slice(1)) assert.match(line, / command\.received /);
        assert.match((await ask(tb, "audit-log action=DROP;", USERS.bob)).text, /Bad option action=/);
        assert.match((await ask(tb, "audit-log since=1h", USERS.carol)).text, /for operators/);
      },
    );

    await t.step("a result too long for a message comes as CSV in the asker's direct messages", async () => {
      const r = await ask(tb, "audit-log action=test.fixture", USERS.bob);
      assert.match(r.text, /5 more: bisman-audit-log-\d+\.csv, sent to you in a direct message/);
      const file = await waitFor(() => tb.slack.files.find((f) => f.completed && /\.csv$/.test(f.filename)), {
        what: "the CSV upload",
      });
      assert.equal(file.channel, "D0BOB", "shared in bob's direct messages, not the channel");
      const lines = file.content!.trim().split("\r\n");
      assert.equal(
        lines[0],
        "seq,at,actor,actor_name,action,target,request_id,outcome,details,prev_hash,hash,mac,key_id",
      );
      assert.equal(lines.length, 46);
      assert.match(
        lines[1],
        /,U0CAROL,,test\.fixture,,,ok,"\{""i"":44,""note"":""row, \\""quoted\\"" 44""\}",[0-9a-f]{64},[0-9a-f]{64},[0-9a-f]{64},[0-9a-f]{8}$/,
      );
      assert.deepEqual(
        tb.slack.calls.filter((c) => c.method.startsWith("files.") || c.method === "conversations.open").map((
          c,
        ) => c.method),
        ["conversations.open", "files.getUploadURLExternal", "files.completeUploadExternal"],
      );
    });

    await t.step(
      "export from Slack: JSON lines with each row's hash and its predecessor's, that verify",
      async () => {
        const r = await ask(tb, "audit-log export", USERS.bob);
        assert.match(r.text, /audit-log row\(s\) exported to bisman-audit-log-\d+\.jsonl/);
        const file = tb.slack.files.findLast((f) => /\.jsonl$/.test(f.filename))!;
        const first = JSON.parse(file.content!.split("\n")[0]);
        assert.deepEqual(Object.keys(first).sort(), [
          "action",
          "actor",
          "actor_name",
          "at",
          "details",
          "hash",
          "key_id",
          "mac",
          "outcome",
          "prev_hash",
          "request_id",
          "seq",
          "target",
        ]);
        const v = verifyExport(file.content!, undefined, tb.bot.deps.keys);
        assert.equal(v.ok, true, JSON.stringify(v));
        assert.equal(v.ok && v.keyed, true);
      },
    );

    const exportFile = `${dir}/export.jsonl`;
    await t.step(
      "deno task ops audit-log export --out writes the chain; verify --file checks it with no database",
      async () => {
        const out = await cli(env, "audit-log", "export", "--out", exportFile);
        assert.equal(out.code, 0, out.stderr);
        assert.match(out.stderr, /\d+ audit-log row\(s\) exported to /);
        // The bot recorded the export as alice's before she read the rows with her own role.
        const rec = await tb.bot.deps.audit.rows();
        assert.ok(rec.some((r) => r.action === "audit.exported" && r.actor === "cli:alice"));
        const text = await Deno.readTextFile(exportFile);
        const rows = text.trim().split("\n").length;
        assert.ok(rows >= 46, `${rows} rows`);
        // Offline: no BISMAN_CONFIG, no DATABASE_URL.
        const ok = await cli({}, "audit-log", "verify", "--file", exportFile);
        assert.equal(ok.code, 0, ok.stderr);
        assert.match(ok.stdout, new RegExp(`verifies: rows 1…${rows} \\(${rows}\\) form an unbroken chain`));
      },
    );

    await t.step("one byte changed in an export fails offline verification and names the row", async () => {
      const text = await Deno.readTextFile(exportFile);
      const lines = text.split("\n");
      const k = lines.findIndex((l) => l.includes('"note":"row, \\"quoted\\" 7"'));
      const changed = [...lines];
      changed[k] = changed[k].replace('quoted\\" 7', 'quoted\\" 8');
      await Deno.writeTextFile(`${dir}/changed.jsonl`, changed.join("\n"));
      const seq = JSON.parse(lines[k]).seq;
      const bad = await cli({}, "audit-log", "verify", "--file", `${dir}/changed.jsonl`);
      assert.equal(bad.code, 1);
      assert.match(
        bad.stderr,
        new RegExp(`does not verify at row ${seq} \\(line ${k + 1}\\): row ${seq} was altered`),
      );
      const broken = [...lines];
      broken[k] = broken[k].replace('"outcome":"ok"', '"outcome":"ok');
      await Deno.writeTextFile(`${dir}/broken.jsonl`, broken.join("\n"));
      const b2 = await cli({}, "audit-log", "verify", "--file", `${dir}/broken.jsonl`);
      assert.equal(b2.code, 1);
      assert.match(
        b2.stderr,
        new RegExp(`at row ${seq} \\(line ${k + 1}\\): line ${k + 1} \\(row ${seq}\\) is not valid JSON`),
      );
    });

    await t.step(
      "with BISMAN_SIGNING_KEY in the environment, offline verify checks MACs: a recomputed rewrite is named",
      async () => {
        const rows = (await Deno.readTextFile(exportFile)).trim().split("\n").map((l) => JSON.parse(l));
        const k = rows.findIndex((r) => r.details?.i === 7);
        rows[k].outcome = "denied";
        for (let i = k; i < rows.length; i++) {
          rows[i].prev_hash = i ? rows[i - 1].hash : rows[i].prev_hash;
          rows[i].hash = chainHash(rows[i].prev_hash, rowContent(rows[i]));
        }
        await Deno.writeTextFile(`${dir}/rewritten.jsonl`, rows.map((r) => JSON.stringify(r)).join("\n"));
        const without = await cli({}, "audit-log", "verify", "--file", `${dir}/rewritten.jsonl`);
        assert.equal(without.code, 0, "without the key only the linkage is checked, and it says so");
        assert.match(without.stdout, /MACs were NOT checked/);
        const withKey = await cli(
          { BISMAN_SIGNING_KEY: TEST_SIGNING_KEY },
          "audit-log",
          "verify",
          "--file",
          `${dir}/rewritten.jsonl`,
        );
        assert.equal(withKey.code, 1, withKey.stdout);
        assert.match(withKey.stderr, new RegExp(`at row ${rows[k].seq} .*its MAC.*no longer matches`));
        const intact = await cli(
          { BISMAN_SIGNING_KEY: TEST_SIGNING_KEY },
          "audit-log",
          "verify",
          "--file",
          exportFile,
        );
        assert.equal(intact.code, 0, intact.stderr);
        assert.match(intact.stdout, /MACs were checked with the bot's key/);
      },
    );

    await t.step("the CLI checks an anchor against the database, and against an export offline", async () => {
      const head = (await tb.bot.deps.audit.verify()) as { head: { seq: number; hash: string } };
      const anchor = `${head.head.seq}:${head.head.hash}`;
      const online = await cli(env, "audit-log", "verify", "--anchor", anchor);
      assert.equal(online.code, 0, online.stderr);
      assert.match(online.stdout, /Audit log holds the anchor/);
      const text = await Deno.readTextFile(exportFile);
      const last = JSON.parse(text.trim().split("\n").at(-1)!);
      const offline = await cli(
        {},
        "audit-log",
        "verify",
        "--file",
        exportFile,
        "--anchor",
        `${last.seq}:${last.hash}`,
      );
      assert.equal(offline.code, 0, offline.stderr);
      assert.match(offline.stdout, new RegExp(`holds anchor row ${last.seq} with its hash`));
      const wrong = await cli(
        {},
        "audit-log",
        "verify",
        "--file",
        exportFile,
        "--anchor",
        `${last.seq}:${"0".repeat(64)}`,
      );
      assert.equal(wrong.code, 1);
      assert.match(wrong.stderr, new RegExp(`row ${last.seq}'s hash is now`));
    });
  } finally {
    await tb.stop();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
});
