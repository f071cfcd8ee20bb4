/**
 * Slack request signing: https://api.slack.com/authentication/verifying-requests-from-slack
 *
 * `v0=` + hex(HMAC-SHA256(signing secret, "v0:" + timestamp + ":" + raw body)), compared in constant time,
 * with the timestamp within five minutes of now (replay window). Checked on the raw bytes before any parsing.
 *
 * @module
 */

/** Why a request was refused; used as a metric label and in the audit log. */
export type SignatureProblem = "missing_headers" | "stale_timestamp" | "bad_timestamp" | "bad_signature";

/** Slack's replay window. */
export const REPLAY_WINDOW_SECONDS = 5 * 60;

import { createHmac } from "node:crypto";

const encoder = new TextEncoder();

/**
 * Hex HMAC-SHA256. node:crypto's synchronous HMAC, not WebCrypto: on every Slack request this is on the
 * ack's path, and WebCrypto's importKey + sign cost about five times as much per call (bench/load.ts).
 */
function hmacHex(secret: string, message: string): string {
  return createHmac("sha256", secret).update(message).digest("hex");
}

/** Constant-time comparison of two strings (length is not secret: signatures have a fixed length). */
export function timingSafeEqual(a: string, b: string): boolean {
  const x = encoder.encode(a);
  const y = encoder.encode(b);
  let diff = x.length ^ y.length;
  const n = Math.max(x.length, y.length);
  for (let i = 0; i < n; i++) diff |= (x[i] ?? 0) ^ (y[i] ?? 0);
  return diff === 0;
}

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

function checkSignature(
  secret: string,
  headers: { signature?: string | null; timestamp?: string | null },
  rawBody: string,
  nowSeconds: number,
): SignatureProblem | undefined {
  const { signature, timestamp } = headers;
  if (!signature || !timestamp) return "missing_headers";
  if (!/^\d{1,12}$/.test(timestamp)) return "bad_timestamp";
  if (Math.abs(nowSeconds - Number(timestamp)) > REPLAY_WINDOW_SECONDS) return "stale_timestamp";
  const expected = `v0=${hmacHex(secret, `v0:${timestamp}:${rawBody}`)}`;
  return timingSafeEqual(expected, signature) ? undefined : "bad_signature";
}

/** Signs a body as Slack would (used by the CLI's self-test and the stand-ins' callers). */
export function signSlackBody(secret: string, rawBody: string, timestamp: number): Promise<string> {
  return Promise.resolve(`v0=${hmacHex(secret, `v0:${timestamp}:${rawBody}`)}`);
}
