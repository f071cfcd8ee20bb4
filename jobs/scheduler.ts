/**
 * Runs the scheduled jobs with croner, exactly once per slot across bot replicas.
 *
 * Every replica schedules every enabled job. When croner fires, the replica takes the scheduled time croner
 * computed as the slot (the same in every replica, whatever the timer's jitter) and claims `(job, slot)` in
 * the state database (jobs/run_store.ts); the one replica that gets the row runs the job, renewing a lease
 * while it runs. A replica that dies mid-run stops renewing; once the lease lapses, whichever replica claims
 * the next slot records the dead run as interrupted and runs normally, so nothing waits on a dead process.
 * Croner's `protect` keeps a replica from overlapping its own runs; the claim keeps replicas from
 * overlapping each other's (a slot that comes while another replica's run is alive is recorded as skipped).
 *
 * Every run is recorded (job, slot, start, end, outcome, summary) and counted in /metrics. A failure is
 * posted to the ops channel once, when a job starts failing, and once more when it recovers.
 *
 * @module
 */

import { Cron } from "croner";
import type { AppDeps } from "../core/deps.ts";
import { ConfigError } from "../core/config.ts";
import { describeError, NotConfigured, OpsError } from "../core/errors.ts";
import { actorOf, type Invoker } from "../core/access.ts";
import { failpoint } from "../core/failpoint.ts";
import {
  abandonRuns,
  claimSlot,
  finishRun,
  type InterruptedRun,
  readJobStates,
  readLastRuns,
  readPreviousRun,
  readRun,
  recordJobState,
  renewLease,
} from "./run_store.ts";
import type {
  EffectiveSchedule,
  JobContext,
  JobDefinition,
  JobResult,
  JobService,
  JobServices,
  Poster,
  RunRecord,
} from "./types.ts";
import { renderJobFailed, renderJobInterrupted, renderJobRecovered } from "../views/jobs.ts";
import { slackMessage } from "../views/blocks.ts";
import { own } from "../core/lookup.ts";
import { within } from "../core/within.ts";

/** Options of one scheduler; tests pass their own jobs. */
export interface SchedulerOptions {
  post: Poster;
  jobs: JobDefinition[];
  /** This replica's name in run records (default host:pid:random). */
  runnerId?: string;
  /** How often the cluster-wide job gauges are re-read for /metrics (default 30 s). */
  metricsRefreshMs?: number;
  /** Process services some jobs use (alert threads); filled in by bot.ts. */
  services?: JobServices;
}

/**
 * Each job's effective schedule from the config over its defaults.
 * @throws {ConfigError} when `schedules` names a job that does not exist
 */
export function resolveSchedules(deps: Pick<AppDeps, "config">, jobs: JobDefinition[]): EffectiveSchedule[] {
  const { config } = deps;
  const names = new Set(jobs.map((j) => j.name));
  const unknown = Object.keys(config.schedules).filter((n) => !names.has(n));
  if (unknown.length) {
    throw new ConfigError(
      "config",
      unknown.map((n) => `schedules.${n}: no such job; the jobs are ${[...names].sort().join(", ")}`),
    );
  }
  return jobs.map((j) => {
    const s = own(config.schedules, j.name);
    const implied = j.configDefaults?.(config) ?? {};
    return {
      name: j.name,
      summary: j.summary,
      cron: s?.cron ?? implied.cron ?? j.defaultCron,
      timezone: s?.timezone ?? config.scheduler.timezone,
      enabled: s?.enabled ?? implied.enabled ?? true,
      destructive: j.destructive,
    };
  });
}

/**
 * A cron pattern for "every `seconds`" that every replica reads the same way. Cron steps must divide the
 * minute (or the hour, or the day), so an interval that does not is rounded down to one that does.
 * @example
 * intervalCron(60); // "0 * * * * *"
 * intervalCron(45); // "*\/30 * * * * *"
 */
