/**
 * What the sandbox's browser tests share: a sandbox started small in a temporary folder, Chromium from
 * /usr/bin/chromium through playwright-core, and a driver for the console page (clicks, typing, waits and a
 * numbered screenshot per step).
 *
 * @module
 */

import { type Browser, chromium, type Page } from "playwright-core";
import { type Sandbox, startSandbox } from "../../sandbox/dev.ts";

const root = new URL("../../", import.meta.url).pathname;

// The functions given to page.evaluate/waitForFunction run in the browser; this types the part they use.
declare const document: {
  querySelector(selector: string): { textContent: string | null } | null;
  body: { dataset: Record<string, string | undefined> };
};

/** A sandbox in a fresh temporary folder, with few rows and no pgBackRest stanza (seconds that show nothing here). */
export async function startSmallSandbox(prefix: string): Promise<{ sb: Sandbox; dataDir: string }> {
  const dataDir = await Deno.makeTempDir({ prefix });
  // Like a checkout's .data: reachable by the postgres user, so the cluster stays inside it.
  await Deno.chmod(dataDir, 0o755);
  try {
    const sb = await startSandbox({
      dataDir,
      port: 0,
      rows: {
        clients: 200,
        invoices: 200,
        payment_requests: 200,
        payments: 100,
        audit_rows: 500,
        app_users: 50,
      },
      // The stanza and its full backup take seconds and show nothing here; tests/sandbox/dev_test.ts has them.
      pgbackrest: false,
      log: () => {},
    });
    return { sb, dataDir };
  } catch (err) {
    await Deno.remove(dataDir, { recursive: true }).catch(() => {});
    throw err;
  }
}

/** Headless Chromium, as installed on the machine. */
export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: "/usr/bin/chromium",
    headless: true,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--no-first-run",
    ],
  });
}

/** A fresh folder under tests/out/ (git-ignored) for one run's screenshots. */
export async function screenshotDir(name: string): Promise<string> {
  const dir = `${root}tests/out/${name}-${new Date().toISOString().replace(/[:.]/g, "-")}`;
  await Deno.mkdir(dir, { recursive: true });
  return dir;
}

/** Clicks, typing and waits on the console page, with a numbered screenshot per step. */
export function consoleDriver(page: Page, dir: string) {
  let n = 0;
  const text = (selector: string) =>
    page.evaluate((s) => document.querySelector(s)?.textContent ?? "", selector);
  return {
    shot: async (name: string) => {
      const path = `${dir}/${String(++n).padStart(2, "0")}-${name}.png`;
      await page.screenshot({ path });
      return path;
    },
    /** Waits until the element's text contains `needle`. */
    waitText: async (selector: string, needle: string, timeout = 45_000) => {
      try {
        await page.waitForFunction(
          ([s, t]) => (document.querySelector(s)?.textContent ?? "").includes(t),
          [selector, needle],
          { timeout, polling: 100 },
        );
      } catch (err) {
        throw new Error(
          `"${needle}" did not appear in ${selector}; it shows:\n${(await text(selector)).slice(-1500)}`,
          {
            cause: err,
          },
        );
      }
    },
    text,
    actAs: async (name: string, id: string) => {
      await page.click(`[data-user="${name}"]`);
      // The feed is fetched again for the new user; wait until their view is on screen.
      await page.waitForFunction((u) => document.body.dataset.feedUser === u, id, { timeout: 30_000 });
    },
    command: async (line: string) => {
      await page.fill("#command", line);
      await page.press("#command", "Enter");
    },
  };
}
