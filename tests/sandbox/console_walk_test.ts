/**
 * The sandbox console in a real browser (Chromium through playwright-core), walking every subcommand and
 * every button the console shows, each to its finished state with no error text: what a new user does on
 * the one page `deno task dev` prints. Screenshots of each state go to tests/out/console-walk-<time>/
 * (README, sandbox section). Clicks and typing go through the page; what the bot answered is read from the
 * console's own feed API (the Slack stand-in's record), so a failing wait prints what the feed showed.
 *
 * The promotion runs last: it stops the sandbox's primary through the console's own trouble menu.
 */

import assert from "node:assert/strict";
import postgres from "postgres";
import type { Browser, Locator, Page } from "playwright-core";
import type { Sandbox } from "../../sandbox/dev.ts";
import { launchChromium, screenshotDir, startSmallSandbox } from "../support/console_page.ts";
import { SAMPLE_DB } from "../../sandbox/seed.ts";
import { SANDBOX_ALERTS } from "../../sandbox/alerts.ts";
import { allSubcommands } from "../../commands/registry.ts";

// The functions given to page.evaluate/waitForFunction run in the browser; this types the part they use.
declare const document: {
  querySelector(selector: string): { textContent: string | null; className?: string } | null;
  body: { dataset: Record<string, string | undefined> };
};

const USERS = { alice: "U0ALICE", bob: "U0BOB", carol: "U0CAROL", dave: "U0DAVE" } as const;
type UserName = keyof typeof USERS;

/** One entry of the console's feed API. */
interface FeedEntry {
  key: string;
  ts: string;
  thread_ts?: string;
  author: string;
  kind: "message" | "ephemeral" | "command";
  text: string;
  blocks?: Block[];
  ephemeral: boolean;
}
interface Block {
  type: string;
  block_id?: string;
  text?: { text?: string };
  fields?: { text?: string }[];
  elements?: Element[];
  accessory?: Element;
}
interface Element {
  type: string;
  text?: { text?: string } | string;
  action_id?: string;
  confirm?: unknown;
}

/** The text a person reads in an entry: every section, field, context and header. */
function entryText(e: FeedEntry): string {
  if (!e.blocks?.length) return e.text;
  const out: string[] = [];
  for (const b of e.blocks) {
    if (b.text?.text) out.push(b.text.text);
    for (const f of b.fields ?? []) if (f.text) out.push(f.text);
    if (b.type === "context" || b.type === "rich_text") {
      for (const el of b.elements ?? []) if (typeof el.text === "string") out.push(el.text);
    }
  }
  return out.join("\n");
}

/** The buttons of an entry. */
function buttonsOf(e: FeedEntry): Element[] {
  const out: Element[] = [];
  for (const b of e.blocks ?? []) {
    if (b.type === "actions") out.push(...(b.elements ?? []).filter((x) => x.type === "button"));
    if (b.accessory?.type === "button") out.push(b.accessory);
  }
  return out;
}

/**
 * Error text as the bot writes it (views/error.ts: one line starting with the code's icon; a failed run's
 * ":x: Failed"), or as the console writes it (an HTTP error of the bot).
 */
function errorIn(e: FeedEntry): string | undefined {
  const text = entryText(e);
  const first = text.split("\n")[0];
  if (/^(:x:|:no_entry:|:gear:|:electric_plug:|:grey_question:)/.test(first)) return first;
  if ((e.blocks?.length ?? 0) <= 1 && /^:warning: /.test(first)) return first;
  for (const bad of [/The bot answered HTTP \d+/, /permission denied/i, /:x: Failed/, /Internal error/i]) {
    const m = bad.exec(text);
    if (m) return text.slice(Math.max(0, m.index - 100), m.index + 300);
  }
  return undefined;
}

