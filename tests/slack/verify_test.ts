import assert from "node:assert/strict";
import { verifySlackRequest } from "@slack/bolt";
import { createHmac } from "node:crypto";
import { HmacSha256 } from "../../core/hmac.ts";
import { constantTimeEqual, hmacSha256Hex, signSlackBody, verifySlackSignature } from "../../slack/verify.ts";

const SECRET = "8f742231b10e8888abcd99yyyzzz85a5";
const NOW = 1_700_000_000;
const BODY = "token=x&team_id=T0TEST&command=%2Fbisman&text=help";

Deno.test("verifySlackSignature(): every check of Bolt's verifier plus the two it lacks (future timestamps, a missing header)", async (t) => {
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

  await t.step(
    "whatever Bolt's verifier refuses is refused, and what it accepts (within the window) accepted",
    async () => {
      const good = await sign(NOW);
      const hash = good.slice(3);
      const cases: [string, number, string][] = [
        ["authentic", NOW, good],
        ["upper-case hex", NOW, `v0=${hash.toUpperCase()}`],
        ["truncated", NOW, good.slice(0, -1)],
        ["one more character", NOW, `${good}0`],
        ["another version with the right hash", NOW, `v1=${hash}`],
        ["no scheme", NOW, hash],
        [
          "one hex digit changed",
          NOW,
          `v0=${hash.slice(0, 10)}${hash[10] === "0" ? "1" : "0"}${hash.slice(11)}`,
        ],
        ["signed for another time", NOW, await sign(NOW - 1)],
        ["just past the window", NOW - 301, await sign(NOW - 301)],
        ["at the window's edge", NOW - 300, await sign(NOW - 300)],
      ];
      for (const [what, ts, sig] of cases) {
        let boltAccepts = true;
        try {
          verifySlackRequest({
            signingSecret: SECRET,
            body: BODY,
            headers: { "x-slack-signature": sig, "x-slack-request-timestamp": ts },
            nowMilliseconds: NOW * 1000,
          });
        } catch {
          boltAccepts = false;
        }
        assert.equal((await check(ts, sig)) === undefined, boltAccepts, what);
      }
    },
  );

  await t.step("a signature with a suffix after a second '=' (Bolt ignores it) is refused", async () => {
    assert.equal(await check(NOW, `${await sign(NOW)}=x`), "bad_signature");
  });

  await t.step("no signing secret: nothing is authentic", async () => {
    const sig = await signSlackBody("", BODY, NOW);
    assert.equal(
      await verifySlackSignature("", { signature: sig, timestamp: String(NOW) }, BODY, NOW),
      "bad_signature",
    );
  });
});

Deno.test("constantTimeEqual(): equal only for the same characters, any length mismatch false", () => {
  assert.equal(constantTimeEqual("v0=abc", "v0=abc"), true);
  assert.equal(constantTimeEqual("v0=abc", "v0=abd"), false);
  assert.equal(constantTimeEqual("v0=abc", "v0=ab"), false);
  assert.equal(constantTimeEqual("", ""), true);
  assert.equal(constantTimeEqual("a", "A"), false);
});

Deno.test("hmacSha256Hex(): the same as node:crypto's HMAC for keys up to, at and past one block, and non-ASCII text", () => {
  const keys = [
    "",
    "k",
    SECRET,
    "x".repeat(63),
    "y".repeat(64),
    "z".repeat(65),
    "é".repeat(40),
    "s".repeat(300),
  ];
  const messages = ["", BODY, "v0:1:ünïcödé ✓ \u{1F600}", "m".repeat(5000)];
  // Alternating keys also checks that the pads cached for one secret are not used for another.
  for (const m of messages) {
    for (const k of keys) {
      assert.equal(
        hmacSha256Hex(k, m),
        createHmac("sha256", k).update(m, "utf8").digest("hex"),
        `${k.length}/${m.length}`,
      );
    }
  }
});

Deno.test("HmacSha256 (core/hmac.ts): the same as node:crypto's HMAC for byte keys, as the integrity keys use it", () => {
  for (const length of [0, 1, 32, 64, 65, 200]) {
    const key = crypto.getRandomValues(new Uint8Array(length));
    const hmac = new HmacSha256(key);
    for (const m of ["", "a".repeat(64), BODY, "ünïcödé \u{1F600}"]) {
      assert.equal(
        hmac.hex(m),
        createHmac("sha256", key).update(m, "utf8").digest("hex"),
        `${length}/${m.length}`,
      );
    }
  }
});
