/**
 * Whether the "take a backup first" step (promote, roles apply) can run, decided from the server it reads.
 *
 * Every on-demand backup source reads the target's primary: pgBackRest backs up the primary (`pg1`), and the
 * dump folder is filled by `pg_dump` of the primary's database. A promotion is asked for exactly when that
 * primary is down, so a step that dumps from it would only fail and stop the promotion it was meant to protect.
 * The step therefore runs only when the primary answers as a writable primary; otherwise it is skipped, and the
 * reason is a note on the plan and an audit entry, both when the request is made and when it runs (the primary
 * may die between the two).
 *
 * Kept apart from gate/request.ts and gate/run.ts so their call sites stay one line each.
 *
 * @module
 */

import type { AppDeps } from "../core/deps.ts";
import type { OpDeps } from "../ops/types.ts";
import { describeProbe, probeMember } from "../ops/_member_probe.ts";

/** The audit fields shared with the request's other entries. */
type AuditBase = { actor: string; actorName?: string; target?: string; requestId: number };

/** What the request records about the step. */
export interface BackupFirstPlan {
  /** The value of the request's `pre_backup`: true (kept, toggleable), undefined (not offered). */
  preBackup: true | undefined;
  /** Why an offered step is skipped, when it is. */
  skipped?: string;
}

/**
 * Why the step cannot run now (the primary does not answer as a writable primary), or undefined when it can.
 * Never throws.
 */
export async function whyBackupFirstCannotRun(
  deps: Pick<OpDeps, "targets" | "config" | "secrets" | "log">,
  target: string,
): Promise<string | undefined> {
  let primary;
  try {
    primary = deps.targets.member(target, "primary");
  } catch (err) {
    return `target ${target} is not configured (${err instanceof Error ? err.message : String(err)})`;
  }
  const p = await probeMember(primary, deps);
  if (p.state === "writable") return undefined;
  return `the backup would read the primary, and the primary ${describeProbe(p)}; ` +
    `every backup source of ${target} (pgBackRest, pg_dump) reads from it`;
}

/**
 * Decides the step when a request is made: offered (`offered`, from the config) and the primary up -> kept;
 * offered and the primary not up -> skipped, with a plan note and a `request.backup_first_skipped` audit entry
 * appended by {@link recordBackupFirstPlan}.
 */
export async function planBackupFirst(
  deps: OpDeps,
  offered: boolean,
  target: string | undefined,
): Promise<BackupFirstPlan> {
  if (!offered || !target) return { preBackup: undefined };
  const why = await whyBackupFirstCannotRun(deps, target);
  return why ? { preBackup: undefined, skipped: why } : { preBackup: true };
}

/** The plan note of a skipped step (shown on the approval message with the other notes). */
export function backupFirstNotes(p: BackupFirstPlan): string[] {
  return p.skipped ? [`Step 0, take a backup first: skipped: ${p.skipped}`] : [];
}

/** Appends `request.backup_first_skipped` (with the reason) when the step was skipped at request time. */
export async function recordBackupFirstPlan(
  deps: Pick<AppDeps, "audit">,
  base: AuditBase,
  p: BackupFirstPlan,
): Promise<void> {
  if (!p.skipped) return;
  await deps.audit.append({
    ...base,
    action: "request.backup_first_skipped",
    outcome: "skipped",
    details: { reason: p.skipped },
  });
}

/**
 * At run time, for a request whose step is kept: skips it (audited as `op.backup_first` / `skipped`, with the
 * reason) when the primary no longer answers as a writable primary, otherwise runs `backup`.
 * @returns what `backup` returns (why it failed), or undefined when it succeeded or was skipped
 */
export async function backupFirstUnlessPrimaryDown(
  deps: Pick<AppDeps, "audit" | "log">,
  opDeps: OpDeps,
  target: string | null,
  base: AuditBase,
  backup: () => Promise<string | undefined>,
): Promise<string | undefined> {
  const why = target ? await whyBackupFirstCannotRun(opDeps, target) : undefined;
  if (!why) return await backup();
  for (let attempt = 1;; attempt++) {
    try {
      await deps.audit.append({
        ...base,
        action: "op.backup_first",
        outcome: "skipped",
        details: { reason: why },
      });
      break;
    } catch (err) {
      // The skip must be on record before the operation runs without its backup: unrecorded, nothing runs.
      if (attempt >= 3) {
        deps.log.error("could not record a skipped backup-first step", {
          request: base.requestId,
          error: err,
        });
        return `the backup step had to be skipped (${why}), and the skip could not be recorded in the audit log`;
      }
      await new Promise((r) => setTimeout(r, 200 * attempt));
    }
  }
  deps.log.warn("backup-first step skipped", { request: base.requestId, reason: why });
  return undefined;
}
