/**
 * `restore_test`: restores the newest (or a named) dump of a target into a scratch database on the
 * configured restore server with `pg_restore -j <N> --exit-on-error`, runs the configured verification
 * queries there (and, where configured, on the source to compare counts within a tolerance), drops the
 * scratch database, and records the run: its duration is the measured RTO, the dump's age an upper bound
 * on RPO.
 *
 * Safety: the scratch database is created on the restore server, never on the production primary unless
 * `restore_test.allow_on_primary` says so (checked by address when planning and by system identifier when
 * running); it is dropped only if it carries this run's marker (ops/_scratch.ts). Production is only read.
 *
 * @module
 */

import { z } from "zod";
import postgres, { type Sql } from "postgres";
import type { ConnectionConfig, RestoreTestConfig, TargetConfig } from "../core/config.ts";
import { NotConfigured, OpsError, StepFailed } from "../core/errors.ts";
import { connectionOptions } from "../core/targets.ts";
import type { OpDeps, Operation, PlanBase } from "./types.ts";
import { type DumpFile, FolderUnreadable, listDumpFiles } from "./_dump_folder.ts";
import { humanAge, humanBytes } from "./_findings.ts";
import { libpqEnv, listDump, niced, runTool, toolError } from "./_pg_tools.ts";
import { createScratch, dropScratch, scratchName } from "./_scratch.ts";
import {
  recordFinish,
  recordStart,
  restoreStopRequested,
  type Verification,
  withRestoreLock,
} from "./restore_history.ts";
import { compareValues, errText, verifyRestored } from "./_restore_verify.ts";
import { own } from "../core/lookup.ts";

export { compareValues };

/** A dump file name as typed: no folder part, so it can only name a file in the configured folder. */
export const backupFileArg = z.string().regex(
  /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,200}$/,
  "a dump file name from the dump folder (letters, digits, _ . -)",
);

export const restoreTestArgs = z.strictObject({
  target: z.string().regex(/^[a-z_][a-z0-9_]{0,62}$/),
  backup: backupFileArg.optional(),
});
export type RestoreTestArgs = z.infer<typeof restoreTestArgs>;

/** The plan: which dump, where, how. */
export interface RestoreTestPlan extends PlanBase {
  target: string;
  backup: { name: string; path: string; size: number; mtime: string };
  /** `host:port` of the restore server. */
  server: string;
  onPrimary: boolean;
  jobs: number;
  verify: string[];
  /** `primary`, a replica's name, or undefined (no comparison). */
  compareWith?: string;
  tolerancePercent: number;
}

/** Phases a running test reports. */
export type RestorePhase = "reading dump" | "creating database" | "restoring" | "verifying" | "dropping";

/** A progress report while a test runs. */
export interface RestoreProgress {
  target: string;
  backup: string;
  phase: RestorePhase;
  objectsDone: number;
  objectsTotal?: number;
  verifyDone: number;
  verifyTotal: number;
  elapsedMs: number;
}

/** What a run found. */
export interface RestoreTestResult {
  id?: number;
  target: string;
  passed: boolean;
  backup: { name: string; size: number; createdAt?: string; dataAgeMs?: number };
  server: string;
  scratchDatabase: string;
  /** False when the scratch database could not be dropped (the message says why and what to do). */
  scratchDropped: boolean;
  objectsTotal?: number;
  /** CREATE DATABASE plus pg_restore: the measured RTO. */
  restoreMs?: number;
  totalMs: number;
  restoredBytes?: number;
  verifications: Verification[];
  /** The step that failed and why (pg_restore's own error for a bad dump). */
  error?: { step: string; message: string };
  /** Things the reader must act on (a scratch database left behind). */
  notes: string[];
  /** Set when someone stopped the run: who, in which phase, and how far the restore had got. */
  cancelled?: { by: string; phase: RestorePhase; objectsDone: number; objectsTotal?: number };
}

