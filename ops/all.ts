/**
 * Imports every operation and registers it, so the gate, the CLI and the scheduler find them by name.
 * Importing this module once (bot.ts, cli.ts) is enough. A new operation is one import and one name in
 * the list below.
 *
 * @module
 */

import { registerOperations } from "./registry.ts";
import { backupStatus } from "./backup_status.ts";
import { restoreTest } from "./restore_test.ts";
import { replicationLag } from "./replication_lag.ts";
import { promoteReplica } from "./promote_replica.ts";
import { connections } from "./connections.ts";
import { terminateIdle } from "./terminate_idle.ts";
import { slowQueries } from "./slow_queries.ts";
import { rotateCredentials } from "./rotate_credentials.ts";
import { rotateRoot } from "./rotate_root.ts";
import { resetStatements } from "./reset_statements.ts";
import { unfreeze } from "./unfreeze.ts";

registerOperations(
  resetStatements,
  unfreeze,
);
registerOperations(rotateCredentials, rotateRoot);
registerOperations(replicationLag, promoteReplica, connections, terminateIdle, slowQueries);
// Backups and restore tests (issue 5).
registerOperations(backupStatus, restoreTest);
