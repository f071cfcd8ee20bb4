import assert from "node:assert/strict";
import postgres from "postgres";
import type { Browser } from "playwright-core";
import type { Sandbox } from "../../sandbox/dev.ts";
import { SAMPLE_DB } from "../../sandbox/seed.ts";
import { allSubcommands } from "../../commands/registry.ts";
import { consoleDriver, launchChromium, screenshotDir, startSmallSandbox } from "../support/console_page.ts";

// The functions given to page.evaluate/waitForFunction run in the browser; this types the part they use.
declare const document: {
  querySelector(selector: string): { textContent: string | null } | null;
  body: { dataset: Record<string, string | undefined> };
};

Deno.test({
  name: "sandbox console in a real browser: help, status, rotate with approval, an alert thread, ephemerals",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async (t) => {
    const shots = await screenshotDir("console");
    console.log(`screenshots: ${shots}`);
    let sb: Sandbox | undefined;
    let dataDir: string | undefined;
    let browser: Browser | undefined;
    try {
      ({ sb, dataDir } = await startSmallSandbox("bisman-sandbox-e2e-"));
      browser = await launchChromium();
      const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
      // The suite runs many clusters in parallel on two cores: give each wait room.
      page.setDefaultTimeout(45_000);
      const pageErrors: string[] = [];
      page.on("pageerror", (e) => pageErrors.push(String(e)));
      const c = consoleDriver(page, shots);
      const sandbox = sb;

      await t.step("the console loads and completes /bisman subcommands", async () => {
        await page.goto(sandbox.url);
        await page.waitForSelector("body[data-ready]");
        await c.actAs("alice", "U0ALICE");
        await page.fill("#command", "/bisman ro");
        await page.waitForSelector("#completions:not([hidden]) .completion");
        const offered = await c.text("#completions");
        assert.match(offered, /\/bisman rotate/);
        assert.doesNotMatch(offered, /\/bisman status/);
        await c.shot("completion");
        await page.fill("#command", "/bisman he");
        await page.press("#command", "Tab");
        assert.equal(await page.inputValue("#command"), "/bisman help ");
      });

      await t.step("/bisman help as the requester lists every subcommand, shown only to her", async () => {
        await page.press("#command", "Enter");
        await c.waitText("#feed", "bisman-ops: PostgreSQL runbook commands");
        const feed = await c.text("#feed");
        for (const s of allSubcommands()) {
          assert.ok(feed.includes(`/bisman ${s.name}`), `help lists ${s.name}`);
        }
        assert.ok(await page.locator("#feed .msg.ephemeral .only-you").count() >= 1);
        await c.shot("help");
      });

      await t.step("/bisman status shows the primary and the streaming replica", async () => {
        await c.command("/bisman status");
        await c.waitText("#feed", "bisman-ops status");
        await c.waitText("#feed", "standby");
        const feed = await c.text("#feed");
        assert.match(
          feed,
          new RegExp(`primary \\(127\\.0\\.0\\.1:${sandbox.cluster.primary.port}\\): primary`),
        );
        assert.match(
          feed,
          new RegExp(`replica1 \\(127\\.0\\.0\\.1:${sandbox.cluster.replica!.port}\\): standby`),
        );
        await c.shot("status");
      });

      const approve = () => page.locator('#feed button[data-action-id="bisman.request.approve"]').last();

      await t.step(
        "/bisman rotate bisman_app as the requester posts the plan with Approve and Deny",
        async () => {
          await c.command("/bisman rotate bisman_app");
          await c.waitText("#feed", "Approval needed: rotate on sandbox");
          await approve().waitFor();
          assert.equal(await page.locator('#feed button.btn.primary:text("Approve")').count(), 1);
          assert.equal(await page.locator('#feed button.btn.danger:text("Deny")').count(), 1);
          await c.waitText("#feed", "secret/bisman/db#app_password");
          await c.shot("rotate-requested");
        },
      );

      await t.step("the requester's own approval is refused, and only she sees why", async () => {
        await approve().click();
        await page.waitForSelector('[data-kind="confirm"]');
        assert.match(await c.text('[data-kind="confirm"]'), /Approve this plan\?/);
        await c.shot("confirm-dialog");
        await page.click('[data-confirm="yes"]');
        await c.waitText("#feed", "so your approval does not count");
        await c.shot("requester-refused");
        await c.actAs("carol", "U0CAROL");
        const carolSees = await c.text("#feed");
        assert.ok(carolSees.includes("Approval needed: rotate on sandbox"), "the request is in the channel");
        assert.ok(!carolSees.includes("does not count"), "alice's refusal is not shown to carol");
        assert.ok(!carolSees.includes("bisman-ops: PostgreSQL runbook commands"), "nor is alice's help");
      });

      await t.step("an approver approves and confirms; the message ends as succeeded", async () => {
        await c.actAs("bob", "U0BOB");
        await approve().click();
        await page.click('[data-confirm="yes"]');
        await c.waitText("#feed", "Succeeded: rotate on sandbox", 60_000);
        assert.equal(await approve().count(), 0, "no Approve button is left");
        await c.shot("rotate-succeeded");
        // The password Vault now holds is the one that logs in.
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
        assert.ok(!(await c.text("body")).includes(pw), "the password is never shown");
      });

      await t.step("an Alertmanager alert opens a thread; a read-only button answers in it", async () => {
        await page.click('[data-trouble="fire-alert"]');
        await c.waitText("#trouble-result", "HighReplicationLag");
        await c.waitText("#feed", "FIRING HighReplicationLag", 60_000);
        await c.shot("alert-fired");
        await page.locator('#feed button[data-action-id="bisman.alert.show_lag"]').last().click();
        const replies = page.locator("#feed button.replies").last();
        await replies.waitFor({ timeout: 45_000 });
        await replies.click();
        await c.waitText("#thread-feed", "replica1");
        const thread = await c.text("#thread-feed");
        assert.match(thread, /FIRING HighReplicationLag/, "the thread starts with the alert");
        assert.match(thread, /[1-9]\d* repl(y|ies)/);
        await c.shot("alert-thread");
        await page.click("#thread-close");
      });

      await t.step("an outsider sees the channel but is refused an operator command", async () => {
        await c.actAs("dave", "U0DAVE");
        await c.command("/bisman rotate bisman_admin");
        await c.waitText("#feed", "is for operators");
        const feed = await c.text("#feed");
        assert.ok(feed.includes("Succeeded: rotate on sandbox"));
        assert.ok(!feed.includes("bisman-ops status"), "alice's status answer is hers alone");
        await c.shot("outsider");
      });
      assert.deepEqual(pageErrors, [], "no script errors on the page");
    } finally {
      await browser?.close().catch(() => {});
      await sb?.stop();
      if (dataDir) await Deno.remove(dataDir, { recursive: true }).catch(() => {});
    }
  },
});
