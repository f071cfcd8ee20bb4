/**
 * The scheduled side of issue 5, as job definitions for the scheduler (jobs/registry.ts swaps its
 * "not built" placeholders for these with `replaceJob`):
 *
 * - `backup_status` (hourly by default): reads every target's backup sources and posts only when a
 *   target's judgement gets worse than at the previous run (or on a manual run), so the channel hears about
 *   a failing archive_command once, not every hour.
 * - `restore_test` (monthly, the seed's schedule): runs the restore test of every target with
 *   `restore_test.scheduled: true` and posts each result. Targets whose restore tests need approval are
 *   skipped with a note: nobody can approve a request at 03:00 on the 1st, and the gate's approvers should
 *   ask for it themselves (`/bisman restore-test <target>`).
 *
 * @module
 */

import type { JobDefinition, JobLevel } from "./types.ts";
import { OpsError } from "../core/errors.ts";
import { type BackupStatusReport, readBackupStatus } from "../ops/backup_status.ts";
import type { Severity } from "../ops/_findings.ts";
import {
  planRestoreTest,
  restoreTestNeedsApproval,
  type RestoreTestResult,
  runRestoreTest,
} from "../ops/restore_test.ts";
import { renderBackups } from "../views/backups.ts";
import { renderRestoreResult } from "../views/restore_test.ts";
import { own } from "../core/lookup.ts";

const rank: Record<Severity, number> = { ok: 0, warning: 1, critical: 2 };

/** Backup status of every target with backups configured; posts when a target gets worse. */
export const backupStatusJob: JobDefinition = {
  name: "backup_status",
  summary: "Newest backups and WAL archiving of every target; posts when it gets worse",
  defaultCron: "0 * * * *",
  destructive: false,
  unavailable: (deps) =>
    Object.values(deps.config.targets).some((t) => t.backups || t.restore_test)
      ? undefined
      : "no target has backups or restore_test configured",
  run: async (ctx) => {
    const names = ctx.deps.targets.names().filter((n) =>
      own(ctx.deps.config.targets, n)!.backups || own(ctx.deps.config.targets, n)!.restore_test
    );
    const reports: BackupStatusReport[] = [];
    for (const target of names) reports.push(await readBackupStatus(target, ctx.deps));
    const before = (ctx.previous?.details?.severity ?? {}) as Record<string, Severity>;
    const worse = reports.filter((r) => rank[r.severity] > rank[before[r.target] ?? "ok"]);
    const post = ctx.trigger === "manual" ? reports : worse;
    const message = post.length ? await ctx.post(renderBackups(post, ctx.deps.now())) : undefined;
    const level: JobLevel = reports.reduce<Severity>(
      (w, r) => (rank[r.severity] > rank[w] ? r.severity : w),
      "ok",
    );
    return {
      summary: reports.map((r) => `${r.target}: ${r.severity}`).join(", ") +
        (worse.length ? `; worse: ${worse.map((r) => r.target).join(", ")}` : ""),
      level,
      details: { severity: Object.fromEntries(reports.map((r) => [r.target, r.severity])) },
      message,
    };
  },
};

/** The monthly restore test of every scheduled target; posts each result. */
export const restoreTestJob: JobDefinition = {
  name: "restore_test",
  summary: "Restores the newest dump of every target into a scratch database and verifies it",
  defaultCron: "0 3 1 * *",
  destructive: false,
  unavailable: (deps) =>
    Object.values(deps.config.targets).some((t) => t.restore_test?.scheduled)
      ? undefined
      : "no target has restore_test configured (and scheduled)",
  run: async (ctx) => {
    const deps = { ...ctx.deps, actor: "scheduler" };
    const names = deps.targets.names().filter((n) => own(deps.config.targets, n)!.restore_test?.scheduled);
    const results: RestoreTestResult[] = [];
    const skipped: string[] = [];
    let message;
    for (const target of names) {
      if (ctx.signal.aborted) break;
      try {
        if (restoreTestNeedsApproval(deps, target)) {
          skipped.push(`${target} (needs approval: ask with /bisman restore-test ${target})`);
          continue;
        }
        const result = await runRestoreTest(await planRestoreTest({ target }, deps), deps, {
          trigger: "schedule",
        });
        results.push(result);
        message = await ctx.post(renderRestoreResult(result));
      } catch (err) {
        const why = err instanceof OpsError ? deps.secrets.scrub(err.userMessage) : "internal error";
        if (!(err instanceof OpsError)) ctx.log.warn("scheduled restore test failed", { target, error: err });
        skipped.push(`${target} (${why})`);
      }
    }
    const failed = results.filter((r) => !r.passed);
    const level: JobLevel = failed.length ? "critical" : skipped.length ? "warning" : "ok";
    return {
      summary: [
        ...results.map((r) => `${r.target}: ${r.passed ? "passed" : `failed at ${r.error?.step}`}`),
        ...skipped.map((s) => `skipped ${s}`),
      ].join("; ") || "no target to test",
      level,
      details: {
        runs: results.map((r) => ({ target: r.target, id: r.id, passed: r.passed, restore_ms: r.restoreMs })),
        skipped,
      },
      message,
    };
  },
};
