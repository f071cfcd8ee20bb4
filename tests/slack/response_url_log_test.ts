import assert from "node:assert/strict";
import createRespondModule from "@slack/bolt/dist/context/create-respond.js";
import { createLogger, maskSlackHookUrls, Secrets } from "../../core/log.ts";
import { respondReliably } from "../../slack/bolt_app.ts";
import { Metrics } from "../../core/metrics.ts";

const { createRespond } = createRespondModule as unknown as {
  createRespond: (f: typeof fetch, url: string) => (m: unknown) => Promise<unknown>;
};

/** A response_url as Slack issues it: its last part is what makes it a bearer link. */
const SECRET_PART = "q8ZtGmU7pW3xY1kLrN0vB5cD";
const RESPONSE_URL = `https://hooks.slack.com/commands/T0123ABCD/1234567890123/${SECRET_PART}`;

Deno.test("a response_url that cannot be reached is logged without its secret part", async (t) => {
  await t.step(
    "the failed fetch's error names the URL, and the log line keeps only host and kind",
    async () => {
      // A real fetch that fails at the network: through a proxy on a port nobody listens on.
      const closed = Deno.listen({ hostname: "127.0.0.1", port: 0 });
      const port = (closed.addr as Deno.NetAddr).port;
      closed.close();
      const client = Deno.createHttpClient({ proxy: { url: `http://127.0.0.1:${port}` } });
      const viaDeadProxy: typeof fetch = (input, init) => fetch(input, { ...init, client });
      const lines: string[] = [];
      const log = createLogger(new Secrets(), { sink: (l) => lines.push(l) });
      const send = respondReliably(
        createRespond(viaDeadProxy, RESPONSE_URL),
        { log, metrics: new Metrics() },
        {
          delaysMs: [1],
          timeoutMs: 5_000,
        },
      );
      const err = await send({ text: "done" }).then(() => undefined, (e: unknown) => e);
      client.close();
      assert.ok(err, "the answer could not be delivered");
      log.warn("the response_url did not take the answer", { error: err });
      const all = lines.join("\n");
      assert.ok(lines.length >= 2, all);
      assert.ok(!all.includes(SECRET_PART), all);
      assert.match(all, /hooks\.slack\.com\/commands\/\[redacted\]/);
    },
  );

  await t.step("every kind of Slack hook URL is masked, other URLs are not", () => {
    for (
      const [url, kept] of [
        [RESPONSE_URL, "hooks.slack.com/commands/"],
        [
          `https://hooks.slack.com/actions/T0123ABCD/1234567890123/${SECRET_PART}`,
          "hooks.slack.com/actions/",
        ],
        [`https://hooks.slack.com/services/T0123ABCD/B0123ABCD/${SECRET_PART}`, "hooks.slack.com/services/"],
        [
          `https://hooks.slack-gov.com/commands/T0123ABCD/1234567890123/${SECRET_PART}`,
          "slack-gov.com/commands/",
        ],
      ]
    ) {
      const out = maskSlackHookUrls(`error sending request for url (${url}): connection refused`);
      assert.ok(!out.includes(SECRET_PART), out);
      assert.ok(out.includes(`${kept}[redacted]): connection refused`), out);
    }
    const plain = "https://slack.com/api/chat.postMessage failed";
    assert.equal(maskSlackHookUrls(plain), plain);
  });
});
