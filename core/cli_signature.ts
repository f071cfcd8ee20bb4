/**
 * Per-person signatures of break-glass CLI commands. The CLI's identity is the PostgreSQL login that
 * submitted the command (sql/0009_cli_inbox.sql), and a superuser of the state database can become any login
 * (`SET SESSION AUTHORIZATION`) and submit as that person. A login with a public key in
 * `access.cli_keys` must sign what it submits with its private key (Ed25519), which is not in the database:
 * the bot runs a command of that login only when the signature covers the login, the exact command line,
 * its options and a time within {@link MAX_SKEW_MS} of the bot's clock.
 *
 * Keys: `openssl genpkey -algorithm ed25519 -out ~/.config/bisman/cli-key.pem` (mode 600), and its public
 * half `openssl pkey -in ~/.config/bisman/cli-key.pem -pubout` (the base64 line between the PEM markers goes
 * into `access.cli_keys`).
 *
 * @module
 */

import { createPrivateKey, createPublicKey, type KeyObject, sign, verify } from "node:crypto";
import { Buffer } from "node:buffer";
import { canonicalJson } from "./audit.ts";

/** How far a signature's time may be from the bot's clock: a signed command cannot be replayed later. */
export const MAX_SKEW_MS = 5 * 60_000;

/** Option keys that are not signed: the signature itself, and the pickup wait the CLI adds afterwards. */
const UNSIGNED = new Set(["sig", "signed_at", "wait_seconds"]);

/** What a signature covers. */
export function signedText(login: string, command: string, options: Record<string, unknown>, at: string) {
  const opts = Object.fromEntries(Object.entries(options).filter(([k]) => !UNSIGNED.has(k)));
  return canonicalJson({ v: 1, login, command, options: opts, signed_at: at });
}

/** A public key as `access.cli_keys` holds it: the base64 of its DER SubjectPublicKeyInfo (the PEM body). */
export function parsePublicKey(text: string): KeyObject {
  const body = text.replace(/-----[A-Z ]+-----/g, "").replace(/\s+/g, "");
  const key = createPublicKey({ key: Buffer.from(body, "base64"), format: "der", type: "spki" });
  if (key.asymmetricKeyType !== "ed25519") throw new Error("not an Ed25519 public key");
  return key;
}

/** A private key from its PEM (PKCS #8), as openssl genpkey writes it. */
export function parsePrivateKey(pem: string): KeyObject {
  const key = createPrivateKey(pem);
  if (key.asymmetricKeyType !== "ed25519") throw new Error("not an Ed25519 private key");
  return key;
}

/** Signs a command: the options to send with it (`signed_at`, `sig` added). */
export function signCliCommand(
  key: KeyObject,
  login: string,
  command: string,
  options: Record<string, unknown>,
  now: Date,
): Record<string, unknown> {
  const at = now.toISOString();
  const sig = sign(null, Buffer.from(signedText(login, command, options, at), "utf8"), key).toString(
    "base64",
  );
  return { ...options, signed_at: at, sig };
}

/**
 * Checks a command's signature with the login's public key.
 * @returns undefined when it holds, else why not, in words
 */
export function checkCliSignature(
  publicKey: string,
  login: string,
  command: string,
  options: Record<string, unknown>,
  now: Date,
): string | undefined {
  const { sig, signed_at: at } = options;
  if (typeof sig !== "string" || typeof at !== "string") {
    return "it carries no signature, and this login signs its commands (access.cli_keys)";
  }
  const t = Date.parse(at);
  if (!Number.isFinite(t) || Math.abs(t - now.getTime()) > MAX_SKEW_MS) {
    return `it was signed at ${at.slice(0, 40)}, not within ${MAX_SKEW_MS / 60_000} minutes of now`;
  }
  let ok = false;
  try {
    ok = verify(
      null,
      Buffer.from(signedText(login, command, options, at), "utf8"),
      parsePublicKey(publicKey),
      Buffer.from(sig, "base64"),
    );
  } catch {
    ok = false;
  }
  return ok ? undefined : "its signature is not this login's for this command";
}