Deno.test({
  name: "sandbox console walk in Chromium: every subcommand and button to its finished state",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async (t) => {
    const walkStarted = performance.now();
    const shots = await screenshotDir("console-walk");
    console.log(`screenshots: ${shots}`);
    let sb: Sandbox | undefined;
    let dataDir: string | undefined;
    let browser: Browser | undefined;
    try {
      // `backup now` and `/bisman backups` use the dump folder here; tests/sandbox/dev_test.ts covers pgBackRest.
      ({ sb, dataDir } = await startSmallSandbox("bisman-sandbox-walk-"));
      const sandbox = sb;
      browser = await launchChromium();
      const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
      // The suite runs many clusters in parallel on two cores: give each wait room.
      page.setDefaultTimeout(60_000);
      const pageErrors: string[] = [];
      page.on("pageerror", (e) => pageErrors.push(String(e)));
      const w = walker(page, sandbox, shots);

      await t.step("the console loads and completes /bisman subcommands", async () => {
        await page.goto(sandbox.url);
        await page.waitForSelector("body[data-ready]");
        await w.actAs("alice");
        // Typed as a person types, into the focused composer (the box closes when the composer loses focus,
        // and the page may still be redrawing the user switch).
        for (let attempt = 1;; attempt++) {
          await page.fill("#command", "");
          await page.click("#command");
          await page.keyboard.type("/bisman ro");
          try {
            await page.waitForSelector("#completions:not([hidden]) .completion", { timeout: 15_000 });
            break;
          } catch (err) {
            if (attempt === 3) throw err;
          }
        }
        const offered = await w.domText("#completions");
        assert.match(offered, /\/bisman rotate/);
        assert.doesNotMatch(offered, /\/bisman status/);
        await page.fill("#command", "/bisman he");
        await page.press("#command", "Tab");
        assert.equal(await page.inputValue("#command"), "/bisman help ");
        await page.fill("#command", "");
        await w.shot("console");
      });

      await t.step("help lists every subcommand, to the asker only; status shows both servers", async () => {
        const help = await w.run("help", /bisman-ops: PostgreSQL runbook commands/);
        for (const s of allSubcommands()) {
          assert.ok(help.includes(`/bisman ${s.name}`), `help lists ${s.name}`);
        }
        await page.waitForSelector("#feed .msg.ephemeral .only-you");
        await w.shot("help");
        const status = await w.run("status", /standby/);
        assert.match(
          status,
          new RegExp(`\\*primary\\* \\(127\\.0\\.0\\.1:${sandbox.cluster.primary.port}\\): primary`),
        );
        await w.shot("status");
      });

      await t.step(
        "rotate: the requester's own approval is refused, a denial, then an approval",
        async () => {
          const denied = await w.request("rotate bisman_readonly", "rotate");
          await w.deny(denied, "carol", "walk test: not now");
          await w.shot("rotate-denied");

          const req = await w.request("rotate bisman_app", "rotate");
          await w.clickButton("alice", req, "bisman.request.approve");
          await w.waitEntry(
            "alice",
            "the requester's refusal",
            (e) => /so your approval does not count/.test(entryText(e)),
          );
          await w.shot("rotate-self-approval-refused");
          const carolSees = (await w.feed("carol")).map(entryText).join("\n");
          assert.ok(!carolSees.includes("does not count"), "alice's refusal is not shown to carol");
          await w.approve(req, ["bob"], "rotate");
          await w.shot("rotate-succeeded");
          // The password Vault now holds is the one that logs in, and it is never shown.
          const pw = sandbox.vault.kvGet("bisman/db")!.data.app_password;
          const sql = postgres({
            host: "127.0.0.1",
            port: sandbox.cluster.primary.port,
            database: SAMPLE_DB,
            username: "bisman_app",
            password: pw,
            max: 1,
            onnotice: () => {},
          });
          try {
            assert.equal((await sql`select current_user as u`)[0].u, "bisman_app");
          } finally {
            await sql.end();
          }
          assert.ok(!(await w.domText("body")).includes(pw), "the password is never shown");
        },
      );

      // Opened after the rotation of bisman_app (which ends that role's sessions), for connections to show.
      await t.step("make trouble: three sessions idle in a transaction", async () => {
        await w.trouble("idle-in-transaction", "idle in transaction");
      });

      await t.step("rotate root", async () => {
        const req = await w.request("rotate root", "rotate_root");
        await w.approve(req, ["bob"], "rotate_root");
        await w.shot("rotate-root-succeeded");
      });

      await t.step("backups, and backup now", async () => {
        await w.run("backups", /Backups of sandbox/);
        await w.shot("backups");
        const req = await w.request("backup now", "backup_now");
        await w.approve(req, ["bob"], "backup_now");
        await w.shot("backup-now-succeeded");
      });

      await t.step("restore test, through its approval to its result; backups turn green", async () => {
        const req = await w.request("restore-test", "restore_test_gated");
        const done = await w.approve(req, ["bob"], "restore_test_gated");
        assert.match(done, /restore test of sandbox passed/);
        await w.shot("restore-test-passed");
        const backups = await w.run("backups", /Backups of sandbox: ok/);
        assert.match(backups, /last proven restore/);
        await w.shot("backups-green");
      });

      await t.step("lag", async () => {
        const lag = await w.runEntry("lag", /Replication lag/);
        await w.shot("lag");
        // "Post to channel" shares the private answer with everyone.
        await w.clickButton("alice", lag, "bisman.reply.share");
        await w.waitEntry(
          "carol",
          "the shared lag report",
          (e) => e.kind === "message" && /Replication lag/.test(entryText(e)),
        );
        await w.shot("lag-shared");
      });

      await t.step("connections, terminate-idle, and terminate an address", async () => {
        const conns = await w.run("connections", /Connections: sandbox/);
        assert.match(
          conns,
          /\*Idle in transaction\* \(connection-leak check, limit 0\.5 min\): 3 session\(s\)/,
        );
        await w.shot("connections");
        // The sessions are seconds old here; the sandbox's own limit (30 s) is for people trying it by hand.
        const req = await w.request("terminate-idle minutes=0.05", "terminate_idle");
        await w.approve(req, ["bob"], "terminate_idle");
        await w.shot("terminate-idle-succeeded");
        // Every session of the sandbox comes from 127.0.0.1, the bot's own address, which terminate refuses; an
        // address with no session is answered with what it found, before any approval.
        await w.run(
          "terminate 203.0.113.7",
          /No session on sandbox comes from 203\.0\.113\.7\/32: nothing to terminate/,
          {
            errorsExpected: true,
          },
        );
        await w.shot("terminate-nothing");
      });

      await t.step("slow queries, and reset-stats", async () => {
        await w.run("slow-queries", /Slow queries: sandbox/);
        await w.shot("slow-queries");
        const req = await w.request("reset-stats", "reset_statements");
        await w.approve(req, ["bob"], "reset_statements");
        await w.shot("reset-stats-succeeded");
      });

      await t.step("audit search with a CSV uploaded to the asker", async () => {
        const files = sandbox.slack.files.length;
        const answer = await w.run("audit table=clients since=7d format=csv", /Audit: sandbox/);
        assert.match(answer, /sent to you in a direct message/);
        const csv = sandbox.slack.files.slice(files).find((f) =>
          /^bisman-audit-sandbox-.*\.csv$/.test(f.filename)
        );
        assert.ok(
          csv,
          `a CSV upload through the Slack stand-in: ${JSON.stringify(sandbox.slack.files.slice(files))}`,
        );
        assert.ok(csv.completed, "the upload was completed (files.completeUploadExternal)");
        assert.ok((csv.content ?? "").split("\n").length > 1, "the CSV has rows");
        await w.shot("audit-csv");
      });

      await t.step("detect, usage, roles and roles apply", async () => {
        // After rotate and rotate root (Vault's ALTER ROLE for the bot's approved run), and before the trouble
        // panel writes as an unexpected role: the bot's own actions are not intrusions.
        await w.run("detect", /Bypass detection: sandbox/, { expect: /No bypass found/ });
        await w.shot("detect");
        await w.run("usage payments", /Service usage: payments on sandbox/);
        await w.shot("usage");
        await w.run("roles", /Roles: sandbox/);
        await w.shot("roles");
        const req = await w.request("roles apply", "roles_apply");
        // The requester drops the plan's backup-first step before anyone approves.
        await w.clickButton("alice", req, "bisman.request.backup_first");
        await w.waitEntry(
          "alice",
          "the dropped backup step",
          (e) => e.key === req.key && /Step 0, take a backup first\*: dropped/.test(entryText(e)),
        );
        const done = await w.approve(req, ["bob"], "roles_apply");
        assert.match(done, /no drift remains/);
        await w.shot("roles-apply-succeeded");
      });

      await t.step("tls", async () => {
        await w.run("tls", /TLS and auditing: sandbox/);
        await w.shot("tls");
      });

      await t.step("block and unblock change the primary's pg_hba.conf", async () => {
        const hba = `${sandbox.cluster.primary.dataDir}/pg_hba.conf`;
        const req = await w.request("block 198.51.100.9", "block_address");
        const done = await w.approve(req, ["bob"], "block_address");
        assert.match(done, /198\.51\.100\.9\/32 blocked \(pg_hba\.conf line/);
        assert.match(await Deno.readTextFile(hba), /host\s+all\s+all\s+198\.51\.100\.9\/32\s+reject/);
        await w.shot("block-succeeded");
        const un = await w.request("unblock 198.51.100.9", "unblock_address");
        await w.approve(un, ["bob"], "unblock_address");
        assert.doesNotMatch(await Deno.readTextFile(hba), /198\.51\.100\.9/);
        await w.shot("unblock-succeeded");
      });

      await t.step("lock-role and unlock-role", async () => {
        const lock = await w.request("lock-role bisman_readonly", "lock_role");
        await w.approve(lock, ["bob"], "lock_role");
        await w.shot("lock-succeeded");
        const unlock = await w.request("unlock-role bisman_readonly", "unlock_role");
        await w.approve(unlock, ["bob"], "unlock_role");
        await w.shot("unlock-succeeded");
      });

      await t.step("checklist with an attestation", async () => {
        const entry = await w.runEntry("checklist", /Checklist: sandbox/);
        assert.match(entryText(entry), /pass \*Backup schedule configured and tested\*/);
        await w.clickButton("alice", entry, "bisman.checklist.attest.0");
        await w.waitEntry("alice", "the attestation's record", (e) => /:memo: Recorded: /.test(entryText(e)));
        await w.shot("checklist-attested");
        // A runbook button of a failing item runs its read-only subcommand.
        const answers: Record<string, RegExp> = {
          "Show audit trail": /Audit: sandbox/,
          "Show lag": /Replication lag/,
          "Top slow queries": /Slow queries: sandbox/,
          "Show connections": /Connections: sandbox/,
        };
        const runbook = buttonsOf(entry).find((b) =>
          /^bisman\.checklist\.runbook\./.test(b.action_id ?? "") && typeof b.text === "object" &&
          answers[b.text.text ?? ""]
        );
        assert.ok(
          runbook,
          `a read-only runbook button on the checklist: ${JSON.stringify(buttonsOf(entry))}`,
        );
        const before = new Set((await w.feed("alice")).map((e) => e.key));
        await w.clickButton("alice", entry, runbook.action_id!);
        const label = (runbook.text as { text: string }).text;
        await w.waitEntry(
          "alice",
          `the answer of the checklist's ${label}`,
          (e) => !before.has(e.key) && answers[label].test(entryText(e)),
        );
        await w.shot("checklist-runbook-button");
      });

      await t.step("digest", async () => {
        await w.run("digest", /Digest posted in/);
        await w.waitEntry("alice", "the digest in the channel", (e) => /^Daily digest/.test(entryText(e)));
        await w.shot("digest");
      });

      await t.step("requests and cancel", async () => {
        const req = await w.request("rotate svc_payments", "rotate");
        const id = /#(\d+)/.exec(entryText(req))![1];
        await w.run("requests", new RegExp(`#${id}\\b`));
        await w.shot("requests");
        await w.run(`cancel ${id}`, /cancel/i);
        await w.waitEntry(
          "alice",
          "the cancelled request",
          (e) => e.ts === req.ts && /Cancelled/.test(entryText(e)),
        );
        await w.shot("cancelled");
        const other = await w.request("rotate bisman_admin", "rotate");
        await w.clickButton("alice", other, "bisman.request.cancel");
        await w.waitEntry(
          "alice",
          "the request cancelled by its button",
          (e) => e.key === other.key && /Cancelled/.test(entryText(e)),
        );
        await w.shot("cancelled-by-button");
      });

      await t.step("freeze and unfreeze", async () => {
        await w.run("freeze walk test", /frozen/);
        await w.shot("frozen");
        const req = await w.request("unfreeze", "unfreeze");
        await w.approve(req, ["bob"], "unfreeze");
        await w.shot("unfrozen");
      });

      await t.step("config check", async () => {
        await w.run("config check", /is valid and the same as the running config/);
        await w.shot("config-check");
      });

      await t.step("audit-log verify and export", async () => {
        await w.run("audit-log verify", /Audit log intact/);
        const files = sandbox.slack.files.length;
        await w.run("audit-log export", /exported to bisman-audit-log-/);
        const file = sandbox.slack.files.slice(files).find((f) => f.filename.startsWith("bisman-audit-log-"));
        assert.ok(file?.completed, "the export was uploaded through the Slack stand-in");
        await w.shot("audit-log");
      });

      await t.step("every alert the runbook names opens a thread", async () => {
        for (const name of SANDBOX_ALERTS) {
          const id = name === "HighReplicationLag"
            ? "fire-alert"
            : `fire-${name.replace(/([a-z])([A-Z])/g, "$1-$2").toLowerCase()}`;
          await w.trouble(id, name);
          await w.waitEntry(
            "alice",
            `the ${name} thread`,
            (e) => entryText(e).includes(`*FIRING* *${name}*`),
          );
        }
        await w.shot("alerts-fired");
        // The read-only runbook buttons answer in their thread.
        for (
          const [name, action, answer] of [
            ["HighReplicationLag", "bisman.alert.show_lag", /Replication lag/],
            ["SuspiciousQueries", "bisman.alert.show_audit", /Audit: sandbox/],
          ] as const
        ) {
          const parent = await w.waitEntry("alice", name, (e) => entryText(e).includes(`*FIRING* *${name}*`));
          await w.clickButton("alice", parent, action);
          await w.waitEntry(
            "alice",
            `${action}'s answer in the ${name} thread`,
            (e) => e.thread_ts === parent.ts && e.ts !== parent.ts && answer.test(entryText(e)),
          );
        }
        await w.shot("alert-read-buttons");
      });

      await t.step(
        "an alert thread: I'm on it, each silence and expire, a remediation, resolve",
        async () => {
          const parent = () =>
            w.waitEntry(
              "bob",
              "the SlowQueries parent",
              (e) => entryText(e).includes("*SlowQueries*"),
            );
          await w.actAs("bob");
          await w.clickButton("bob", await parent(), "bisman.thread.take");
          await w.waitEntry(
            "bob",
            "the owner",
            (e) => /\*SlowQueries\*/.test(entryText(e)) && /Owner: <@U0BOB>/.test(entryText(e)),
          );
          for (const h of ["1h", "4h", "24h"]) {
            await w.clickButton("bob", await parent(), `bisman.thread.silence.${h}`);
            await w.waitEntry(
              "bob",
              `silenced ${h}`,
              (e) => /\*SlowQueries\*/.test(entryText(e)) && /Silenced until/.test(entryText(e)),
            );
            await w.shot(`alert-silenced-${h}`);
            await w.clickButton("bob", await parent(), "bisman.thread.unsilence");
            await w.waitEntry(
              "bob",
              `silence ${h} expired`,
              (e) =>
                /\*SlowQueries\*/.test(entryText(e)) && !/Silenced until/.test(entryText(e)) &&
                buttonsOf(e).some((b) => b.action_id === `bisman.thread.silence.${h}`),
            );
          }
          await w.clickButton("bob", await parent(), "bisman.alert.top_slow_queries");
          await w.waitEntry(
            "bob",
            "the slow-query answer in the thread",
            (e) => !!e.thread_ts && e.thread_ts !== e.ts && /Slow queries: sandbox/.test(entryText(e)),
          );
          const before = new Set((await w.feed("alice")).map((e) => e.key));
          await w.clickButton("bob", await parent(), "bisman.alert.reset_statements");
          const req = await w.waitEntry(
            "alice",
            "the reset request",
            (e) => !before.has(e.key) && /Approval needed: reset_statements/.test(entryText(e)),
          );
          await w.approve(req, ["carol"], "reset_statements");
          await w.shot("alert-remediated");
          await w.actAs("alice");
          await w.trouble("resolve-alerts", "resolved");
          for (const name of SANDBOX_ALERTS) {
            await w.waitEntry(
              "alice",
              `the ${name} parent marked resolved`,
              (e) => entryText(e).includes(`RESOLVED* *${name}*`),
              90_000,
            );
          }
          await w.openThread(await parent());
          await w.shot("alert-thread-resolved");
          await page.click("#thread-close");
        },
      );

      await t.step("the other make-trouble buttons", async () => {
        await w.trouble("unexpected-role-write", "bisman_admin updated");
        await w.trouble("no-app-context", "no app.user_id");
        await w.trouble("age-backup", "three days ago");
        await w.run("backups", /Backups of sandbox/);
        await w.trouble("pause-replay", "Replay paused");
        await w.trouble("pause-replay", "Replay resumed");
        await w.trouble("digest-now", "The digest job ran");
        await w.shot("trouble");
      });

      await t.step("an outsider sees the channel but is refused an operator command", async () => {
        await w.actAs("dave");
        await w.command("rotate bisman_admin");
        await w.waitEntry("dave", "the refusal", (e) => /is for operators/.test(entryText(e)));
        const feed = (await w.feed("dave")).map(entryText).join("\n");
        assert.ok(!feed.includes("bisman-ops: PostgreSQL runbook commands"), "alice's help is hers alone");
        await w.shot("outsider");
        await w.actAs("alice");
      });

      await t.step(
        "promote replica1 with its primary stopped from the trouble menu, two approvers",
        async () => {
          await w.trouble("stop-primary", "The primary is stopped");
          const status = await w.run("status", /replica1/);
          assert.match(status, /\*replica1\* \(127\.0\.0\.1:\d+\): standby/);
          assert.doesNotMatch(
            status,
            /\*primary\* \(127\.0\.0\.1:\d+\): primary/,
            "the primary does not answer",
          );
          await w.shot("primary-stopped");
          const req = await w.request("promote replica1", "promote_replica");
          const done = await w.approve(req, ["bob", "carol"], "promote_replica", 180_000);
          assert.doesNotMatch(done, /split brain/i);
          await w.shot("promoted");
          const inRecovery = (await sandbox.cluster.replica!.psql("select pg_is_in_recovery()")).trim();
          assert.equal(inRecovery, "f", "replica1 is a primary now");
          await w.trouble("pause-replay", "no longer a standby since its promotion");
          await w.shot("pause-after-promote");
        },
      );

      assert.deepEqual(pageErrors, [], "no script errors on the page");
      console.log(`walk: ${((performance.now() - walkStarted) / 1000).toFixed(1)} s wall time`);
    } finally {
      await browser?.close().catch(() => {});
      await sb?.stop();
      if (dataDir) await Deno.remove(dataDir, { recursive: true }).catch(() => {});
    }
  },
});

/** What the walk does on the page, and reads from the console's feed API. */
function walker(page: Page, sandbox: Sandbox, shotDir: string) {
  let n = 0;
  let current: UserName | undefined;
  const feed = async (user: UserName): Promise<FeedEntry[]> => {
    const res = await fetch(`${sandbox.url}api/feed?user=${USERS[user]}&since=-1`);
    return (await res.json()).entries as FeedEntry[];
  };
  const show = (entries: FeedEntry[]) =>
    entries.slice(-6).map((e) => `--- ${e.key} ${e.kind}\n${entryText(e).slice(0, 1200)}`).join("\n");

  /** Polls the feed until `pred` holds for an entry (the newest such), failing with what the feed shows. */
  const waitEntry = async (
    user: UserName,
    what: string,
    pred: (e: FeedEntry) => boolean,
    timeout = 90_000,
  ): Promise<FeedEntry> => {
    const deadline = Date.now() + timeout;
    let last: FeedEntry[] = [];
    while (Date.now() < deadline) {
      last = await feed(user);
      const hit = last.findLast(pred);
      if (hit) return hit;
      await new Promise((r) => setTimeout(r, 250));
    }
    throw new Error(
      `${what} did not appear for ${user} within ${timeout / 1000} s; the feed shows:\n${show(last)}`,
    );
  };

  /** Fails when an entry new since `before` carries error text. */
  const noErrors = async (user: UserName, before: Set<string>, step: string) => {
    for (const e of await feed(user)) {
      if (before.has(e.key)) continue;
      const err = errorIn(e);
      if (err) {
        throw new Error(
          `${step}: error text in the feed:\n${err}\n\nthe feed shows:\n${show(await feed(user))}`,
        );
      }
    }
  };

  const actAs = async (name: UserName) => {
    if (current === name) return;
    await page.click(`[data-user="${name}"]`);
    // The feed is fetched again for the new user; wait until their view is on screen.
    await page.waitForFunction((u) => document.body.dataset.feedUser === u, USERS[name], { timeout: 30_000 });
    current = name;
  };

  const command = async (line: string) => {
    await page.fill("#command", `/bisman ${line}`);
    await page.press("#command", "Enter");
  };

  /** Types a command as alice (or the current user) and waits for its answer; returns the answer entry. */
  const runEntry = async (
    line: string,
    expect: RegExp,
    opts: { user?: UserName; expect?: RegExp; errorsExpected?: boolean } = {},
  ): Promise<FeedEntry> => {
    const user = opts.user ?? current ?? "alice";
    await actAs(user);
    const before = new Set((await feed(user)).map((e) => e.key));
    await command(line);
    const cmd = await waitEntry(
      user,
      `the command "${line}"`,
      (e) => !before.has(e.key) && e.kind === "command" && e.text.includes(`/bisman ${line}`),
    );
    const id = cmd.key.slice(2);
    const answer = await waitEntry(
      user,
      `the answer to "${line}" matching ${expect}`,
      (e) => !before.has(e.key) && (e.key === `a:${id}` || e.kind !== "command") && expect.test(entryText(e)),
    );
    if (opts.expect) assert.match(entryText(answer), opts.expect);
    if (!opts.errorsExpected) await noErrors(user, before, line);
    return answer;
  };

  /** The locator of an entry's element on the page (opening its thread when it is a reply). */
  const locate = async (entry: FeedEntry): Promise<Locator> => {
    if (entry.thread_ts && entry.thread_ts !== entry.ts) {
      await openThreadTs(entry.thread_ts);
      return page.locator(`#thread-feed [data-key="${entry.key}"]`);
    }
    return page.locator(`#feed [data-key="${entry.key}"]`);
  };
  const openThreadTs = async (ts: string) => {
    const replies = page.locator(`#feed [data-ts="${ts}"] button.replies`);
    await replies.waitFor();
    await replies.click();
    await page.waitForSelector("#thread:not([hidden])");
  };

  /** Clicks a button of an entry as `user`, confirming its dialog when it has one. */
  const clickButton = async (user: UserName, entry: FeedEntry, actionId: string) => {
    await actAs(user);
    const fresh = (await feed(user)).find((e) => e.key === entry.key) ?? entry;
    const button = buttonsOf(fresh).find((b) => b.action_id === actionId);
    assert.ok(button, `no ${actionId} button on ${entry.key}; it shows:\n${entryText(fresh)}`);
    const el = (await locate(fresh)).locator(`button[data-action-id="${actionId}"]`).first();
    await el.waitFor();
    await el.click();
    if (button.confirm) {
      await page.waitForSelector('[data-kind="confirm"]');
      await page.click('[data-confirm="yes"]');
    }
  };

  /** Runs a destructive command; returns its "Approval needed" message in the channel. */
  const request = async (line: string, op: string): Promise<FeedEntry> => {
    const user = current ?? "alice";
    const before = new Set((await feed(user)).map((e) => e.key));
    await runEntry(line, /waits for an approver|Approval needed/);
    return await waitEntry(
      user,
      `the approval request of ${op}`,
      (e) =>
        !before.has(e.key) && e.kind === "message" &&
        new RegExp(`Approval needed: ${op}\\b`).test(entryText(e)),
    );
  };

  /** Approves a request by each of `approvers`; waits for "Succeeded: <op>"; returns its text. */
  const approve = async (req: FeedEntry, approvers: UserName[], op: string, timeout = 120_000) => {
    const back = current ?? "alice";
    for (const a of approvers) await clickButton(a, req, "bisman.request.approve");
    const done = await waitEntry(
      approvers.at(-1)!,
      `"Succeeded: ${op}" on request ${req.key}`,
      (e) => e.key === req.key && /(Succeeded|Failed|Not run|Interrupted|Denied|Expired):/.test(entryText(e)),
      timeout,
    );
    const text = entryText(done);
    assert.match(text, new RegExp(`Succeeded: ${op}\\b`), `the request ended otherwise:\n${text}`);
    await actAs(back);
    return text;
  };

  /** Denies a request through its reason modal. */
  const deny = async (req: FeedEntry, approver: UserName, reason: string) => {
    const back = current ?? "alice";
    await clickButton(approver, req, "bisman.request.deny");
    const modal = page.locator('[data-kind="modal"]');
    await modal.waitFor();
    await modal.locator("textarea, input").first().fill(reason);
    await modal.locator('button[type="submit"]').click();
    await waitEntry(approver, "the denied request", (e) => e.key === req.key && /Denied/.test(entryText(e)));
    await actAs(back);
  };

  return {
    feed,
    waitEntry,
    actAs,
    command,
    runEntry,
    run: async (
      line: string,
      expect: RegExp,
      opts: { user?: UserName; expect?: RegExp; errorsExpected?: boolean } = {},
    ) => entryText(await runEntry(line, expect, opts)),
    request,
    approve,
    deny,
    clickButton,
    openThread: (e: FeedEntry) => openThreadTs(e.ts),
    domText: (selector: string) =>
      page.evaluate((s) => document.querySelector(s)?.textContent ?? "", selector),
    /** Presses a make-trouble button and waits for its answer, which must not be an error. */
    trouble: async (id: string, expect: string) => {
      await page.click(`[data-trouble="${id}"]`);
      try {
        await page.waitForFunction(
          ([t]) => {
            const el = document.querySelector("#trouble-result");
            const text = el?.textContent ?? "";
            return text.includes(t) || (el?.className ?? "").includes("error");
          },
          [expect],
          { timeout: 90_000, polling: 200 },
        );
      } catch (err) {
        throw new Error(
          `trouble ${id}: "${expect}" did not appear; it shows: ${await page.evaluate(() =>
            document.querySelector("#trouble-result")?.textContent ?? ""
          )}`,
          { cause: err },
        );
      }
      const [cls, text] = await page.evaluate(() => {
        const el = document.querySelector("#trouble-result");
        return [el?.className ?? "", el?.textContent ?? ""];
      });
      assert.ok(!cls.includes("error"), `trouble ${id} answered an error: ${text}`);
    },
    shot: async (name: string) => {
      await page.screenshot({ path: `${shotDir}/${String(++n).padStart(2, "0")}-${name}.png` });
    },
  };
}
