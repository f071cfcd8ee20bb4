import assert from "node:assert/strict";
import { AUDIT_LOCK } from "../../core/audit.ts";
import { startCluster } from "../../standins/cluster.ts";
import { waitFor } from "../../standins/wait.ts";
import { startTestBot, TEAM, USERS } from "../support/bot.ts";

/**
 * `POST /slack/events` is answered before Hono (http/app.ts), so what Hono's middlewares do on the other
 * routes is done there by hand; these steps hold it to the same behaviour over a real socket.
 */
Deno.test("POST /slack/events outside Hono keeps the request id, body limit, log line and counter", async (t) => {
  await using cluster = await startCluster({ name: "slack-route" });
  const stateDb = await cluster.createDatabase("state");
  const tb = await startTestBot(cluster, { stateDb, start: { slackBodyDeadlineMs: 1_000 } });
  let stopped = false;
  /** A signed `/bisman help` body with its headers, as the Slack stand-in signs it. */
  const signed = () => {
    const body = new URLSearchParams({
      command: "/bisman",
      text: "help",
      user_id: USERS.alice,
      user_name: "alice",
      team_id: TEAM,
      channel_id: "C0OPS",
      response_url: tb.slack.responseUrl({ user: USERS.alice, channel: "C0OPS" }),
      trigger_id: "1.2.route",
    }).toString();
    const headers = {
      "content-type": "application/x-www-form-urlencoded",
      ...tb.slack.sign(body, Math.floor(Date.now() / 1000)),
    };
    return { body, headers };
  };
  try {
    await t.step(
      "a proxy's sane X-Request-Id is kept, echoed and carried by the request's log line",
      async () => {
        const { body, headers } = signed();
        const res = await fetch(tb.eventsUrl, {
          method: "POST",
          headers: { ...headers, "x-request-id": "lb-7f3a_9=" },
          body,
        });
        assert.equal(res.status, 200);
        assert.equal(res.headers.get("x-request-id"), "lb-7f3a_9=");
        assert.match(JSON.stringify(await res.json()), /rotate/);
        const line = await waitFor(
          () => tb.logs.find((l) => l.includes('"http request"') && l.includes("lb-7f3a_9=")),
          { what: "the request's log line" },
        );
        const parsed = JSON.parse(line);
        assert.equal(parsed.route, "/slack/events");
        assert.equal(parsed.status, 200);
        assert.equal(parsed.method, "POST");
      },
    );

    await t.step("an X-Request-Id Hono's requestId would refuse is replaced by a fresh id", async () => {
      for (const bad of ["has space", "semi;colon", "x".repeat(65)]) {
        const { body, headers } = signed();
        const res = await fetch(tb.eventsUrl, {
          method: "POST",
          headers: { ...headers, "x-request-id": bad },
          body,
        });
        assert.equal(res.status, 200);
        await res.body?.cancel();
        const id = res.headers.get("x-request-id");
        assert.notEqual(id, bad);
        assert.match(id ?? "", /^[0-9a-f]{16}$/);
      }
    });

    await t.step("a chunked body under the limit is read whole and its signature holds", async () => {
      const { body, headers } = signed();
      const bytes = new TextEncoder().encode(body);
      const stream = new ReadableStream<Uint8Array>({
        start(c) {
          // Three chunks: no Content-Length, Transfer-Encoding: chunked.
          c.enqueue(bytes.slice(0, 10));
          c.enqueue(bytes.slice(10, 100));
          c.enqueue(bytes.slice(100));
          c.close();
        },
      });
      const res = await fetch(tb.eventsUrl, { method: "POST", headers, body: stream });
      assert.equal(res.status, 200);
      assert.match(JSON.stringify(await res.json()), /rotate/);
    });

    await t.step("a declared length over 1 MiB gets 413 body_too_large, counted", async () => {
      const res = await fetch(tb.eventsUrl, {
        method: "POST",
        headers: { "content-type": "application/x-www-form-urlencoded" },
        body: "a".repeat(1024 * 1024 + 1),
      });
      assert.equal(res.status, 413);
      assert.equal((await res.json()).error, "body_too_large");
      assert.match(res.headers.get("x-request-id") ?? "", /^[0-9a-f]{16}$/);
    });

    /**
     * Sends `head` (request line, headers and the start of a body) over a raw socket and reads the answer
     * until `until` shows in it (fetch would not show an answer before its own body ended). No answer in 8 s
     * returns what came, so the step fails instead of hanging the suite.
     */
    const rawRequest = async (head: string, until: RegExp) => {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port: tb.bot.port });
      const sent = performance.now();
      let answer = "";
      const giveUp = setTimeout(() => conn.close(), 8_000);
      try {
        await conn.write(new TextEncoder().encode(head));
        const buf = new Uint8Array(4096);
        while (!until.test(answer)) {
          const n = await conn.read(buf);
          if (n === null) break;
          answer += new TextDecoder().decode(buf.subarray(0, n));
        }
      } catch (err) {
        if (!(err instanceof Deno.errors.BadResource || err instanceof Deno.errors.Interrupted)) throw err;
      } finally {
        clearTimeout(giveUp);
        try {
          conn.close();
        } catch { /* closed by giveUp */ }
      }
      return { answer, waited: performance.now() - sent };
    };
    const formHead = "POST /slack/events HTTP/1.1\r\nHost: 127.0.0.1\r\n" +
      "Content-Type: application/x-www-form-urlencoded\r\n";
    const refusals = async (reason: string) =>
      (await tb.bot.deps.audit.rows()).filter((r) =>
        r.action === "slack.request_refused" && JSON.stringify(r.details).includes(reason)
      ).length;

    await t.step(
      "a body still arriving after the deadline gets 408 body_timeout, chunked or with a Content-Length",
      async () => {
        // The headers and the start of a body, then nothing more: a client that holds the connection open.
        for (
          const head of [
            `${formHead}Transfer-Encoding: chunked\r\n\r\n7\r\ncommand\r\n`,
            `${formHead}Content-Length: 100\r\n\r\ncommand`,
          ]
        ) {
          const { answer, waited } = await rawRequest(head, /body_timeout/);
          assert.match(answer, /^HTTP\/1\.1 408 /, answer);
          assert.match(answer, /"error":"body_timeout"/);
          assert.ok(waited >= 900, `answered after ${Math.round(waited)} ms, before the 1 s deadline`);
        }
        const refused = await waitFor(
          () => tb.logs.find((l) => l.includes('"http request"') && l.includes('"status":408')),
          { what: "the 408's log line" },
        );
        assert.match(refused, /"route":"\/slack\/events"/);
        await waitFor(async () => (await refusals("body_timeout")) === 2, {
          what: "both refusals in the audit log",
        });
      },
    );

    await t.step(
      "a client that closes its connection mid-body is a refusal within the budget, not an unhandled error",
      async () => {
        const conn = await Deno.connect({ hostname: "127.0.0.1", port: tb.bot.port });
        await conn.write(new TextEncoder().encode(`${formHead}Content-Length: 100\r\n\r\ncommand`));
        await new Promise((r) => setTimeout(r, 200));
        conn.close();
        await waitFor(async () => (await refusals("body_cut_off")) === 1, {
          what: "the cut-off body refused and audited",
        });
        assert.ok(!tb.logs.some((l) => l.includes("unhandled HTTP error")), "no unhandled error line");
      },
    );

    await t.step(
      "a query string still reaches the receiver; other paths and methods are Hono's 404",
      async () => {
        const unsigned = await fetch(`${tb.eventsUrl}?retry=1`, {
          method: "POST",
          body: "command=%2Fbisman",
        });
        assert.equal(unsigned.status, 401);
        assert.equal((await unsigned.json()).error, "missing_headers");
        for (const [method, url] of [["GET", tb.eventsUrl], ["POST", `${tb.eventsUrl}/more`]]) {
          const res = await fetch(url, { method, body: method === "POST" ? "x" : undefined });
          assert.equal(res.status, 404, `${method} ${url}`);
          assert.equal((await res.json()).error, "not found");
        }
      },
    );

    await t.step("every delivery is counted by route and status on /metrics", async () => {
      const metrics = await waitFor(async () => {
        const text = await (await fetch(`${tb.bot.url}/metrics`)).text();
        return /bisman_http_requests_total\{route="\/slack\/events",status="413"\} 1/.test(text) && text;
      }, { what: "the 413 counted" });
      const ok = /bisman_http_requests_total\{route="\/slack\/events",status="200"\} (\d+)/.exec(metrics);
      assert.equal(Number(ok?.[1]), 5);
      assert.match(metrics, /bisman_http_requests_total\{route="\/slack\/events",status="401"\} 1/);
      assert.match(metrics, /bisman_http_requests_total\{route="\/slack\/events",status="408"\} 2/);
      assert.match(metrics, /bisman_slack_rejected_total\{reason="body_timeout"\} 2/);
      assert.match(metrics, /bisman_slack_rejected_total\{reason="body_cut_off"\} 1/);
      assert.doesNotMatch(metrics, /status="500"/);
    });

    await t.step(
      "a burst's audit rows are all written before stop() returns, though each listener ended first",
      async () => {
        const state = cluster.primary.sql(stateDb);
        try {
          const count = async () =>
            (await state<{ n: number }[]>`
            select count(*)::int as n from bisman_ops.audit_log where action = 'command.received'`)[0].n;
          const before = await count();
          // The audit log's append lock is held meanwhile, so the rows still wait when stop() begins.
          const blocker = await state.reserve();
          await blocker`select pg_advisory_lock(${AUDIT_LOCK})`;
          try {
            const answers = await Promise.all(Array.from({ length: 300 }, async () => {
              const { body, headers } = signed();
              const res = await fetch(tb.eventsUrl, { method: "POST", headers, body });
              await res.body?.cancel();
              return res.status;
            }));
            assert.ok(answers.every((s) => s === 200));
            stopped = true;
            const stopping = tb.stop();
            await new Promise((r) => setTimeout(r, 500));
            await blocker`select pg_advisory_unlock(${AUDIT_LOCK})`;
            await stopping;
          } finally {
            blocker.release();
          }
          assert.equal(await count(), before + 300);
        } finally {
          await state.end();
        }
      },
    );
  } finally {
    if (!stopped) await tb.stop();
  }
});
