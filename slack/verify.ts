// Wraps Bolt's verifySlackRequest, which refuses only past timestamps and throws on a missing signature.
/**
 * Slack request signing: https://api.slack.com/authentication/verifying-requests-from-slack
 *
 * `v0=` + hex(HMAC-SHA256(signing secret, "v0:" + timestamp + ":" + raw body)), compared in constant time,
 * with the timestamp within five minutes of now (replay window). Checked on the raw bytes before any parsing.
 *
 * The signature itself is checked by `@slack/bolt`'s own `verifySlackRequest`. What this file adds is what
 * that function does not do: it accepts a timestamp any distance in the future (a request signed for later
 * could be replayed until then) and throws a TypeError when the signature header is missing; its errors are
 * messages, mapped here to the problem codes the receiver counts and audits.
 *
 * @module
 */

import { verifySlackRequest } from "@slack/bolt";
import { createHmac } from "node:crypto";

/** Why a request was refused; used as a metric label and in the audit log. */
export type SignatureProblem = "missing_headers" | "stale_timestamp" | "bad_timestamp" | "bad_signature";

/** Slack's replay window. */
export const REPLAY_WINDOW_SECONDS = 5 * 60;

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
  // Bolt refuses only the past side of the window.
  if (Number(timestamp) - nowSeconds > REPLAY_WINDOW_SECONDS) return "stale_timestamp";
  try {
    verifySlackRequest({
      signingSecret: secret,
      body: rawBody,
      headers: { "x-slack-signature": signature, "x-slack-request-timestamp": Number(timestamp) },
      nowMilliseconds: nowSeconds * 1000,
    });
    return undefined;
  } catch (err) {
    // "Failed to verify authenticity: x-slack-request-timestamp must differ from system time by no more
    // than 5 minutes or request is stale" / "…: unknown signature version" / "…: signature mismatch"
    return /stale/.test(err instanceof Error ? err.message : String(err))
      ? "stale_timestamp"
      : "bad_signature";
  }
}

/** Signs a body as Slack would (used by the CLI's self-test and the stand-ins' callers). */
export function signSlackBody(secret: string, rawBody: string, timestamp: number): Promise<string> {
  return Promise.resolve(
    `v0=${createHmac("sha256", secret).update(`v0:${timestamp}:${rawBody}`).digest("hex")}`,
  );
}
