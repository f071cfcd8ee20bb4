/**
 * bisman-ops: the composition root. Everything is built in bot.ts; this file only starts it, turns
 * start-up errors into a clear message and exit code, and stops it gracefully on SIGTERM/SIGINT.
 *
 * @module
 */

import { startBot } from "./bot.ts";
import { ConfigError } from "./core/config.ts";
import { EnvError } from "./core/env.ts";
import { stderrWriter } from "./core/log.ts";

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

if (import.meta.main) {
  try {
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
        const { unfinished } = await bot.stop({ graceMs });
        clearTimeout(hard);
        log.info("stopped", { unfinished });
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
