/**
 * Imports every operation and registers it, so the gate, the CLI and the scheduler find them by name.
 * Importing this module once (bot.ts, cli.ts) is enough. A new operation is one import and one name in
 * the list below.
 *
 * @module
 */

import { registerOperations } from "./registry.ts";
import { auditSearch } from "./audit_search.ts";
import { securityEvents } from "./security_events.ts";
import { detectBypassOp } from "./detect_bypass.ts";
import { serviceUsage } from "./service_usage.ts";
import { roleDrift } from "./role_drift.ts";
import { rolesApply } from "./roles_apply.ts";
import { tlsCheck } from "./tls_check.ts";
import { lockRole } from "./lock_role.ts";
import { unlockRole } from "./unlock_role.ts";
import { terminateClient } from "./terminate_client.ts";
import { blockAddress } from "./block_address.ts";
import { unblockAddress } from "./unblock_address.ts";
import { applyTargetSqlOp } from "./apply_target_sql.ts";
import { backupStatus } from "./backup_status.ts";
import { restoreTest } from "./restore_test.ts";
import { restoreTestGated } from "./restore_test_gated.ts";
import { replicationLag } from "./replication_lag.ts";
import { promoteReplica } from "./promote_replica.ts";
import { connections } from "./connections.ts";
import { terminateIdle } from "./terminate_idle.ts";
import { slowQueries } from "./slow_queries.ts";
import { rotateCredentials } from "./rotate_credentials.ts";
import { rotateRoot } from "./rotate_root.ts";
import { resetStatements } from "./reset_statements.ts";
import { unfreeze } from "./unfreeze.ts";
import { vacuumStats } from "./vacuum_stats.ts";
import { backupNow } from "./backup_now.ts";

registerOperations(
  resetStatements,
  unfreeze,
);
registerOperations(rotateCredentials, rotateRoot);
// Jobs (issue 8): the autovacuum check and the cleanup job, which on demand runs through the gate.
registerOperations(vacuumStats);
registerOperations(replicationLag, promoteReplica, connections, terminateIdle, slowQueries);
// Audit and security (issue 7).
registerOperations(auditSearch, securityEvents, detectBypassOp, serviceUsage, roleDrift, tlsCheck);
registerOperations(
  rolesApply,
  lockRole,
  unlockRole,
  terminateClient,
  blockAddress,
  unblockAddress,
  applyTargetSqlOp,
);
// Backups and restore tests (issue 5).
registerOperations(backupStatus, restoreTest, restoreTestGated);
// Everyday use (issue 11): on-demand backups.
registerOperations(backupNow);
