/**
 * Reloading the config without a restart (`/bisman config reload`, SIGHUP) and checking what a reload would
 * change (`/bisman config check`).
 *
 * A reload reads `BISMAN_CONFIG` again and validates it exactly as start-up does. An invalid file is refused
 * with one line per bad key, and the running config stays in force. A valid one replaces `deps.config` in
 * one assignment: every module reads `deps.config` when it acts (never a copy kept from start-up), so the
 * next request, click, alert or job sees the new values; target pools whose connection settings changed are
 * closed so they reconnect with the new ones, and jobs whose schedule changed (`schedules`,
 * `scheduler.timezone`, `alerts.lag_check`) get new timers. Nothing in the file needs a restart.
 *
 * @module
 */

import type { AppDeps } from "./deps.ts";
import { type Config, ConfigError, loadConfig } from "./config.ts";

/** How a changed key takes effect. */
/** `now`: read when used, or (schedules) given new timers at once; `reconnect`: its pools are reset. */
export type Takes = "now" | "reconnect";

/** One changed key. */
export interface ConfigChange {
  /** Dotted path, e.g. `thresholds.lag.seconds_warning`. */
  key: string;
  /** Old and new value as short JSON (`(absent)` when the key was not there). */
  from: string;
  to: string;
  takes: Takes;
}

/** The outcome of a check or a reload. */
export type ConfigCheck =
  | { ok: true; file: string; changes: ConfigChange[]; next: Config }
  | { ok: false; file: string; problems: string[] };

function short(v: unknown): string {
  if (v === undefined) return "(absent)";
  const s = JSON.stringify(v);
  return s.length > 80 ? `${s.slice(0, 79)}\u2026` : s;
}

function takesOf(key: string): Takes {
  if (/^targets\.[^.]+\.(primary|replicas|vault)(\.|$)/.test(key) || /^targets\.[^.]+$/.test(key)) {
    return "reconnect";
  }
  return "now";
}

/**
 * The keys whose values differ between two configs, leaves first (arrays compare as a whole). Pure.
 * @example
 * diffConfig(a, { ...a, thresholds: { ...a.thresholds, slow_query_mean_ms: 500 } });
 * // [{ key: "thresholds.slow_query_mean_ms", from: "1000", to: "500", takes: "now" }]
 */
export function diffConfig(a: unknown, b: unknown, path = ""): ConfigChange[] {
  const isObj = (v: unknown): v is Record<string, unknown> =>
    typeof v === "object" && v !== null && !Array.isArray(v);
  if (isObj(a) && isObj(b)) {
    const keys = [...new Set([...Object.keys(a), ...Object.keys(b)])].sort();
    return keys.flatMap((k) => diffConfig(a[k], b[k], path ? `${path}.${k}` : k));
  }
  if (JSON.stringify(a) === JSON.stringify(b)) return [];
  return [{ key: path || "(top level)", from: short(a), to: short(b), takes: takesOf(path) }];
}

/**
 * Reads and validates the config file and compares it with the running one. Changes nothing.
 * @param extraCheck further validation that needs more than the schema (e.g. schedules naming real jobs)
 */
export async function checkConfigFile(
  deps: Pick<AppDeps, "config" | "env">,
  extraCheck?: (c: Config) => void,
): Promise<ConfigCheck> {
  const file = deps.env.configPath;
  try {
    const next = await loadConfig(file);
    extraCheck?.(next);
    return { ok: true, file, changes: diffConfig(deps.config, next), next };
  } catch (err) {
    if (err instanceof ConfigError) return { ok: false, file, problems: err.problems };
    throw err;
  }
}

let reloading: Promise<unknown> = Promise.resolve();

/**
 * Reloads the config: validates the file, then swaps `deps.config` and resets the target pools whose
 * settings changed. Reloads of one process run one at a time. Audited either way.
 * @param by the audit actor (a Slack user, `cli:<login>`, or `sighup`)
 */
export function reloadConfig(
  deps: AppDeps,
  by: { actor: string; actorName?: string },
  extraCheck?: (c: Config) => void,
): Promise<ConfigCheck & { reset?: string[] }> {
  const run = reloading.then(async () => {
    const check = await checkConfigFile(deps, extraCheck);
    if (!check.ok) {
      await deps.audit.append({
        actor: by.actor,
        actorName: by.actorName,
        action: "config.reload_refused",
        outcome: "refused",
        details: { file: check.file, problems: check.problems.slice(0, 50) },
      }).catch((err) => deps.log.error("audit append failed", { error: err }));
      deps.log.warn("config reload refused: the running config stays", { problems: check.problems });
      return check;
    }
    deps.config = check.next;
    const reset = await deps.targets.applyConfig(check.next);
    const rescheduled = deps.jobs?.reschedule() ?? [];
    await deps.audit.append({
      actor: by.actor,
      actorName: by.actorName,
      action: "config.reloaded",
      outcome: "ok",
      details: {
        file: check.file,
        changes: check.changes.slice(0, 100).map((c) => ({
          key: c.key,
          from: c.from,
          to: c.to,
          takes: c.takes,
        })),
        pools_reset: reset,
        jobs_rescheduled: rescheduled,
      },
    }).catch((err) => deps.log.error("audit append failed", { error: err }));
    deps.log.info("config reloaded", { changes: check.changes.length, pools_reset: reset, rescheduled });
    return { ...check, reset };
  });
  reloading = run.catch(() => undefined);
  return run;
}
