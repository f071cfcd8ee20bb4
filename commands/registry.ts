/**
 * Every `/bisman` subcommand, in the order help lists them. A new subcommand is one import and one line here.
 *
 * @module
 */

import type { Subcommand } from "./types.ts";
import { helpCommand } from "./help.ts";
import { statusCommand } from "./status.ts";
import { backupsCommand } from "./backups.ts";
import { restoreTestCommand } from "./restore_test.ts";
import { lagCommand } from "./lag.ts";
import { promoteCommand } from "./promote.ts";
import { connectionsCommand, terminateIdleCommand } from "./connections.ts";
import { slowQueriesCommand } from "./slow_queries.ts";
import { jobsCommand, runCommand } from "./jobs.ts";
import { digestCommand } from "./digest.ts";
import { checklistCommand } from "./checklist.ts";
import { rotateCommand } from "./rotate.ts";
import { credsCommand } from "./creds.ts";
import { freezeCommand, unfreezeCommand } from "./freeze.ts";
import { auditLogCommand } from "./audit_log.ts";
import { resetStatsCommand } from "./reset_stats.ts";
import { auditCommand } from "./audit.ts";
import { requestsCommand } from "./requests.ts";
import { cancelCommand } from "./cancel.ts";
import { backupNowCommand } from "./backup_now.ts";
import { configCommand } from "./config.ts";
import {
  applyTargetSqlCommand,
  detectCommand,
  rolesCommand,
  securityEventsCommand,
  tlsCommand,
  usageCommand,
} from "./security.ts";
import {
  blockCommand,
  lockRoleCommand,
  terminateCommand,
  unblockCommand,
  unlockRoleCommand,
} from "./incident.ts";

const subcommands: Subcommand<any>[] = [];

/** All registered subcommands. */
export function allSubcommands(): readonly Subcommand<any>[] {
  return subcommands;
}

/** Adds subcommands (used by feature modules and by tests that register a harmless destructive one). */
export function registerSubcommands(...list: Subcommand<any>[]): void {
  for (const s of list) {
    if (subcommands.some((x) => x.name === s.name)) {
      throw new Error(`Subcommand ${s.name} is registered twice`);
    }
    subcommands.push(s);
  }
}

registerSubcommands(helpCommand(allSubcommands), statusCommand);
registerSubcommands(jobsCommand, runCommand, digestCommand, checklistCommand);
registerSubcommands(freezeCommand, unfreezeCommand, auditLogCommand, resetStatsCommand);
registerSubcommands(lagCommand, connectionsCommand, slowQueriesCommand, promoteCommand, terminateIdleCommand);
registerSubcommands(backupsCommand, restoreTestCommand);
registerSubcommands(rotateCommand, credsCommand);
registerSubcommands(
  auditCommand,
  securityEventsCommand,
  detectCommand,
  usageCommand,
  rolesCommand,
  tlsCommand,
);
registerSubcommands(lockRoleCommand, unlockRoleCommand, terminateCommand, blockCommand, unblockCommand);
registerSubcommands(applyTargetSqlCommand);
// Everyday use (issue 11).
registerSubcommands(requestsCommand, cancelCommand, backupNowCommand, configCommand);
