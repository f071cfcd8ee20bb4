/**
 * The integrity key: an HMAC key kept outside the state database (`BISMAN_SIGNING_KEY`, from the bot's
 * Secret), so that whoever can write the state database still cannot forge what the bot wrote. It seals
 * approval requests and approvals (gate/seal.ts) and keys the audit chain (core/audit.ts).
 *
 * One secret, separate keys per purpose: each purpose's key is derived with HKDF-SHA-256 (RFC 5869) under
 * its own label, so a MAC made for one purpose never verifies for another. Every MAC names the key that
 * made it (a short key ID), so after a rotation the retired keys (`BISMAN_SIGNING_KEYS_RETIRED`) still
 * verify what they sealed while only the current key seals anything new.
 *
 * Synchronous `node:crypto` on purpose: the audit chain hashes batches of rows on the event loop that also
 * acks Slack (see core/audit.ts `chainHash`).
 *
 * @module
 */

import { createHash, hkdfSync, timingSafeEqual } from "node:crypto";
import { HmacSha256 } from "./hmac.ts";

/** What a MAC is for; each has its own derived key. */
export type KeyPurpose = "request" | "approval" | "audit" | "fingerprint";

/** Fewest bytes of key material accepted (256 bits). */
export const MIN_KEY_BYTES = 32;

/** A key that cannot be used, named by its variable. */
export class KeyError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "KeyError";
  }
}

/**
 * Decodes key material given as base64 (standard or URL-safe) or hex.
 * @throws {KeyError} when it is neither or shorter than 32 bytes
 */
export function decodeKey(text: string, name = "BISMAN_SIGNING_KEY"): Uint8Array {
  const t = text.trim();
  let bytes: Uint8Array | undefined;
  if (/^[0-9a-fA-F]+$/.test(t) && t.length % 2 === 0 && t.length >= MIN_KEY_BYTES * 2) {
    bytes = new Uint8Array(t.match(/../g)!.map((h) => parseInt(h, 16)));
  } else if (/^[A-Za-z0-9+/_-]+={0,2}$/.test(t)) {
    try {
      const b64 = t.replace(/-/g, "+").replace(/_/g, "/");
      bytes = Uint8Array.from(atob(b64.padEnd(Math.ceil(b64.length / 4) * 4, "=")), (c) => c.charCodeAt(0));
    } catch {
      bytes = undefined;
    }
  }
  if (!bytes) throw new KeyError(`${name} is neither base64 nor hex`);
  if (bytes.length < MIN_KEY_BYTES) {
    throw new KeyError(
      `${name} holds ${bytes.length} bytes; at least ${MIN_KEY_BYTES} are needed (openssl rand -base64 32)`,
    );
  }
  return bytes;
}

/** The short public name of a key: the first 8 hex digits of a SHA-256 over it under a fixed label. */
export function keyIdOf(material: Uint8Array): string {
  return createHash("sha256").update("bisman-ops key id\n").update(material).digest("hex").slice(0, 8);
}

/** The current key and the retired ones still accepted for verification. */
export class IntegrityKeys {
  /** The ID of the key that makes new MACs. */
  readonly currentId: string;
  readonly #derived = new Map<string, Record<KeyPurpose, HmacSha256>>();

  /**
   * @param current the key that seals from now on
   * @param retired keys that sealed in the past and may still be verified
   */
  constructor(current: Uint8Array, retired: Uint8Array[] = []) {
    this.currentId = keyIdOf(current);
    for (const k of [current, ...retired]) {
      const id = keyIdOf(k);
      if (this.#derived.has(id)) continue;
      const derive = (purpose: KeyPurpose) =>
        new HmacSha256(
          new Uint8Array(hkdfSync("sha256", k, "bisman-ops", `bisman-ops ${purpose} mac v1`, 32)),
        );
      this.#derived.set(id, {
        request: derive("request"),
        approval: derive("approval"),
        audit: derive("audit"),
        fingerprint: derive("fingerprint"),
      });
    }
  }

  /**
   * Reads `BISMAN_SIGNING_KEY` and `BISMAN_SIGNING_KEYS_RETIRED` (comma-separated).
   * @returns undefined when `BISMAN_SIGNING_KEY` is not set
   * @throws {KeyError} naming the variable that is malformed
   */
  static fromEnv(env: Record<string, string | undefined>): IntegrityKeys | undefined {
    const current = env.BISMAN_SIGNING_KEY?.trim();
    if (!current) return undefined;
    const retired = (env.BISMAN_SIGNING_KEYS_RETIRED ?? "").split(",").map((s) => s.trim()).filter(Boolean)
      .map((s, i) => decodeKey(s, `BISMAN_SIGNING_KEYS_RETIRED (entry ${i + 1})`));
    return new IntegrityKeys(decodeKey(current), retired);
  }

  /** A fresh random key, base64 (the sandbox's, and tests'). */
  static generate(): string {
    return btoa(String.fromCharCode(...crypto.getRandomValues(new Uint8Array(MIN_KEY_BYTES))));
  }

  /** Whether a key with this ID is held (current or retired). */
  holds(keyId: string): boolean {
    return this.#derived.has(keyId);
  }

  /** Hex HMAC-SHA-256 of `data` under the current key's `purpose` key. */
  mac(purpose: KeyPurpose, data: string): string {
    return this.macWith(this.currentId, purpose, data)!;
  }

  /** Hex HMAC-SHA-256 under the key `keyId`, or undefined when that key is not held. */
  macWith(keyId: string, purpose: KeyPurpose, data: string): string | undefined {
    const k = this.#derived.get(keyId)?.[purpose];
    return k?.hex(data);
  }

  /** Whether `mac` is the MAC of `data` under key `keyId` (constant time). */
  verify(keyId: string, purpose: KeyPurpose, data: string, mac: string): boolean {
    const want = this.macWith(keyId, purpose, data);
    if (!want || typeof mac !== "string" || mac.length !== want.length) return false;
    return timingSafeEqual(new TextEncoder().encode(want), new TextEncoder().encode(mac));
  }
}
