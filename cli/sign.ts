/**
 * The CLI's side of per-person signatures (core/cli_signature.ts): with `BISMAN_CLI_KEY_FILE` naming the
 * person's Ed25519 private key (PEM, mode 600), every command it submits is signed, so the bot can tell it
 * from one a superuser of the state database submitted under the person's login.
 *
 * @module
 */

import { OpsError } from "../core/errors.ts";
import { parsePrivateKey, signCliCommand } from "../core/cli_signature.ts";

/** The variable naming the person's private key file. */
export const CLI_KEY_ENV = "BISMAN_CLI_KEY_FILE";

/**
 * The options to submit with `command`: signed with the person's key when `BISMAN_CLI_KEY_FILE` is set, else
 * as they are.
 * @throws {OpsError} when the key file cannot be read, is readable by others, or is not an Ed25519 key
 */
export async function signedOptions(
  env: Record<string, string | undefined>,
  login: string,
  command: string,
  options: Record<string, unknown>,
): Promise<Record<string, unknown>> {
  const path = env[CLI_KEY_ENV];
  if (!path) return options;
  let pem: string;
  try {
    const info = await Deno.stat(path);
    if (info.mode !== null && (info.mode & 0o077) !== 0) {
      throw new OpsError(
        "invalid_input",
        `${CLI_KEY_ENV} ${path} can be read by others (mode ${
          (info.mode & 0o777).toString(8)
        }): chmod 600 it`,
      );
    }
    pem = await Deno.readTextFile(path);
  } catch (err) {
    if (err instanceof OpsError) throw err;
    throw new OpsError("invalid_input", `Cannot read ${CLI_KEY_ENV} ${path}: ${(err as Error).message}`);
  }
  let key;
  try {
    key = parsePrivateKey(pem);
  } catch {
    throw new OpsError("invalid_input", `${CLI_KEY_ENV} ${path} is not an Ed25519 private key (PEM)`);
  }
  return signCliCommand(key, login, command, options, new Date());
}
