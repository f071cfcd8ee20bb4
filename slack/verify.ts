/**
 * Slack request signing: https://api.slack.com/authentication/verifying-requests-from-slack
 *
 * `v0=` + hex(HMAC-SHA256(signing secret, "v0:" + timestamp + ":" + raw body)), compared in constant time,
 * with the timestamp within five minutes of now, in the past or the future (replay window). Checked on the
 * raw bytes before any parsing.
 *
 * Hand-written on `node:crypto`'s HMAC rather than `@slack/bolt`'s `verifySlackRequest`, which it replaced:
 * Bolt's compares with `tsscmp`, which computes two more HMACs (with a random key) per request, and the
 * three made up a sixth of the bot's CPU per acknowledged command (bench/_ack_profile.ts); Bolt's also accepts
 * a timestamp any distance in the future (a request signed for later could be replayed until then) and throws
 * a TypeError on a missing signature. Every check Bolt makes is made here: the `v0` scheme, the timestamp's
 * age, the signature, in constant time. tests/slack/verify_test.ts holds the two to the same answers.
 *
 * @module
 */

import { createHmac } from "node:crypto";
import { HmacSha256 } from "../core/hmac.ts";

/** Why a request was refused; used as a metric label and in the audit log. */
export type SignatureProblem = "missing_headers" | "stale_timestamp" | "bad_timestamp" | "bad_signature";

/** Slack's replay window. */
export const REPLAY_WINDOW_SECONDS = 5 * 60;

/** Length of a `v0=` signature: the prefix and SHA-256 in hex. */
const SIGNATURE_LENGTH = 3 + 64;

/**
 * Verifies one request. (A promise for the callers written against WebCrypto; the work is synchronous.)
 * @returns undefined when the request is authentic and fresh, else the problem
 */
export function verifySlackSignature(
  secret: string,
  headers: { signature?: string | null; timestamp?: string | null },
  rawBody: string,
  nowSeconds = Math.floor(Date.now() / 1000),
): Promise<SignatureProblem | undefined> {
  return Promise.resolve(checkSignature(secret, headers, rawBody, nowSeconds));
}

/** The same check, synchronous (the receiver's hot path needs no promise). */
export function checkSignature(
  secret: string,
  headers: { signature?: string | null; timestamp?: string | null },
  rawBody: string,
  nowSeconds = Math.floor(Date.now() / 1000),
): SignatureProblem | undefined {
  const { signature, timestamp } = headers;
  if (!signature || !timestamp) return "missing_headers";
  if (!/^\d{1,12}$/.test(timestamp)) return "bad_timestamp";
  if (Math.abs(Number(timestamp) - nowSeconds) > REPLAY_WINDOW_SECONDS) return "stale_timestamp";
  // Only the v0 scheme exists; anything else (another version, no "=", a truncated hash) is not a signature.
  if (!secret || signature.length !== SIGNATURE_LENGTH || !signature.startsWith("v0=")) {
    return "bad_signature";
  }
  const expected = hmacSha256Hex(secret, `v0:${timestamp}:${rawBody}`);
  return constantTimeEqual(signature, "v0=" + expected) ? undefined : "bad_signature";
}

/** The HMAC of the last secret seen (a receiver has one). */
let hmacOf: { secret: string; hmac: HmacSha256 } | undefined;

/** HMAC-SHA-256 in hex under `secret`, its pads kept between calls (core/hmac.ts says why). */
export function hmacSha256Hex(secret: string, message: string): string {
  if (hmacOf?.secret !== secret) hmacOf = { secret, hmac: new HmacSha256(secret) };
  return hmacOf.hmac.hex(message);
}

/**
 * Equality of two strings of the same length in time that depends only on that length, not on where they
 * first differ (the length of a signature is public).
 */
export function constantTimeEqual(a: string, b: string): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a.charCodeAt(i) ^ b.charCodeAt(i);
  return diff === 0;
}

/** Signs a body as Slack would (used by the CLI's self-test and the stand-ins' callers). */
export function signSlackBody(secret: string, rawBody: string, timestamp: number): Promise<string> {
  return Promise.resolve(
    `v0=${createHmac("sha256", secret).update(`v0:${timestamp}:${rawBody}`).digest("hex")}`,
  );
}