export function intervalCron(seconds: number): string {
  const down = (n: number, of: number) =>
    [...Array(of).keys()].map((i) => i + 1).filter((d) => of % d === 0 && d <= n).at(-1)!;
  if (seconds < 60) {
    const s = down(Math.max(1, Math.floor(seconds)), 60);
    return s === 1 ? "* * * * * *" : `*/${s} * * * * *`;
  }
  if (seconds < 3600) {
    const m = down(Math.floor(seconds / 60), 60);
    return m === 1 ? "0 * * * * *" : `0 */${m} * * * *`;
  }
  const h = down(Math.min(24, Math.floor(seconds / 3600)), 24);
  return h === 24 ? "0 0 0 * * *" : h === 1 ? "0 0 * * * *" : `0 0 */${h} * * *`;
}

function defaultRunnerId(): string {
  let host = "localhost";
  try {
    host = Deno.hostname();
  } catch {
    // Without --allow-sys the host name is unknown; pid and a random suffix still identify the replica.
  }
  return `${host}:${Deno.pid}:${crypto.randomUUID().slice(0, 6)}`;
}

/** The text a failed run records and posts: an OpsError's message, else a reference into the log. */
function failureText(err: unknown, deps: AppDeps, job: string): string {
  if (err instanceof OpsError) return deps.secrets.scrub(err.userMessage);
  const ref = crypto.randomUUID().slice(0, 8);
  deps.log.error("job failed with an unexpected error", { job, reference: ref, error: err });
  return `Internal error (reference ${ref}): see the bot's log`;
}

/** The scheduler of one bot process. */
export class Scheduler implements JobService {
  readonly runnerId: string;
  readonly #deps: AppDeps;
  readonly #opts: SchedulerOptions;
  #schedules: EffectiveSchedule[];
  readonly #jobs: Map<string, JobDefinition>;
  readonly #crons = new Map<string, Cron>();
  readonly #inflight = new Map<number, { job: string; done: Promise<unknown> }>();
  readonly #stopping = new AbortController();
  #metricsTimer?: ReturnType<typeof setInterval>;
  #started = false;

  /** @throws {ConfigError} when the config's `schedules` names an unknown job */
  constructor(deps: AppDeps, opts: SchedulerOptions) {
    this.#deps = deps;
    this.#opts = opts;
    this.runnerId = opts.runnerId ?? defaultRunnerId();
    this.#jobs = new Map(opts.jobs.map((j) => [j.name, j]));
    this.#schedules = this.#resolve();
  }