/** Options of a run beyond its plan. */
export interface RunOptions {
  onProgress?: (p: RestoreProgress) => void;
  trigger?: "command" | "schedule" | "approval" | "cli";
  /** Stops the run at a safe point (default: `deps.signal`, the approval gate's Stop). */
  signal?: AbortSignal;
}

/** How often a running test looks for a stop asked for on another replica (`/bisman cancel restore-test`). */
const STOP_POLL_MS = 1000;

/** Thrown inside a run when it was asked to stop. */
class Stopped extends Error {
  constructor(readonly by: string) {
    super(`stopped by ${by}`);
    this.name = "Stopped";
  }
}

/** The target's restore-test config. @throws {NotConfigured} when it has none */
export function restoreTestConfig(deps: Pick<OpDeps, "config">, target: string): {
  t: TargetConfig;
  rt: RestoreTestConfig;
} {
  const t = own(deps.config.targets, target);
  if (!t) {
    throw new NotConfigured(
      `Unknown target "${target}": configured targets are ${Object.keys(deps.config.targets).join(", ")}`,
    );
  }
  if (!t.restore_test) {
    throw new NotConfigured(
      `Restore tests are not configured for ${target}: add targets.${target}.restore_test`,
    );
  }
  return { t, rt: t.restore_test };
}

function sameServer(a: ConnectionConfig, b: ConnectionConfig): boolean {
  const norm = (h: string) => (h === "localhost" || h === "::1" ? "127.0.0.1" : h.toLowerCase());
  return norm(a.host) === norm(b.host) && a.port === b.port;
}

/**
 * Where a target's restore tests run.
 * @throws {NotConfigured} when no restore server is configured and the primary is not allowed, or the
 * configured server is the primary and that is not allowed
 */
export function restoreServer(deps: Pick<OpDeps, "config">, target: string): {
  conn: ConnectionConfig;
  label: string;
  onPrimary: boolean;
} {
  const { t, rt } = restoreTestConfig(deps, target);
  if (rt.server) {
    const onPrimary = sameServer(rt.server, t.primary);
    if (onPrimary && !rt.allow_on_primary) {
      throw new NotConfigured(
        `Refusing the restore test of ${target}: restore_test.server is its production primary (${t.primary.host}:${t.primary.port}). Point it at a scratch server, or set allow_on_primary: true`,
      );
    }
    return { conn: rt.server, label: `${rt.server.host}:${rt.server.port}`, onPrimary };
  }
  if (rt.allow_on_primary) {
    return { conn: t.primary, label: `${t.primary.host}:${t.primary.port} (primary)`, onPrimary: true };
  }
  throw new NotConfigured(
    `Refusing the restore test of ${target}: targets.${target}.restore_test.server is not set, and restoring on the production primary needs allow_on_primary: true`,
  );
}

/**
 * Whether a target's restore tests go through the approval gate: `requires_approval`, else true only when
 * they restore on the production primary (see the comment on restoreTestSchema in core/config.ts).
 */
export function restoreTestNeedsApproval(deps: Pick<OpDeps, "config">, target: string): boolean {
  const { rt } = restoreTestConfig(deps, target);
  if (rt.requires_approval !== undefined) return rt.requires_approval;
  return restoreServer(deps, target).onPrimary;
}

/** The member whose counts a test compares with, if any. */
function compareMember(t: TargetConfig, rt: RestoreTestConfig): string | undefined {
  if (rt.compare_with === "none") return undefined;
  if (rt.compare_with === "primary") return "primary";
  return rt.compare_replica ?? t.replicas[0]?.name;
}

