/**
 * Cleanup of restore tests a crash interrupted: drops scratch databases that carry the bot's marker and
 * whose target has no restore test running (the per-target advisory lock proves that, across replicas),
 * and marks their history rows failed. A database without the marker is never dropped, whatever its name:
 * it is only reported. A plain function, so the scheduler, the CLI and tests call the same code.
 *
 * @module
 */

import postgres from "postgres";
import { connectionOptions } from "../core/targets.ts";
import { OpsError } from "../core/errors.ts";
import type { OpDeps } from "./types.ts";
import { dropScratch, listScratch } from "./_scratch.ts";
import { markInterrupted, tryWithRestoreLock } from "./restore_history.ts";
import { restoreServer } from "./restore_test.ts";
import { own } from "../core/lookup.ts";

/** What one cleanup pass did. */
export interface CleanupReport {
  /** Marked scratch databases dropped. */
  dropped: { target: string; database: string }[];
  /** Databases that look like scratch databases but were left alone, and why. */
  refused: { target: string; database: string; reason: string }[];
  /** Targets skipped because a restore test is running right now. */
  busy: string[];
  /** History rows marked failed (interrupted runs). */
  interrupted: number[];
  /** Targets whose restore server could not be cleaned, and why. */
  errors: { target: string; message: string }[];
}

/**
 * Cleans every target with restore tests (or the given ones).
 * @returns what it dropped, refused and skipped; never throws for one target's failure
 */
export async function cleanupRestoreScratch(
  deps: OpDeps,
  opts: { targets?: string[] } = {},
): Promise<CleanupReport> {
  const report: CleanupReport = { dropped: [], refused: [], busy: [], interrupted: [], errors: [] };
  const names = (opts.targets ?? Object.keys(deps.config.targets)).filter((t) =>
    own(deps.config.targets, t)?.restore_test
  );
  const configured = new Set(names);
  for (const target of names) {
    let server;
    try {
      server = restoreServer(deps, target);
    } catch (err) {
      if (err instanceof OpsError) continue; // restore tests cannot run there either: nothing to clean
      throw err;
    }
    const admin = postgres({
      ...connectionOptions(server.conn, await deps.targets.password(server.conn)),
      max: 1,
    });
    try {
      const outcome = await tryWithRestoreLock(deps.state, target, async () => {
        for (const c of await listScratch(admin)) {
          if (c.refusal) {
            // Seen by every target on a shared server; report it once.
            if (!report.refused.some((r) => r.database === c.name)) {
              report.refused.push({ target, database: c.name, reason: c.refusal });
            }
            continue;
          }
          if (c.marker!.target !== target) {
            if (!configured.has(c.marker!.target) && !report.refused.some((r) => r.database === c.name)) {
              report.refused.push({
                target,
                database: c.name,
                reason: `marked for target ${c.marker!.target}, which is not configured here`,
              });
            }
            continue;
          }
          const dropped = await dropScratch(admin, c.name, { target });
          if (dropped.dropped) report.dropped.push({ target, database: c.name });
          else if (!dropped.absent) {
            report.refused.push({ target, database: c.name, reason: dropped.refusal });
          }
        }
        report.interrupted.push(
          ...await markInterrupted(
            deps.state,
            target,
            deps.now(),
            "interrupted: the bot stopped during the test",
          ),
        );
      });
      if (outcome.busy) report.busy.push(target);
    } catch (err) {
      const msg = err instanceof Error ? err.message.split("\n")[0] : String(err);
      report.errors.push({ target, message: deps.secrets.scrub(msg).slice(0, 300) });
      deps.log.warn("restore cleanup failed", { target, error: err });
    } finally {
      await admin.end({ timeout: 2 }).catch(() => undefined);
    }
  }
  if (report.dropped.length || report.interrupted.length) {
    await deps.audit.append({
      actor: deps.actor ?? "scheduler",
      action: "restore_test.cleanup",
      outcome: "ok",
      details: { dropped: report.dropped, interrupted: report.interrupted, refused: report.refused },
    }).catch((err) => deps.log.error("audit append failed", { error: err }));
  }
  return report;
}