  /** Every job's schedule from the current `deps.config`, and why it cannot run here, if so. */
  #resolve(): EffectiveSchedule[] {
    return resolveSchedules(this.#deps, this.#opts.jobs).map((s) => ({
      ...s,
      unavailable: this.#jobs.get(s.name)!.unavailable?.(this.#deps, this.#services),
    }));
  }

  /** Process services jobs use (the alert threads). */
  get services(): JobServices {
    return this.#opts.services ?? {};
  }

  get #services(): JobServices {
    return this.services;
  }

  get #lease(): number {
    return this.#deps.config.scheduler.lease_seconds;
  }

  /** Schedules every enabled, available job. */
  start(): void {
    if (this.#started) return;
    this.#started = true;
    for (const s of this.#schedules) this.#schedule(s);
    const refresh = () =>
      void this.refreshMetrics().catch((err) =>
        this.#deps.log.warn("job metrics refresh failed", { error: err })
      );
    refresh();
    const timer = setInterval(refresh, this.#opts.metricsRefreshMs ?? 30_000);
    Deno.unrefTimer(timer as unknown as number);
    this.#metricsTimer = timer;
    this.#deps.log.info("scheduler started", {
      runner: this.runnerId,
      jobs: [...this.#crons.keys()],
    });
  }

  /** Starts the timer of one job, when it is enabled and can run here. */
  #schedule(s: EffectiveSchedule): void {
    if (!s.enabled || s.unavailable) return;
    const def = this.#jobs.get(s.name)!;
    const cron: Cron = new Cron(s.cron, {
      timezone: s.timezone,
      // Croner's overrun protection: a slot that comes while this replica still runs the job is let go.
      protect: () => {
        this.#deps.log.info("job still running here; this slot is let go", { job: s.name });
        this.#deps.metrics.inc(
          "bisman_job_overruns_total",
          { job: s.name },
          1,
          "Slots a replica let go because its previous run of the job was still going",
        );
      },
      catch: (err: unknown) => this.#deps.log.error("job trigger failed", { job: s.name, error: err }),
    }, () => this.#fire(def, cron));
    this.#crons.set(s.name, cron);
  }

  /**
   * Applies the current `deps.config` after a reload: each job whose cron, time zone or enabled flag
   * changed gets a new timer (a run under way finishes; its claim is per slot, so nothing runs twice); the
   * others keep theirs. Replicas reloaded at different moments may briefly disagree on a changed schedule.
   * @returns the jobs whose schedule changed
   * @throws {ConfigError} when `schedules` names an unknown job (a reload checks that before it applies)
   */
  reschedule(): string[] {
    const next = this.#resolve();
    const same = (a: EffectiveSchedule, b: EffectiveSchedule) =>
      a.cron === b.cron && a.timezone === b.timezone && a.enabled === b.enabled &&
      a.unavailable === b.unavailable;
    const changed: string[] = [];
    for (const s of next) {
      const old = this.#schedules.find((o) => o.name === s.name);
      if (old && same(old, s)) continue;
      changed.push(s.name);
      this.#crons.get(s.name)?.stop();
      this.#crons.delete(s.name);
      if (this.#started && !this.#stopping.signal.aborted) this.#schedule(s);
    }
    this.#schedules = next;
    if (changed.length) this.#deps.log.info("jobs rescheduled", { jobs: changed });
    return changed;
  }

  /**
   * Stops scheduling, tells running jobs to stop (their `signal`), waits `scheduler.stop_grace_seconds`
   * for them (or `boundMs`, when the caller's own bound is shorter), and records those still going as
   * interrupted so the next slot need not wait for a lease.
   * @returns how many runs are still going (their queries still use the pools)
   */
  async stop(boundMs = Infinity): Promise<number> {
    for (const c of this.#crons.values()) c.stop();
    this.#crons.clear();
    clearInterval(this.#metricsTimer);
    this.#stopping.abort();
    if (!this.#inflight.size) return 0;
    await within(
      Promise.allSettled([...this.#inflight.values()].map((r) => r.done)),
      Math.min(this.#deps.config.scheduler.stop_grace_seconds * 1000, boundMs),
    );
    const left = [...this.#inflight.keys()];
    if (left.length) {
      this.#deps.log.warn("stopping with jobs still running; recording them as interrupted", { runs: left });
      await abandonRuns(this.#deps.state, left, "The bot stopped while this run was going (shutdown)")
        .catch((err) => this.#deps.log.error("could not record interrupted runs", { error: err }));
    }
    return left.length;
  }

  /** Every job with its effective schedule and, when scheduled here, its next run. */
  schedules(): EffectiveSchedule[] {
    return this.#schedules.map((s) => ({ ...s, nextRun: this.#crons.get(s.name)?.nextRun() ?? undefined }));
  }

  /** The newest run of each job. */
  lastRuns(): Promise<Map<string, RunRecord>> {
    return readLastRuns(this.#deps.state);
  }

  /**
   * Runs a job now (a manual run, its slot the current moment) and waits for it.
   * @throws {NotConfigured} for an unknown or unavailable job; {OpsError} "conflict" for a destructive one,
   * which only the approval gate may start
   */
  /** Runs of this replica still going (bot.ts' idle memory reclaim waits for none). */
  get running(): number {
    return this.#inflight.size;
  }

  async runNow(name: string, invoker: Invoker): Promise<RunRecord> {
    const def = this.#jobs.get(name);
    if (!def) {
      throw new NotConfigured(
        `No job "${name}": \`/bisman jobs\` lists them (${[...this.#jobs.keys()].sort().join(", ")})`,
      );
    }
    const why = def.unavailable?.(this.#deps, this.#services);
    if (why) throw new NotConfigured(`Job ${name} is not available: ${why}`);
    if (def.destructive) {
      throw new OpsError("conflict", `Job ${name} changes state: ask for it with \`/bisman run ${name}\``);
    }
    const id = await this.#claimAndRun(def, new Date(this.#deps.now().getTime()), "manual", invoker);
    const rec = id === undefined ? undefined : await readRun(this.#deps.state, id);
    if (!rec) throw new OpsError("conflict", `Job ${name} was not run: another replica took the same moment`);
    return rec;
  }

  /** Re-reads the cluster-wide job state into the gauges of /metrics. */
  async refreshMetrics(): Promise<void> {
    const m = this.#deps.metrics;
    for (const s of await readJobStates(this.#deps.state)) {
      if (s.lastSuccessAt) {
        m.set(
          "bisman_job_last_success_timestamp_seconds",
          { job: s.job },
          s.lastSuccessAt.getTime() / 1000,
          "When each job last succeeded on any replica (Unix time)",
        );
      }
      m.set("bisman_job_failing", { job: s.job }, s.failing ? 1 : 0, "1 while a job's latest run failed");
      m.set(
        "bisman_job_consecutive_failures",
        { job: s.job },
        s.consecutiveFailures,
        "Failed runs in a row, on any replica",
      );
    }
  }

  async #fire(def: JobDefinition, cron: Cron): Promise<void> {
    if (this.#stopping.signal.aborted) return;
    // The slot is the scheduled time croner computed, not the moment the timer fired: every replica
    // derives the same value, however late its event loop woke up.
    const [slot] = cron.previousRuns(1, new Date(Date.now() + 1));
    if (!slot) return;
    await this.#claimAndRun(def, slot, "schedule");
  }

  /** Claims the slot and, when this replica got it, runs the job. @returns the run's id, if one was recorded */
  async #claimAndRun(
    def: JobDefinition,
    slot: Date,
    trigger: "schedule" | "manual",
    invoker?: Invoker,
  ): Promise<number | undefined> {
    const deps = this.#deps;
    let claim;
    try {
      claim = await claimSlot(deps.state, {
        job: def.name,
        slot,
        trigger,
        runner: this.runnerId,
        invoker: invoker ? actorOf(invoker) : undefined,
        leaseSeconds: this.#lease,
      });
    } catch (err) {
      deps.log.warn("could not claim a job slot", { job: def.name, slot: slot.toISOString(), error: err });
      deps.metrics.inc(
        "bisman_job_claim_errors_total",
        { job: def.name },
        1,
        "Slots that could not be claimed",
      );
      if (trigger === "manual") throw err;
      return undefined;
    }
    deps.metrics.inc(
      "bisman_job_claims_total",
      { job: def.name, result: claim.status },
      1,
      "Slot claims by this replica: claimed (it ran the job), taken (another replica had it), skipped",
    );
    for (const dead of claim.interrupted) await this.#onInterrupted(def, dead);
    if (claim.status === "taken") return undefined;
    if (claim.status === "skipped") {
      deps.log.info("job slot skipped: another run is still alive", {
        job: def.name,
        slot: slot.toISOString(),
        blocked_by: claim.blockedBy,
      });
      this.#count(def.name, "skipped");
      return claim.id;
    }
    await this.#execute(def, claim.id, slot, trigger, invoker);
    return claim.id;
  }

  async #execute(
    def: JobDefinition,
    runId: number,
    slot: Date,
    trigger: "schedule" | "manual",
    invoker?: Invoker,
  ): Promise<void> {
    const deps = this.#deps;
    const log = deps.log.child({ job: def.name, run: runId });
    const heartbeat = setInterval(() => {
      renewLease(deps.state, runId, this.#lease)
        .then((alive) => {
          if (!alive) log.warn("this run was declared dead by another replica (late lease renewal)");
        })
        .catch((err) => log.warn("lease renewal failed", { error: err }));
    }, Math.max(250, (this.#lease * 1000) / 3));
    const started = performance.now();
    const work = (async () => {
      let result: JobResult | undefined;
      let error: string | undefined;
      try {
        const previous = await readPreviousRun(deps.state, def.name, slot);
        const ctx: JobContext = {
          deps,
          job: def.name,
          runId,
          slot,
          trigger,
          invoker,
          log,
          signal: this.#stopping.signal,
          post: this.#opts.post,
          previous,
          services: this.#services,
        };
        // The one test hook: a test kills the process here to prove a dead runner does not block the schedule.
        await failpoint("scheduler.in_job");
        result = await def.run(ctx);
      } catch (err) {
        error = failureText(err, deps, def.name);
      } finally {
        clearInterval(heartbeat);
      }
      const seconds = (performance.now() - started) / 1000;
      deps.metrics.observe("bisman_job_run_seconds", { job: def.name }, seconds, "Job run time", JOB_BUCKETS);
      // A job that gave up because the bot is stopping was interrupted, not broken: no failure post.
      if (error && this.#stopping.signal.aborted) {
        this.#count(def.name, "stopped");
        await finishRun(deps.state, runId, {
          outcome: "interrupted",
          error: `Stopped with the bot: ${error}`,
        })
          .catch((err) => log.error("could not record an interrupted run", { error: err }));
        return;
      }
      this.#count(def.name, error ? "failed" : "ok");
      try {
        await finishRun(deps.state, runId, {
          outcome: error ? "failed" : "ok",
          level: result?.level,
          summary: result?.summary ? deps.secrets.scrub(result.summary).slice(0, 2000) : undefined,
          error,
          details: result?.details,
          message: result?.message,
        });
        const change = await recordJobState(deps.state, def.name, !error);
        if (error) {
          log.warn("job failed", { slot: slot.toISOString(), error });
          if (change.startedFailing) await this.#post(renderJobFailed(def.name, slot, error, trigger));
        } else if (change.recovered) {
          await this.#post(renderJobRecovered(def.name, change.failures));
        }
        await this.refreshMetrics();
      } catch (err) {
        log.error("could not record the end of a job run", { error: err });
      }
    })();
    this.#inflight.set(runId, { job: def.name, done: work });
    try {
      await work;
    } finally {
      this.#inflight.delete(runId);
    }
  }

  /** A run whose replica died: counted as a failure, posted once like one. */
  async #onInterrupted(def: JobDefinition, dead: InterruptedRun): Promise<void> {
    const deps = this.#deps;
    deps.log.warn("a job run was left by a replica that stopped renewing its lease", {
      job: def.name,
      run: dead.id,
      runner: dead.runner,
      slot: dead.slot.toISOString(),
    });
    this.#count(def.name, "interrupted");
    try {
      const change = await recordJobState(deps.state, def.name, false);
      if (change.startedFailing) await this.#post(renderJobInterrupted(def.name, dead));
    } catch (err) {
      deps.log.error("could not record an interrupted run", { job: def.name, error: err });
    }
  }

  #count(job: string, outcome: string): void {
    this.#deps.metrics.inc(
      "bisman_job_runs_total",
      { job, outcome },
      1,
      "Job runs by this replica, by outcome",
    );
    if (outcome === "failed" || outcome === "interrupted") {
      this.#deps.metrics.inc("bisman_job_failures_total", { job }, 1, "Failed or interrupted job runs");
    }
  }

  async #post(reply: Parameters<Poster>[0]): Promise<void> {
    try {
      await this.#opts.post(reply);
    } catch (err) {
      this.#deps.log.error("could not post to the ops channel", { error: describeError(err) });
    }
  }
}

/** Seconds: jobs range from a lag check (milliseconds) to a restore test (minutes to hours). */
const JOB_BUCKETS = [0.05, 0.1, 0.5, 1, 2, 5, 10, 30, 60, 300, 900, 3600];

/** The one Web API method the poster uses (structurally `WebClient`), so jobs/ needs no Slack import. */
export interface ChatPoster {
  chat: {
    postMessage(args: {
      channel: string;
      text: string;
      blocks?: unknown[];
      thread_ts?: string;
      unfurl_links?: boolean;
    }): Promise<{ ok?: boolean; ts?: string; channel?: string }>;
  };
}

/**
 * A {@link Poster} for the ops channel. Every registered secret is scrubbed from the message first, as a
 * last guard: nothing a job renders should hold one.
 */
export function opsChannelPoster(client: ChatPoster, deps: Pick<AppDeps, "config" | "secrets">): Poster {
  return async (reply, opts) => {
    const clean = JSON.parse(deps.secrets.scrub(JSON.stringify(slackMessage(reply)))) as typeof reply;
    const r = await client.chat.postMessage({
      channel: deps.config.slack.ops_channel,
      text: clean.text,
      ...(clean.blocks ? { blocks: clean.blocks } : {}),
      ...(opts?.threadTs ? { thread_ts: opts.threadTs } : {}),
      unfurl_links: false,
    });
    return { channel: r.channel ?? deps.config.slack.ops_channel, ts: r.ts ?? "" };
  };
}