/** The dump a test restores: the named one, else the newest. @throws {OpsError} when there is none */
export async function pickDump(
  deps: Pick<OpDeps, "config">,
  target: string,
  name?: string,
): Promise<DumpFile> {
  const t = own(deps.config.targets, target);
  const folder = t?.backups?.dump_folder;
  if (!folder) throw new NotConfigured(`${target} has no backups.dump_folder: there is nothing to restore`);
  let files: DumpFile[];
  try {
    files = await listDumpFiles(folder);
  } catch (err) {
    if (err instanceof FolderUnreadable) {
      throw new OpsError(
        "not_configured",
        `Cannot restore-test ${target}: dump folder ${folder.path} is ${err.why}`,
      );
    }
    throw err;
  }
  if (!files.length) {
    throw new OpsError(
      "invalid_input",
      `Cannot restore-test ${target}: no file in ${folder.path} matches ${folder.pattern}`,
    );
  }
  if (!name) return files[0];
  const hit = files.find((f) => f.name === name);
  if (!hit) {
    const some = files.slice(0, 5).map((f) => f.name).join(", ");
    throw new OpsError(
      "invalid_input",
      `No dump "${name}" in ${folder.path} for ${target}: the newest are ${some}`,
    );
  }
  return hit;
}

/** Plans a restore test: reads the dump folder and config only. */
export async function planRestoreTest(args: RestoreTestArgs, deps: OpDeps): Promise<RestoreTestPlan> {
  const { t, rt } = restoreTestConfig(deps, args.target);
  const server = restoreServer(deps, args.target);
  const dump = await pickDump(deps, args.target, args.backup);
  const compareWith = compareMember(t, rt);
  const warnings: string[] = [];
  if (server.onPrimary) {
    warnings.push(
      `The scratch database is created on the production primary ${server.label} (allow_on_primary): the restore loads it and uses ${
        humanBytes(dump.size)
      }+ of its disk`,
    );
  }
  const age = deps.now().getTime() - dump.mtime.getTime();
  return {
    summary: `Restore-test ${dump.name} (${humanBytes(dump.size)}, ${
      humanAge(age)
    } old) of ${args.target} on ${server.label}`,
    target: args.target,
    steps: [
      `Create a marked scratch database bisman_rt_${args.target}_\u2026 on ${server.label}`,
      `pg_restore -j ${rt.jobs} --exit-on-error ${dump.name} into it${
        rt.nice ? ` (at nice ${rt.nice} on the bot's host)` : ""
      }`,
      `Run ${rt.verify.length} verification quer${rt.verify.length === 1 ? "y" : "ies"} (${
        rt.verify.map((v) => v.name).join(", ")
      }) read-only${compareWith ? `, and on ${compareWith} to compare within ${rt.tolerance_percent}%` : ""}`,
      "Drop the scratch database (only if it carries this run's marker) and record the result",
    ],
    fingerprint: { backup: dump.name, size: dump.size, mtime: dump.mtime.toISOString() },
    warnings,
    backup: { name: dump.name, path: dump.path, size: dump.size, mtime: dump.mtime.toISOString() },
    server: server.label,
    onPrimary: server.onPrimary,
    jobs: rt.jobs,
    verify: rt.verify.map((v) => v.name),
    compareWith,
    tolerancePercent: rt.tolerance_percent,
  };
}

/**
 * Runs a planned restore test. Never leaves its scratch database behind unless dropping it fails (then the
 * result's notes say so). A failed test is a result (`passed: false`), not an exception.
 * @throws {OpsError} `conflict` when a test of the same target is already running; NotConfigured when the
 * config no longer allows the plan
 */
export async function runRestoreTest(
  plan: RestoreTestPlan,
  deps: OpDeps,
  opts: RunOptions = {},
): Promise<RestoreTestResult> {
  const { t, rt } = restoreTestConfig(deps, plan.target);
  const server = restoreServer(deps, plan.target);
  const pgRestore = t.backups?.tools.pg_restore ?? "pg_restore";
  /**
   * The run's audit entry, written once the restore lock is released. The log is appended in batches behind
   * every command's entry: after a burst of commands its queue can take seconds or minutes to drain, and a
   * run that held the lock meanwhile refused the next test ("already running") though it had ended and its
   * row was final (bench/load.ts: the restore test sent after the quiet rounds was refused every time).
   */
  let appendFinished: (() => Promise<void>) | undefined;
  try {
    return await withRestoreLock(deps.state, plan.target, deps.now(), () => lockedRun());
  } finally {
    await appendFinished?.();
  }

  async function lockedRun(): Promise<RestoreTestResult> {
    const startedAt = deps.now();
    const t0 = performance.now();
    const scratch = scratchName(plan.target, startedAt);
    const actor = deps.actor ?? "unknown";
    const trigger = opts.trigger ?? (actor === "scheduler" ? "schedule" : "command");
    const result: RestoreTestResult = {
      target: plan.target,
      passed: false,
      backup: { name: plan.backup.name, size: plan.backup.size },
      server: server.label,
      scratchDatabase: scratch,
      scratchDropped: true,
      totalMs: 0,
      verifications: [],
      notes: [],
    };
    const progress: RestoreProgress = {
      target: plan.target,
      backup: plan.backup.name,
      phase: "reading dump",
      objectsDone: 0,
      verifyDone: 0,
      verifyTotal: rt.verify.length,
      elapsedMs: 0,
    };
    const report = (patch: Partial<RestoreProgress>) => {
      Object.assign(progress, patch, { elapsedMs: performance.now() - t0 });
      try {
        opts.onProgress?.({ ...progress });
      } catch (err) {
        deps.log.warn("restore progress callback failed", { error: err });
      }
    };
    const id = await recordStart(deps.state, {
      target: plan.target,
      trigger,
      requestedBy: actor,
      startedAt,
      backupFile: plan.backup.name,
      backupBytes: plan.backup.size,
      restoreServer: server.label,
      scratchDatabase: scratch,
    });
    result.id = id;
    const log = deps.log.child({ op: "restore_test", target: plan.target, run: id });
    log.info("restore test started", { backup: plan.backup.name, server: server.label, scratch });

    // A stop comes from the gate (this process) or from `/bisman cancel restore-test` (any replica, polled).
    const stopper = new AbortController();
    let stoppedBy: string | undefined;
    const stopNow = (by: string) => {
      if (stopper.signal.aborted) return;
      stoppedBy = by;
      stopper.abort();
    };
    const external = opts.signal ?? deps.signal;
    const onExternal = () => stopNow("the approval gate's Stop");
    if (external?.aborted) onExternal();
    external?.addEventListener("abort", onExternal, { once: true });
    const poll = setInterval(() => {
      restoreStopRequested(deps.state, id).then((by) => by && stopNow(by)).catch((err) =>
        log.warn("could not check for a stop request", { error: err })
      );
    }, STOP_POLL_MS);
    const checkStop = () => {
      if (stopper.signal.aborted) throw new Stopped(stoppedBy ?? "someone");
    };

    const password = await deps.targets.password(server.conn);
    let admin: Sql | undefined;
    let created = false;
    let step = "reading dump";
    try {
      report({ phase: "reading dump" });
      const listed = await listDump(pgRestore, plan.backup.path);
      if (!listed.ok) {
        throw new StepFailed(
          step,
          listed.result.code === 127
            ? `${pgRestore} is not installed on the bot's host (set backups.tools.pg_restore)`
            : `pg_restore --list cannot read ${plan.backup.name}: ${
              toolError(listed.result.stderr, deps.secrets)
            }`,
        );
      }
      result.objectsTotal = listed.listing.entries;
      const createdAt = listed.listing.createdAt ?? new Date(plan.backup.mtime);
      result.backup.createdAt = createdAt.toISOString();
      result.backup.dataAgeMs = startedAt.getTime() - createdAt.getTime();

      checkStop();
      step = "connecting to the restore server";
      admin = postgres({ ...connectionOptions(server.conn, password), max: 1 });
      await refuseIfPrimary(admin, deps, plan.target, rt.allow_on_primary);

      checkStop();
      step = "creating database";
      report({ phase: "creating database", objectsTotal: result.objectsTotal });
      const restoreStart = performance.now();
      await createScratch(admin, scratch, {
        target: plan.target,
        runId: id,
        created: startedAt.toISOString(),
      });
      created = true;

      checkStop();
      step = "restoring";
      report({ phase: "restoring" });
      const done = new Set<string>();
      const restored = await runTool(
        await niced([
          pgRestore,
          "-j",
          String(rt.jobs),
          "--exit-on-error",
          "--verbose",
          ...(rt.restore_owner_and_privileges ? [] : ["--no-owner", "--no-privileges"]),
          "-d",
          scratch,
          plan.backup.path,
        ], rt.nice),
        {
          env: libpqEnv(server.conn, password),
          timeoutMs: rt.timeout_minutes * 60_000,
          signal: stopper.signal,
          onStderrLine: (line) => {
            const m = /^pg_restore: (?:processing|finished) item (\d+) /.exec(line);
            if (m && !done.has(m[1])) {
              done.add(m[1]);
              report({ objectsDone: Math.min(done.size, result.objectsTotal ?? done.size) });
            }
          },
        },
      );
      checkStop();
      if (restored.code !== 0) {
        throw new StepFailed(
          step,
          restored.code === 124
            ? `pg_restore did not finish within ${rt.timeout_minutes} min (restore_test.timeout_minutes)`
            : `pg_restore failed (exit ${restored.code}): ${toolError(restored.stderr, deps.secrets)}`,
        );
      }
      result.restoreMs = Math.round(performance.now() - restoreStart);
      report({ objectsDone: result.objectsTotal ?? done.size });

      step = "verifying";
      report({ phase: "verifying" });
      checkStop();
      const [{ bytes }] = await admin<
        { bytes: string }[]
      >`select pg_database_size(${scratch}::text) as bytes`;
      result.restoredBytes = Number(bytes);
      result.verifications = await verifyRestored(
        plan,
        rt,
        scratch,
        server.conn,
        password,
        deps,
        (n) => report({ verifyDone: n }),
      );
      result.passed = result.verifications.every((v) => v.ok);
      if (!result.passed) {
        const bad = result.verifications.filter((v) => !v.ok).map((v) => v.name);
        result.error = { step: "verifying", message: `verification failed: ${bad.join(", ")}` };
      }
      checkStop();
    } catch (err) {
      result.passed = false;
      if (err instanceof Stopped || stopper.signal.aborted) {
        result.cancelled = {
          by: stoppedBy ?? "someone",
          phase: progress.phase,
          objectsDone: progress.objectsDone,
          objectsTotal: progress.objectsTotal ?? result.objectsTotal,
        };
        result.error = {
          step: progress.phase,
          message: `cancelled by ${result.cancelled.by} while ${progress.phase}${
            result.cancelled.objectsTotal !== undefined
              ? ` (${result.cancelled.objectsDone} of ${result.cancelled.objectsTotal} objects restored)`
              : ""
          }`,
        };
        log.info("restore test stopped", { step, by: result.cancelled.by });
      } else {
        result.error = {
          step: err instanceof StepFailed ? err.step : step,
          message: err instanceof OpsError ? err.userMessage : `${step} failed: ${errText(err, deps)}`,
        };
        log.warn("restore test failed", { step, error: err });
      }
    } finally {
      clearInterval(poll);
      external?.removeEventListener("abort", onExternal);
      report({ phase: "dropping" });
      if (admin) {
        result.scratchDropped = await dropOwnScratch(admin, scratch, plan.target, id, created, result, deps);
        await admin.end({ timeout: 5 }).catch(() => undefined);
      }
      result.totalMs = Math.round(performance.now() - t0);
      await recordFinish(deps.state, id, {
        status: result.passed ? "passed" : result.cancelled ? "cancelled" : "failed",
        finishedAt: deps.now(),
        backupCreatedAt: result.backup.createdAt ? new Date(result.backup.createdAt) : undefined,
        objectsTotal: result.objectsTotal,
        restoreMs: result.restoreMs,
        totalMs: result.totalMs,
        restoredBytes: result.restoredBytes,
        verifications: result.verifications,
        error: result.error ? `${result.error.step}: ${result.error.message}` : undefined,
        scratchDropped: result.scratchDropped,
      });
      log.info("restore test finished", { passed: result.passed, total_ms: result.totalMs });
      appendFinished = () =>
        deps.audit.append({
          actor,
          action: "restore_test.finished",
          target: plan.target,
          outcome: result.passed ? "passed" : result.cancelled ? "cancelled" : "failed",
          details: {
            run: id,
            backup: plan.backup.name,
            server: server.label,
            scratch_database: scratch,
            scratch_dropped: result.scratchDropped,
            restore_ms: result.restoreMs,
            total_ms: result.totalMs,
            error: result.error?.message,
            ...(result.cancelled ? { cancelled: result.cancelled } : {}),
          },
        }).then(() => undefined, (err) => log.error("audit append failed", { error: err }));
    }
    return result;
  }
}

