import assert from "node:assert/strict";
import type { Browser, Page } from "playwright-core";
import type { Sandbox } from "../../sandbox/dev.ts";
import { consoleDriver, launchChromium, screenshotDir, startSmallSandbox } from "../support/console_page.ts";

// The functions given to page.evaluate run in the browser; this types the part they use.
interface Box {
  left: number;
  right: number;
  top: number;
  bottom: number;
  width: number;
  height: number;
}
declare const document: {
  documentElement: { scrollWidth: number };
  querySelector(s: string): (Element & { scrollWidth: number; clientWidth: number }) | null;
  querySelectorAll(s: string): Iterable<Element>;
};
interface Element {
  id: string;
  tagName: string;
  textContent: string | null;
  getBoundingClientRect(): Box;
  getAttribute(name: string): string | null;
  closest(s: string): Element | null;
}
declare function getComputedStyle(e: Element): { display: string; visibility: string };
declare const innerWidth: number;
declare const innerHeight: number;
declare function fetch(url: string): Promise<{ status: number; text(): Promise<string> }>;
declare function mrkdwn(text: string): string;

/** What the page's layout looks like right now: its panes, its controls, and any horizontal overflow. */
function layout(page: Page) {
  return page.evaluate(() => {
    const shown = (e: Element) => {
      const r = e.getBoundingClientRect();
      const s = getComputedStyle(e);
      return r.width > 0 && r.height > 0 && s.display !== "none" && s.visibility !== "hidden";
    };
    const box = (e: Element) => {
      const r = e.getBoundingClientRect();
      return { left: r.left, right: r.right, top: r.top, bottom: r.bottom, width: r.width, height: r.height };
    };
    const panes = ["#sidebar", "#channel", "#thread"]
      .map((s) => document.querySelector(s))
      .filter((e): e is NonNullable<typeof e> => !!e && shown(e))
      .map((e) => ({ id: e.id, ...box(e) }));
    // Controls inside a pane that scrolls vertically are reachable by that scroll; sideways they must fit.
    const controls = [...document.querySelectorAll("button, input, select, a[href]")]
      .filter((e) => shown(e) && !e.closest("[hidden]"))
      .map((e) => ({
        what: `${e.tagName.toLowerCase()} "${
          (e.textContent ?? e.getAttribute("placeholder") ?? "").trim().slice(0, 40)
        }"`,
        ...box(e),
      }));
    const overflow = ["#feed", "#thread-feed", "#sidebar"]
      .map((s) => document.querySelector(s))
      .filter((e): e is NonNullable<typeof e> => !!e && shown(e))
      .filter((e) => e.scrollWidth > e.clientWidth + 1)
      .map((e) => `#${e.id}: ${e.scrollWidth} > ${e.clientWidth}`);
    const composer = document.querySelector("#composer");
    return {
      width: innerWidth,
      height: innerHeight,
      pageScrollWidth: document.documentElement.scrollWidth,
      panes,
      controls,
      overflow,
      composer: composer && shown(composer) ? box(composer) : undefined,
    };
  });
}

/** Asserts no pane overlaps another, nothing sticks out sideways, and the command box is on screen. */
async function assertLayout(page: Page, what: string, opts: { composer: boolean }) {
  const l = await layout(page);
  assert.ok(
    l.pageScrollWidth <= l.width,
    `${what}: the page scrolls sideways (${l.pageScrollWidth} > ${l.width})`,
  );
  assert.deepEqual(l.overflow, [], `${what}: a pane's content is wider than the pane`);
  for (let i = 0; i < l.panes.length; i++) {
    const a = l.panes[i];
    assert.ok(
      a.left >= -1 && a.right <= l.width + 1,
      `${what}: ${a.id} is outside the screen ${JSON.stringify(a)}`,
    );
    for (const b of l.panes.slice(i + 1)) {
      const w = Math.min(a.right, b.right) - Math.max(a.left, b.left);
      const h = Math.min(a.bottom, b.bottom) - Math.max(a.top, b.top);
      assert.ok(w <= 1 || h <= 1, `${what}: ${a.id} and ${b.id} overlap by ${w}×${h} px`);
    }
  }
  const outside = l.controls.filter((c) => c.left < -1 || c.right > l.width + 1);
  assert.deepEqual(outside, [], `${what}: controls reaching past the screen's sides`);
  if (opts.composer) {
    assert.ok(l.composer, `${what}: the command box is shown`);
    assert.ok(
      l.composer.top >= 0 && l.composer.bottom <= l.height + 1 && l.composer.width >= 200,
      `${what}: the command box is on screen and usable ${JSON.stringify(l.composer)}`,
    );
  }
  return l;
}

