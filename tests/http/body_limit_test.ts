import assert from "node:assert/strict";
import { startCluster } from "../../standins/cluster.ts";
import { SlackStandIn } from "../../standins/slack.ts";
import { testConfigDoc } from "../support/bot.ts";
import { spawnBot, writeConfigFile } from "../support/bot_process.ts";

const MB = 1024 * 1024;
const TOKEN = "body-limit-alerts-token-1f3a";

/** A process's resident memory and its peak so far, in bytes (/proc/<pid>/status). */
async function memoryOf(pid: number): Promise<{ rss: number; peak: number }> {
  const status = await Deno.readTextFile(`/proc/${pid}/status`);
  const kb = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(status)![1]) * 1024;
  return { rss: kb("VmRSS"), peak: kb("VmHWM") };
}

/**
 * POSTs `totalBytes` with `Transfer-Encoding: chunked` over a raw socket (no Content-Length for the server to
 * judge up front), reading the answer while writing; stops writing once the answer came or the server stopped
 * reading. Returns the status code and how many bytes were written.
 */
async function postChunked(
  port: number,
  path: string,
  headers: Record<string, string>,
  totalBytes: number,
): Promise<{ status: number; sent: number }> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const enc = new TextEncoder();
  const head = [
    `POST ${path} HTTP/1.1`,
    `Host: 127.0.0.1:${port}`,
    "Transfer-Encoding: chunked",
    ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`),
    "",
    "",
  ].join("\r\n");
  let answered = false;
  const reading = (async () => {
    const buf = new Uint8Array(4096);
    let text = "";
    while (!/\r\n/.test(text)) {
      const n = await conn.read(buf).catch(() => null);
      if (n === null) break;
      text += new TextDecoder().decode(buf.subarray(0, n));
    }
    answered = true;
    // A write blocked on a server that stopped reading ends with the connection.
    try {
      conn.close();
    } catch {
      // closed by the server already
    }
    return Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? 0);
  })();
  const piece = new Uint8Array(256 * 1024).fill(0x61); // "aaaa…": form-encoded, JSON-less, just big
  const chunk = new Uint8Array([
    ...enc.encode(`${piece.length.toString(16)}\r\n`),
    ...piece,
    ...enc.encode("\r\n"),
  ]);
  let sent = 0;
  try {
    await conn.write(enc.encode(head));
    while (sent < totalBytes && !answered) {
      let off = 0;
      while (off < chunk.length) off += await conn.write(chunk.subarray(off));
      sent += piece.length;
    }
    if (!answered) await conn.write(enc.encode("0\r\n\r\n"));
  } catch {
    // The server closed the connection after answering: what it answered is what counts.
  }
  return { status: await reading, sent };
}

Deno.test("a 100 MB chunked body gets 413 at /slack/events and /alerts while the bot's memory stays bounded", async (t) => {
  await using cluster = await startCluster({ name: "body-limit" });
  const slack = await SlackStandIn.start({});
  const stateDb = await cluster.createDatabase("state");
  const bot = await spawnBot({
    configFile: await writeConfigFile(testConfigDoc(cluster)),
    env: {
      SLACK_SIGNING_SECRET: slack.signingSecret,
      SLACK_BOT_TOKEN: slack.botToken,
      SLACK_API_URL: slack.apiUrl,
      DATABASE_URL: cluster.primary.url({ database: stateDb }),
      ALERTS_TOKEN: TOKEN,
    },
  });
  try {
    // Warm the routes first, so the figures compare the big bodies and not the first request's compilation.
    for (
      const [path, headers] of [
        ["/slack/events", { "content-type": "application/x-www-form-urlencoded" }],
        ["/alerts", { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" }],
      ] as const
    ) {
      const warm = await postChunked(bot.port, path, headers, 64 * 1024);
      assert.ok([400, 401].includes(warm.status), `${path} warm-up answered ${warm.status}`);
    }
    const before = await memoryOf(bot.pid);
    console.log(
      `bot before: RSS ${(before.rss / MB).toFixed(0)} MB, peak ${(before.peak / MB).toFixed(0)} MB`,
    );

    for (
      const [path, headers] of [
        ["/slack/events", { "content-type": "application/x-www-form-urlencoded" }],
        ["/alerts", { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" }],
      ] as const
    ) {
      await t.step(`${path}: 413 long before the 100 MB are sent`, async () => {
        const r = await postChunked(bot.port, path, headers, 100 * MB);
        assert.equal(r.status, 413);
        assert.ok(r.sent < 100 * MB, `${(r.sent / MB).toFixed(1)} MB written before the answer`);
        console.log(`${path}: 413 after ${(r.sent / MB).toFixed(1)} MB written`);
      });
    }

    await t.step("the bot's peak memory grew by far less than the body", async () => {
      const after = await memoryOf(bot.pid);
      console.log(
        `bot after: RSS ${(after.rss / MB).toFixed(0)} MB, peak ${(after.peak / MB).toFixed(0)} MB`,
      );
      assert.ok(
        after.peak - before.peak < 64 * MB,
        `peak RSS grew by ${((after.peak - before.peak) / MB).toFixed(0)} MB`,
      );
      const res = await fetch(`${bot.url}/healthz`);
      assert.equal(res.status, 200, "and it still answers");
      await res.body?.cancel();
    });
  } finally {
    await bot.stop();
    await slack.stop();
  }
});