/** Refuses when the restore server turns out to be the target's primary (same system identifier). */
async function refuseIfPrimary(admin: Sql, deps: OpDeps, target: string, allowed: boolean): Promise<void> {
  if (allowed) return;
  const sysid = async (sql: Sql) => {
    const [r] = await sql<{ id: string }[]>`select system_identifier::text as id from pg_control_system()`;
    return r.id;
  };
  let here: string;
  let primary: string;
  try {
    here = await sysid(admin);
    primary = await sysid(await deps.targets.pool(target, "primary"));
  } catch {
    // pg_control_system() needs pg_monitor or superuser; the address check in restoreServer() stands.
    return;
  }
  if (here === primary) {
    throw new NotConfigured(
      `Refusing the restore test of ${target}: the restore server is the production primary (same system identifier). Point restore_test.server at a scratch server, or set allow_on_primary: true`,
    );
  }
}

/** Drops this run's scratch database (marker-checked), and confirms it is gone. */
async function dropOwnScratch(
  admin: Sql,
  scratch: string,
  target: string,
  runId: number,
  created: boolean,
  result: RestoreTestResult,
  deps: OpDeps,
): Promise<boolean> {
  try {
    const outcome = await dropScratch(admin, scratch, { target, runId });
    if (outcome.dropped || outcome.absent) return true;
    result.notes.push(
      `Scratch database ${scratch} was left on ${result.server}: ${outcome.refusal}. Check it and drop it by hand`,
    );
    return false;
  } catch (err) {
    // Nothing was created (the server did not answer, or CREATE DATABASE failed): nothing to drop.
    if (!created) return true;
    result.notes.push(
      `Could not drop scratch database ${scratch} on ${result.server}: ${
        errText(err, deps)
      }. The cleanup job retries; or drop it by hand`,
    );
    deps.log.error("scratch database not dropped", { scratch, created, error: err });
    return false;
  }
}

