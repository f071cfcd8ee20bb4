/**
 * bisman-ops: the composition root. Everything is built in bot.ts; this file only starts it, turns
 * start-up errors into a clear message and exit code, and stops it gracefully on SIGTERM/SIGINT.
 *
 * `main.ts migrate` instead applies the state database's migrations as the schema's owner
 * (`DATABASE_MIGRATION_URL`), grants the runtime role (`DATABASE_URL`) what it needs, and exits: the
 * Deployment's `migrate` init container (deploy/k8s/deployment.yaml), so the bot itself never owns its schema.
 *
 * @module
 */

import { ConfigError } from "./core/config.ts";
import { EnvError, passwordInUrl } from "./core/env.ts";
import { Secrets, stderrWriter } from "./core/log.ts";
import { connectState } from "./core/state_db.ts";
import { migrateState } from "./core/migrate.ts";

/** Ends the process after the log lines still queued are written (core/log.ts writes asynchronously). */
async function exitFlushed(code: number): Promise<never> {
  await stderrWriter.drained();
  Deno.exit(code);
}

// An uncaught exception ends the process: the lines queued before it explain it.
globalThis.addEventListener("error", () => stderrWriter.flushSync());

/** Default bound for running work at shutdown (the Deployment's terminationGracePeriodSeconds covers it). */
const DEFAULT_GRACE_SECONDS = 25;

/** `BISMAN_SHUTDOWN_GRACE_SECONDS`: how long running operations may take to finish after SIGTERM. */
function shutdownGraceMs(value: string | undefined): number {
  const n = Number(value ?? DEFAULT_GRACE_SECONDS);
  return Number.isFinite(n) && n >= 0 && n <= 600 ? n * 1000 : DEFAULT_GRACE_SECONDS * 1000;
}

/** `main.ts migrate`: the migrations as the owner role, then exit 0 (1 on failure, 2 on a missing variable). */
async function migrateAndExit(env: Record<string, string | undefined>): Promise<never> {
  const secrets = new Secrets();
  for (const url of [env.DATABASE_URL, env.DATABASE_MIGRATION_URL]) secrets.add(passwordInUrl(url));
  const problems = [
    ...(env.DATABASE_MIGRATION_URL
      ? []
      : ["DATABASE_MIGRATION_URL is not set: the owner role of the state schema"]),
    ...(env.DATABASE_URL
      ? []
      : ["DATABASE_URL is not set: the runtime role, which is granted what it needs"]),
  ];
  if (problems.length) {
    console.error(new EnvError(problems).message);
    return await exitFlushed(2);
  }
  const state = connectState(env.DATABASE_URL!, { max: 1 });
  try {
    const applied = await migrateState(state, env.DATABASE_MIGRATION_URL);
    console.error(
      JSON.stringify({ time: new Date().toISOString(), level: "info", msg: "migrations done", applied }),
    );
    await state.end({ timeout: 2 });
    return await exitFlushed(0);
  } catch (err) {
    console.error(secrets.scrub(`bisman-ops migrate failed: ${err instanceof Error ? err.message : err}`));
    await state.end({ timeout: 2 }).catch(() => {});
    return await exitFlushed(1);
  }
}

if (import.meta.main && Deno.args[0] === "migrate") await migrateAndExit(Deno.env.toObject());

if (import.meta.main) {
  try {
    // Imported here, not at the top: `main.ts migrate` must not load Bolt and the Slack clients (they read
    // the OS release at load, which the migrate init container's permissions do not include).
    const { startBot } = await import("./bot.ts");
    const bot = await startBot();
    const log = bot.deps.log;
    const graceMs = shutdownGraceMs(Deno.env.get("BISMAN_SHUTDOWN_GRACE_SECONDS"));

    // A library promise nobody awaited must not end a process that holds approvals and alert threads:
    // log it (it is a bug to fix) and keep serving. Uncaught exceptions still end it; Kubernetes restarts it
    // and the gate reconciles whatever was running.
    globalThis.addEventListener("unhandledrejection", (e) => {
      e.preventDefault();
      bot.deps.metrics.inc("bisman_unhandled_rejections_total", {}, 1, "Promise rejections nobody handled");
      log.error("unhandled promise rejection", { error: e.reason });
    });

    let stopping = false;
    const shutdown = async (signal: Deno.Signal) => {
      if (stopping) {
        // A second signal while stopping: the operator wants out now; the gate reconciles what was left.
        log.warn("second signal while shutting down; exiting now", { signal });
        return await exitFlushed(1);
      }
      stopping = true;
      log.info("shutting down", { signal, grace_ms: graceMs });
      // Whatever happens inside stop(), the process ends before Kubernetes' SIGKILL would.
      const hard = setTimeout(() => {
        log.error("shutdown took longer than its bound; exiting", { grace_ms: graceMs });
        void exitFlushed(1);
      }, graceMs + 10_000);
      try {
        const { unfinished, jobs } = await bot.stop({ graceMs });
        clearTimeout(hard);
        log.info("stopped", { unfinished, jobs });
        await exitFlushed(0);
      } catch (err) {
        log.error("shutdown failed", { error: err });
        await exitFlushed(1);
      }
    };
    Deno.addSignalListener("SIGTERM", () => void shutdown("SIGTERM"));
    Deno.addSignalListener("SIGINT", () => void shutdown("SIGINT"));
  } catch (err) {
    if (err instanceof ConfigError || err instanceof EnvError) {
      console.error(err.message);
      await exitFlushed(2);
    }
    console.error(`bisman-ops could not start: ${err instanceof Error ? err.message : err}`);
    await exitFlushed(1);
  }
}
