/**
 * Imports every operation and registers it, so the gate, the CLI and the scheduler find them by name.
 * Importing this module once (bot.ts, cli.ts) is enough. A new operation is one import and one name in
 * the list below.
 *
 * @module
 */

import { registerOperations } from "./registry.ts";
import { rotateCredentials } from "./rotate_credentials.ts";
import { rotateRoot } from "./rotate_root.ts";
import { resetStatements } from "./reset_statements.ts";
import { unfreeze } from "./unfreeze.ts";

registerOperations(
  resetStatements,
  unfreeze,
);
registerOperations(rotateCredentials, rotateRoot);
