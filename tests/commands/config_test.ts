import assert from "node:assert/strict";
import { startCluster } from "../../standins/cluster.ts";
import { startTestBot, TEAM, testConfigDoc, USERS } from "../support/bot.ts";
import { ask } from "../support/gate.ts";
import { spawnBot, writeConfigFile } from "../support/bot_process.ts";
import { parseConfig } from "../../core/config.ts";
import { waitFor } from "../../standins/wait.ts";
import { SlackStandIn } from "../../standins/slack.ts";

Deno.test("/bisman config check and reload: a changed threshold applies without a restart; an invalid file is refused and the running config stays; SIGHUP reloads too", async (t) => {
  await using cluster = await startCluster({ name: "config" });
  const doc = testConfigDoc(cluster);
  const file = await writeConfigFile(doc);
  const write = (patch: (d: Record<string, any>) => void) => {
    const d = structuredClone(doc);
    patch(d);
    return Deno.writeTextFile(file, JSON.stringify(d, null, 2));
  };
  const tb = await startTestBot(cluster, { config: parseConfig(doc), env: { BISMAN_CONFIG: file } });
  const connections = async () => (await ask(tb, "connections main", USERS.bob)).text.split("\n")[0];
  try {
    await t.step("unchanged, check says so; connections are judged ok at the default 80%", async () => {
      assert.match(
        (await ask(tb, "config check", USERS.bob)).text,
        /is valid and the same as the running config/,
      );
      assert.match(await connections(), /^main: \d+\/\d+ connections \([\d.]+%\), ok$/);
    });

    await t.step("check shows what a reload would change, and changes nothing", async () => {
      await write((d) => (d.thresholds = { connections_percent_warning: 1 }));
      const r = await ask(tb, "config check", USERS.bob);
      assert.match(r.text, /is valid; a reload would change 1 key\(s\)/);
      assert.match(r.text, /`thresholds\.connections_percent_warning`: 80 → 1 \(applies at once\)/);
      assert.match(await connections(), /, ok$/);
    });

    await t.step("only operators check or reload", async () => {
      assert.match((await ask(tb, "config reload", USERS.carol)).text, /for operators/);
      assert.equal(tb.bot.deps.config.thresholds.connections_percent_warning, 80);
    });

    await t.step("reload applies the new threshold at once, audited", async () => {
      const r = await ask(tb, "config reload", USERS.bob);
      assert.match(r.text, /Reloaded .*: 1 change\(s\) in force/);
      assert.match(await connections(), /, warning$/);
      const rows = (await tb.bot.deps.audit.rows()).filter((x) => x.action === "config.reloaded");
      assert.equal(rows.length, 1);
      assert.equal(rows[0].actor, USERS.bob);
      assert.deepEqual((rows[0].details.changes as { key: string }[]).map((c) => c.key), [
        "thresholds.connections_percent_warning",
      ]);
    });

    await t.step(
      "an invalid file is refused, naming each bad key; the running config stays in force",
      async () => {
        await write((d) => {
          d.thresholds = { connections_percent_warning: "lots", slow_query_mean_ms: -1 };
          d.surprise = true;
          d.schedules = { no_such_job: { cron: "* * * * *" } };
        });
        const r = await ask(tb, "config reload", USERS.bob);
        assert.match(r.text, /is not valid, so it was not loaded: the running config stays in force/);
        assert.match(r.text, /thresholds\.connections_percent_warning: /);
        assert.match(r.text, /thresholds\.slow_query_mean_ms: /);
        assert.match(r.text, /surprise/);
        assert.match(await connections(), /, warning$/, "the reloaded threshold is still in force");
        await write((d) => {
          d.thresholds = { connections_percent_warning: 1 };
          d.schedules = { no_such_job: { cron: "* * * * *" } };
        });
        assert.match((await ask(tb, "config reload", USERS.bob)).text, /schedules\.no_such_job: no such job/);
        const refused = (await tb.bot.deps.audit.rows()).filter((x) => x.action === "config.reload_refused");
        assert.equal(refused.length, 2);
      },
    );

    await t.step(
      "changed connection settings reset that target's pool; it reconnects with them",
      async () => {
        await write((d) => {
          d.thresholds = { connections_percent_warning: 1 };
          d.targets.main.primary.connect_timeout_seconds = 7;
        });
        const r = await ask(tb, "config reload", USERS.bob);
        assert.match(
          r.text,
          /`targets\.main\.primary\.connect_timeout_seconds`: 3 → 7 \(its connections are reset\)/,
        );
        assert.match(r.text, /Connection pools reset: main\/primary/);
        assert.match(await connections(), /, warning$/, "the new pool answers");
      },
    );

    await t.step(
      "a changed schedule gets its new timer at once; a disabled job loses its timer",
      async () => {
        const schedule = (job: string) => tb.bot.scheduler.schedules().find((s) => s.name === job)!;
        assert.ok(schedule("cleanup").nextRun, "cleanup is scheduled before the reload");
        await write((d) => {
          d.thresholds = { connections_percent_warning: 1 };
          d.targets.main.primary.connect_timeout_seconds = 7;
          d.schedules = {
            digest: { cron: "17 5 * * *", timezone: "Asia/Kolkata" },
            cleanup: { enabled: false },
          };
        });
        const r = await ask(tb, "config reload", USERS.bob);
        assert.match(r.text, /`schedules\.digest`: \(absent\) → .*\(applies at once\)/);
        const digest = schedule("digest");
        assert.equal(digest.cron, "17 5 * * *");
        assert.ok(digest.nextRun, "the digest has a timer");
        const hhmm = new Intl.DateTimeFormat("en-GB", {
          timeZone: "Asia/Kolkata",
          hour: "2-digit",
          minute: "2-digit",
        }).format(digest.nextRun);
        assert.equal(hhmm, "05:17", "its next run is 05:17 in its own time zone");
        assert.equal(schedule("cleanup").nextRun, undefined, "the disabled job has no timer");
        assert.match((await ask(tb, "jobs", USERS.bob)).text, /17 5 \* \* \*/);
        const rows = (await tb.bot.deps.audit.rows()).filter((x) => x.action === "config.reloaded");
        assert.deepEqual((rows.at(-1)!.details.jobs_rescheduled as string[]).sort(), ["cleanup", "digest"]);
      },
    );
  } finally {
    await tb.stop();
  }

  await t.step(
    "SIGHUP reloads the file in a running bot process; an invalid file is refused and logged",
    async () => {
      const slack = await SlackStandIn.start({ teamId: TEAM, users: { [USERS.bob]: { name: "bob" } } });
      await Deno.writeTextFile(file, JSON.stringify(doc, null, 2));
      const stateDb = await cluster.createDatabase("hupstate");
      const p = await spawnBot({
        configFile: file,
        env: {
          SLACK_SIGNING_SECRET: slack.signingSecret,
          SLACK_BOT_TOKEN: slack.botToken,
          SLACK_API_URL: slack.apiUrl,
          DATABASE_URL: cluster.primary.url({ database: stateDb }),
        },
      });
      const state = cluster.primary.sql(stateDb);
      const reloads = async (action: string) =>
        (await state<
          { n: number }[]
        >`select count(*)::int as n from bisman_ops.audit_log where action = ${action}`)[0].n;
      const command = async (text: string) => {
        const before = slack.responses.length;
        const res = await slack.sendCommand(p.eventsUrl, { text, user_id: USERS.bob, team_id: TEAM });
        const body = await res.json();
        if (!/Working on/.test(body.text)) return (body.text as string).split("\n")[0];
        const reply = await waitFor(() => slack.responses.slice(before).at(-1), {
          what: `the answer to ${text}`,
        });
        return (reply.body.text as string).split("\n")[0];
      };
      try {
        assert.match(await command("connections main"), /, ok$/);
        await write((d) => (d.thresholds = { connections_percent_warning: 1 }));
        Deno.kill(p.pid, "SIGHUP");
        await p.waitForLine(/"config reloaded"/);
        assert.equal(await reloads("config.reloaded"), 1);
        assert.match(await command("connections main"), /, warning$/);
        await write((d) => (d.thresholds = { connections_percent_warning: "lots" }));
        Deno.kill(p.pid, "SIGHUP");
        await p.waitForLine(/config reload refused/);
        assert.equal(await reloads("config.reload_refused"), 1);
        assert.match(
          await command("connections main"),
          /, warning$/,
          "still running, with the last good config",
        );
      } finally {
        await p.stop();
        await slack.stop();
        await Deno.remove(file).catch(() => {});
      }
    },
  );
});
