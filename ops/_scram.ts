/**
 * New role passwords and their SCRAM-SHA-256 verifiers, computed in the bot so PostgreSQL never sees the
 * plaintext.
 *
 * The verifier is what libpq's `PQencryptPasswordConn(..., "scram-sha-256")` produces (RFC 5802/7677 as
 * PostgreSQL stores it in `pg_authid.rolpassword`):
 *
 * ```
 * SCRAM-SHA-256$<iterations>:<salt b64>$<StoredKey b64>:<ServerKey b64>
 * SaltedPassword = PBKDF2-HMAC-SHA-256(SASLprep(password), salt, iterations)
 * ClientKey = HMAC(SaltedPassword, "Client Key"); StoredKey = SHA-256(ClientKey)
 * ServerKey = HMAC(SaltedPassword, "Server Key")
 * ```
 *
 * `ALTER ROLE ... PASSWORD '<verifier>'` stores a string in that exact shape as is, so the server log,
 * pg_stat_statements and any audit trigger see only the verifier, never the password.
 *
 * @module
 */

/** Standard base64 with padding, as libpq writes it. */
function encodeBase64(bytes: Uint8Array): string {
  let bin = "";
  for (const b of bytes) bin += String.fromCharCode(b);
  return btoa(bin);
}

/** libpq's defaults: 16-byte salt, 4096 iterations (`SCRAM_DEFAULT_SALT_LEN`, `SCRAM_SHA_256_DEFAULT_ITERATIONS`). */
export const SCRAM_SALT_BYTES = 16;
export const SCRAM_ITERATIONS = 4096;

/**
 * A verifier as this module writes it: iterations, a 16-byte salt (24 base64 characters) and two 32-byte
 * keys (44 base64 characters each). Its alphabet is `[A-Za-z0-9+/=:$-]`, none of which needs quoting in
 * an SQL string literal.
 */
export const SCRAM_VERIFIER_RE =
  /^SCRAM-SHA-256\$[1-9][0-9]{3,6}:[A-Za-z0-9+/]{22}==\$[A-Za-z0-9+/]{43}=:[A-Za-z0-9+/]{43}=$/;

/**
 * A new password as the seed makes them (`openssl rand -base64 32`): 32 bytes from the platform's CSPRNG
 * (`crypto.getRandomValues`), base64-encoded (44 ASCII characters).
 * @example
 * generatePassword().length; // 44
 */
export function generatePassword(): string {
  return encodeBase64(crypto.getRandomValues(new Uint8Array(32)));
}

/**
 * Computes the SCRAM-SHA-256 verifier of `password`.
 *
 * SASLprep: for printable ASCII (U+0020-U+007E) SASLprep is the identity (nothing is mapped, normalised or
 * prohibited), so this accepts only such passwords, which covers every password this bot generates
 * (base64). Anything else is refused rather than hashed differently from the server.
 *
 * @param opts `salt` (16 bytes; random by default) and `iterations` (default 4096), for tests
 * @throws {RangeError} for a password outside printable ASCII or an empty one (the message never contains it)
 * @example
 * await scramVerifier("secret"); // "SCRAM-SHA-256$4096:<salt>$<StoredKey>:<ServerKey>"
 */
export async function scramVerifier(
  password: string,
  opts: { salt?: Uint8Array; iterations?: number } = {},
): Promise<string> {
  if (!/^[\x20-\x7e]+$/.test(password)) {
    throw new RangeError("Password must be non-empty printable ASCII so that SASLprep leaves it unchanged");
  }
  const salt = opts.salt ?? crypto.getRandomValues(new Uint8Array(SCRAM_SALT_BYTES));
  if (salt.length !== SCRAM_SALT_BYTES) throw new RangeError(`Salt must be ${SCRAM_SALT_BYTES} bytes`);
  const iterations = opts.iterations ?? SCRAM_ITERATIONS;
  const enc = new TextEncoder();
  const pwKey = await crypto.subtle.importKey("raw", enc.encode(password), "PBKDF2", false, ["deriveBits"]);
  const salted = new Uint8Array(
    await crypto.subtle.deriveBits(
      { name: "PBKDF2", hash: "SHA-256", salt: salt as Uint8Array<ArrayBuffer>, iterations },
      pwKey,
      256,
    ),
  );
  const hmacKey = await crypto.subtle.importKey(
    "raw",
    salted,
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign"],
  );
  const clientKey = new Uint8Array(await crypto.subtle.sign("HMAC", hmacKey, enc.encode("Client Key")));
  const storedKey = new Uint8Array(await crypto.subtle.digest("SHA-256", clientKey));
  const serverKey = new Uint8Array(await crypto.subtle.sign("HMAC", hmacKey, enc.encode("Server Key")));
  return `SCRAM-SHA-256$${iterations}:${encodeBase64(salt)}$${encodeBase64(storedKey)}:${
    encodeBase64(serverKey)
  }`;
}

/**
 * The verifier as an SQL string literal for `ALTER ROLE ... PASSWORD <literal>`.
 *
 * Why a literal: ALTER ROLE is a utility statement, and PostgreSQL accepts no bind parameters in utility
 * statements (`ALTER ROLE x PASSWORD $1` fails with "syntax error at or near $1"). The literal is built
 * only after the value matched {@link SCRAM_VERIFIER_RE}, whose alphabet holds no quote or backslash, so
 * nothing can break out of it.
 *
 * @throws {RangeError} when `verifier` is not in the exact shape {@link scramVerifier} produces
 */
export function verifierLiteral(verifier: string): string {
  if (!SCRAM_VERIFIER_RE.test(verifier)) {
    throw new RangeError("Refusing to build ALTER ROLE: the verifier is not in SCRAM-SHA-256 form");
  }
  return `'${verifier}'`;
}
