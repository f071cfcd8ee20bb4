import assert from "node:assert/strict";
import { verifySlackRequest } from "@slack/bolt";
import { signSlackBody, verifySlackSignature } from "../../slack/verify.ts";

const SECRET = "8f742231b10e8888abcd99yyyzzz85a5";
const NOW = 1_700_000_000;
const BODY = "token=x&team_id=T0TEST&command=%2Fbisman&text=help";

Deno.test("verifySlackSignature(): Bolt's verifier plus the two checks it lacks (future timestamps, a missing header)", async (t) => {
  const sign = (ts: number, body = BODY) => signSlackBody(SECRET, body, ts);
  const check = async (ts: number, sig?: string | null, body = BODY) =>
    await verifySlackSignature(SECRET, { signature: sig, timestamp: String(ts) }, body, NOW);

  await t.step("authentic and fresh: accepted, at both edges of the window", async () => {
    assert.equal(await check(NOW, await sign(NOW)), undefined);
    assert.equal(await check(NOW - 300, await sign(NOW - 300)), undefined);
    assert.equal(await check(NOW + 300, await sign(NOW + 300)), undefined);
  });

  await t.step("Bolt's own refusals keep their codes: old, tampered, another version", async () => {
    assert.equal(await check(NOW - 301, await sign(NOW - 301)), "stale_timestamp");
    assert.equal(await check(NOW, await sign(NOW), `${BODY}x`), "bad_signature");
    assert.equal(await check(NOW, (await sign(NOW)).replace("v0=", "v1=")), "bad_signature");
    assert.equal(await check(NOW, "v0="), "bad_signature");
  });

  await t.step("a timestamp from the future is refused here; Bolt alone accepts it", async () => {
    const ts = NOW + 3600;
    const sig = await sign(ts);
    assert.equal(await check(ts, sig), "stale_timestamp");
    assert.doesNotThrow(() =>
      verifySlackRequest({
        signingSecret: SECRET,
        body: BODY,
        headers: { "x-slack-signature": sig, "x-slack-request-timestamp": ts },
        nowMilliseconds: NOW * 1000,
      })
    );
  });

  await t.step("a missing signature is a refusal here; Bolt alone throws a TypeError", async () => {
    assert.equal(await check(NOW, undefined), "missing_headers");
    assert.equal(await check(NOW, null), "missing_headers");
    assert.equal(
      await verifySlackSignature(SECRET, { signature: await sign(NOW) }, BODY, NOW),
      "missing_headers",
    );
    assert.equal(
      await verifySlackSignature(SECRET, { signature: await sign(NOW), timestamp: "12e3" }, BODY, NOW),
      "bad_timestamp",
    );
    assert.throws(
      () =>
        verifySlackRequest({
          signingSecret: SECRET,
          body: BODY,
          headers: { "x-slack-signature": undefined as never, "x-slack-request-timestamp": NOW },
          nowMilliseconds: NOW * 1000,
        }),
      TypeError,
    );
  });
});