Deno.test({
  name: "sandbox console: files in the direct-message view for their person only, emoji, layouts from 390 px",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async (t) => {
    const shots = await screenshotDir("console-ui");
    console.log(`screenshots: ${shots}`);
    let sb: Sandbox | undefined;
    let dataDir: string | undefined;
    let browser: Browser | undefined;
    try {
      ({ sb, dataDir } = await startSmallSandbox("bisman-console-ui-"));
      browser = await launchChromium();
      const page = await browser.newPage({ viewport: { width: 1400, height: 900 }, acceptDownloads: true });
      // The suite runs many clusters in parallel on two cores: give each wait room.
      page.setDefaultTimeout(45_000);
      const pageErrors: string[] = [];
      page.on("pageerror", (e) => pageErrors.push(String(e)));
      const c = consoleDriver(page, shots);
      const sandbox = sb;
      let fileHref = "";
      let fileId = "";

      await t.step(
        "an audit search with CSV as alice: the file is in her direct messages, whole",
        async () => {
          await page.goto(sandbox.url);
          await page.waitForSelector("body[data-ready]");
          await c.actAs("alice", "U0ALICE");
          await c.command("/bisman audit table=clients since=24h format=csv");
          await c.waitText("#feed", "sent to you in a direct message");
          await c.command("/bisman audit-log export");
          await c.waitText("#feed", "exported to bisman-audit-log-");
          await page.waitForFunction(() => document.querySelector("#dm-unread")?.textContent === "2");
          assert.equal(await page.locator("#dm-unread[hidden]").count(), 0, "two unread items in the DM");
          await c.shot("audit-answer-with-unread-dm");
          await page.click('[data-view="dm"]');
          const card = page.locator('#feed .file-card[data-file-name$=".csv"]');
          await card.waitFor();
          const shared = sandbox.slack.files.find((f) =>
            f.completed && /^bisman-audit-.*\.csv$/.test(f.filename)
          )!;
          assert.ok(shared, "the stand-in holds the shared CSV");
          assert.equal(shared.channel, sandbox.slack.directMessageOf("U0ALICE"), "shared in alice's DM");
          fileId = shared.id;
          const meta = await c.text('#feed .file-card[data-file-name$=".csv"] .file-meta');
          assert.ok(meta.includes(shared.filename), `the card names the file: ${meta}`);
          assert.match(meta, new RegExp(`${shared.length} B · shared in bisman-ops \\(direct message\\)`));
          await c.waitText("#feed", "sensitive columns redacted");
          assert.ok(await page.locator("#dm-unread[hidden]").count() === 1, "seen once opened");

          // The download button hands the browser the file's bytes.
          const [download] = await Promise.all([
            page.waitForEvent("download"),
            card.locator("a.file-download").click(),
          ]);
          assert.equal(download.suggestedFilename(), shared.filename);
          const downloaded = await Deno.readTextFile((await download.path())!);
          assert.equal(downloaded, shared.content, "the download is the uploaded CSV, byte for byte");
          assert.match(downloaded, /^id,occurred_at,table,action,row_id,/);
          assert.ok(downloaded.trim().split("\n").length >= 2, "with rows");
          fileHref = (await card.locator("a.file-download").getAttribute("href"))!;

          // The audit-log export is there too, and its link serves its bytes.
          const exported = sandbox.slack.files.find((f) =>
            f.completed && /^bisman-audit-log-.*\.jsonl$/.test(f.filename)
          )!;
          assert.ok(exported, "the stand-in holds the shared export");
          const link = page.locator(
            `#feed .file-card[data-file-name="${exported.filename}"] a.file-download`,
          );
          const href = (await link.getAttribute("href"))!;
          const body = await page.evaluate(async (u) => await (await fetch(u)).text(), href);
          assert.equal(body, exported.content, "the export downloads whole");
          await c.shot("dm-with-csv-and-export");
        },
      );

      await t.step("as bob the file is neither listed nor downloadable", async () => {
        await c.actAs("bob", "U0BOB");
        await c.waitText("#feed", "No direct messages yet");
        assert.equal(await page.locator(".file-card").count(), 0, "no file in bob's direct messages");
        assert.ok(!(await c.text("body")).includes("bisman-audit-"), "nor its name anywhere on bob's page");
        await c.shot("bob-dm-empty");
        await page.click('[data-view="channel"]');
        await page.waitForSelector('body[data-view="channel"]');
        assert.equal(await page.locator(".file-card").count(), 0, "nor in #ops");
        const asBob = fileHref.replace("user=U0ALICE", "user=U0BOB");
        assert.notEqual(asBob, fileHref);
        const r = await page.evaluate(async (u) => {
          const res = await fetch(u);
          return { status: res.status, body: await res.text() };
        }, asBob);
        assert.equal(r.status, 404, "bob's download is refused like a file that does not exist");
        assert.ok(!r.body.includes("occurred_at"), "with none of its bytes");
        const unknown = await page.evaluate(
          async (u) => (await fetch(u)).status,
          fileHref.replace(fileId, "FNOSUCHFILE"),
        );
        assert.equal(unknown, 404);
        const alice = await page.evaluate(async (u) => (await fetch(u)).status, fileHref);
        assert.equal(alice, 200, "the same link as alice works (so the 404 above is about bob)");
      });

      await t.step("emoji codes render as emoji; an unknown code stays as text", async () => {
        await c.actAs("alice", "U0ALICE");
        await c.command("/bisman config check");
        await c.waitText("#feed", "is valid");
        await c.command("/bisman status");
        await c.waitText("#feed", "bisman-ops status");
        const drawn = await page.evaluate(() =>
          [...document.querySelectorAll("#feed [data-emoji]")].map((e) => e.getAttribute("data-emoji"))
        );
        assert.ok(drawn.includes("mag"), `config check's :mag: is drawn (drawn: ${drawn.join(", ")})`);
        // :page_facing_up: (the export's answer) was among the codes the console showed as text.
        assert.ok(drawn.includes("page_facing_up"), "the export's :page_facing_up: is drawn");
        const feed = await c.text("#feed");
        const codes = feed.match(/(^|[\s(])(:[a-z][a-z0-9_+-]*:)(?=$|[\s.,)])/g) ?? [];
        assert.deepEqual(codes, [], "no emoji code is left as text in #ops");
        const html = await page.evaluate(() => mrkdwn("*done* :white_check_mark: :not_an_emoji_we_know:"));
        assert.match(html, /data-emoji="white_check_mark"/);
        assert.match(html, /:not_an_emoji_we_know:/, "an unknown code stays as typed, as in Slack");
        await c.shot("emoji");
      });

      await t.step(
        "at 390×844, 768×1024 and 1400×900 no pane overlaps and nothing scrolls sideways",
        async () => {
          // A thread to open: an alert, and a read-only button that answers in its thread.
          await page.click('[data-trouble="fire-alert"]');
          await c.waitText("#feed", "FIRING HighReplicationLag", 60_000);
          await page.locator('#feed button[data-action-id="bisman.alert.show_lag"]').last().click();
          await page.locator("#feed button.replies").last().waitFor({ timeout: 45_000 });
          for (const [width, height] of [[390, 844], [768, 1024], [1400, 900]]) {
            await page.setViewportSize({ width, height });
            // Loaded at this size, as a phone or tablet would.
            await page.reload();
            await page.waitForSelector("body[data-ready]");
            await page.waitForFunction(() => document.querySelector("#feed .msg") !== null);
            const at = `${width}x${height}`;
            await assertLayout(page, `${at} #ops`, { composer: true });
            await c.shot(`${at}-channel`);
            await page.click('[data-view="dm"]');
            await page.locator("#feed .file-card").first().waitFor();
            await assertLayout(page, `${at} direct messages`, { composer: true });
            await c.shot(`${at}-dm`);
            await page.click('[data-view="channel"]');
            await page.locator("#feed button.replies").last().click();
            await c.waitText("#thread-feed", "replica1");
            const l = await assertLayout(page, `${at} thread`, { composer: width >= 1100 });
            assert.ok(
              l.panes.some((p) => p.id === "thread" && p.width >= Math.min(360, width - 20)),
              "a readable thread",
            );
            await c.shot(`${at}-thread`);
            await page.click("#thread-close");
            // The trouble panel folds on a narrow screen; opened, it still overlaps nothing.
            const open = () =>
              page.evaluate(() =>
                (document.querySelector("#trouble-box") as unknown as { open: boolean }).open
              );
            if (!(await open())) await page.locator("#trouble-box summary").click();
            assert.equal(await open(), true);
            await page.locator('[data-trouble="fire-alert"]').scrollIntoViewIfNeeded();
            await assertLayout(page, `${at} trouble panel open`, { composer: true });
            await c.shot(`${at}-trouble`);
          }
        },
      );
      assert.deepEqual(pageErrors, [], "no script errors on the page");
    } finally {
      await browser?.close().catch(() => {});
      await sb?.stop();
      if (dataDir) await Deno.remove(dataDir, { recursive: true }).catch(() => {});
    }
  },
});