/** The restore-test operation: not destructive (see restoreTestSchema); its own approval rule is per target. */
export const restoreTest: Operation<RestoreTestArgs, RestoreTestPlan, RestoreTestResult> = {
  name: "restore_test",
  destructive: false,
  // Stops safely: pg_restore is stopped, the marked scratch database dropped, the run recorded cancelled.
  cancellable: true,
  args: restoreTestArgs,
  plan: planRestoreTest,
  revalidate: async (plan, deps) => {
    try {
      const dump = await pickDump(deps, plan.target, plan.backup.name);
      if (dump.size !== plan.backup.size || dump.mtime.toISOString() !== plan.backup.mtime) {
        return `${plan.backup.name} changed since the plan (${humanBytes(plan.backup.size)} \u2192 ${
          humanBytes(dump.size)
        })`;
      }
      return undefined;
    } catch (err) {
      return err instanceof OpsError ? err.userMessage : String(err);
    }
  },
  run: (plan, deps) => runRestoreTest(plan, deps),
  describeResult: (r) =>
    r.cancelled
      ? `restore test of ${r.target} ${r.error?.message ?? "cancelled"}; scratch database ${
        r.scratchDropped ? "dropped" : "LEFT BEHIND"
      }`
      : r.passed
      ? `restore test of ${r.target} passed: ${r.backup.name} restored in ${humanAge(r.restoreMs ?? 0)}`
      : `restore test of ${r.target} failed at ${r.error?.step}: ${r.error?.message}`,
};
