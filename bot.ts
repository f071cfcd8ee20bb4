/**
 * Builds and starts one bot process from its environment: config, state database and migrations, target
 * pools, audit log, Bolt on Hono, background checks. `main.ts` calls it; tests call it in process.
 *
 * @module
 */

import { WebClient } from "@slack/web-api";
import { type Config, loadConfig } from "./core/config.ts";
import { type BotEnv, EnvError, readEnv } from "./core/env.ts";
import { createLogger, type LogSink, Secrets } from "./core/log.ts";
import { Metrics } from "./core/metrics.ts";
import { connectState, stateReachable } from "./core/state_db.ts";
import { migrateState } from "./core/migrate.ts";
import { AuditLog } from "./core/audit.ts";
import { Targets } from "./core/targets.ts";
import { GroupCache } from "./core/access.ts";
import type { AppDeps } from "./core/deps.ts";
import { SlackEventsReceiver } from "./slack/receiver.ts";
import type { SocketModeEventsReceiver } from "./slack/socket_mode.ts";
import { setStateDatabase } from "./core/errors.ts";
import { within } from "./core/within.ts";
import { type BoltApp, boltLogger, type BoltRegistration, createBoltApp } from "./slack/bolt_app.ts";
import { createHttpHandler, type RouteRegistration } from "./http/app.ts";
import { readServerStatus } from "./ops/server_status.ts";
import { AlertThreads } from "./alerts/threads.ts";
import { alertmanagerRoute } from "./alerts/alertmanager.ts";
import { alertButtonRegistration } from "./alerts/buttons.ts";
import { opsChannelPoster, resolveSchedules, Scheduler } from "./jobs/scheduler.ts";
import { allJobs } from "./jobs/registry.ts";
import type { JobDefinition, JobServices } from "./jobs/types.ts";
import { ApprovalGate } from "./gate/gate.ts";
import { SlackApprovalNotifier } from "./slack/approval_messages.ts";
import { approvalHandlers } from "./slack/approval_handlers.ts";
import { jobActionHandlers } from "./slack/job_handlers.ts";
import "./ops/all.ts";
import { VaultClient } from "./core/vault.ts";
import { slackApiOf } from "./slack/files.ts";
import { shareRegistration } from "./slack/share.ts";
import { alertThreadRegistration } from "./alerts/ownership.ts";
import { reloadConfig } from "./core/config_reload.ts";
import { scheduleCheck } from "./commands/config.ts";
import { VaultWitness } from "./core/witness.ts";
import { registerRunbookMetrics } from "./http/runbook_metrics.ts";
import { CliInbox } from "./cli/inbox.ts";
import { IdleReclaimer } from "./core/idle_reclaim.ts";

/** A running bot. */
export interface RunningBot {
  deps: AppDeps;
  bolt: BoltApp;
  slack: WebClient;
  /** Runs the scheduled jobs (jobs/scheduler.ts). */
  scheduler: Scheduler;
  /** Alert threads: the Alertmanager receiver's store and the per-channel poster. */
  alerts: AlertThreads;
  /** The approval gate (also `deps.gate`). */
  gate: ApprovalGate;
  /** Takes the break-glass CLI's commands from the state database (cli/inbox.ts). */
  cliInbox: CliInbox;
  /** The Socket Mode connection, when `SLACK_APP_TOKEN` selected it (then there is no `/slack/events`). */
  socket?: SocketModeEventsReceiver;
  /** `http://127.0.0.1:<port>` */
  url: string;
  port: number;
  fetch(req: Request): Promise<Response>;
  /**
   * Graceful shutdown: stops taking requests, lets running work finish for up to `graceMs` (default 10 s),
   * then releases locks and closes pools. Work still running after that is left to die with the process
   * (pools and the gate's liveness lock stay open until then); `unfinished` counts requests' and commands'
   * work, `jobs` the scheduled runs (recorded interrupted by the scheduler).
   */
  stop(opts?: { graceMs?: number }): Promise<{ unfinished: number; jobs: number }>;
}

/** Options for tests and the sandbox; production uses none. */
export interface StartOptions {
  env?: Record<string, string | undefined>;
  config?: Config;
  logSink?: LogSink;
  now?: () => Date;
  /** Listen on this host (default 0.0.0.0 in production, 127.0.0.1 when PORT=0). */
  hostname?: string;
  registrations?: BoltRegistration[];
  routes?: RouteRegistration[];
  /** How often targets are probed for /readyz (ms). */
  probeIntervalMs?: number;
  /** The scheduled jobs (default: jobs/registry.ts); tests pass their own. */
  jobs?: JobDefinition[];
  /** This replica's name in job-run records (default host:pid:random). */
  runnerId?: string;
  /** How often the approval gate expires stale requests and recovers interrupted ones (ms, default 30 s). */
  sweepIntervalMs?: number;
  /** This process's identity in the requests it runs (default: a random UUID). */
  instanceId?: string;
  /** How often the CLI's inbox is swept for commands a lost notification missed (ms, default 3 s). */
  cliSweepIntervalMs?: number;
  /** How long a Slack request's body may take to arrive (ms, default 10 s); tests shorten it. */
  slackBodyDeadlineMs?: number;
  /** When a Slack request still without its ack is reported (ms, default Bolt's 3001); tests shorten it. */
  slackAckDeadlineMs?: number;
  /** Slack Web API request timeout (ms, default 10 s): an unanswered call is retried, never waited on forever. */
  slackTimeoutMs?: number;
  /** Socket Mode timings (tests shorten them; production uses the library's defaults). */
  socketMode?: { clientPingTimeoutMs?: number; retryBaseMs?: number };
  /** How long a scrape of /metrics waits for the state database, and how long one read serves (ms). */
  stateMetrics?: { timeoutMs?: number; cacheMs?: number };
}

/** The least time shutdown gives queued audit entries, even past its bound (main.ts allows 10 s over it). */
const AUDIT_FLOOR_MS = 2_000;

/** Calls `auth.test` until it succeeds, backing off to 60 s; never throws. */
async function verifySlackAuth(
  client: WebClient,
  deps: Pick<AppDeps, "log">,
  onReady: (ids: { botId?: string; userId?: string }) => void,
  stopped: () => boolean,
): Promise<void> {
  let delay = 500;
  while (!stopped()) {
    try {
      const r = await client.auth.test();
      onReady({ botId: r.bot_id, userId: r.user_id });
      deps.log.info("slack auth.test ok", { team: r.team_id, bot_user: r.user_id });
      return;
    } catch (err) {
      deps.log.warn("slack auth.test failed; retrying", { error: err, retry_in_ms: delay });
      await new Promise((r) => setTimeout(r, delay));
      delay = Math.min(delay * 2, 60_000);
    }
  }
}

/**
 * Starts the bot.
 * @throws ConfigError or EnvError (start-up stops and names the problem), or an Error when the state
 * database does not answer
 */
export async function startBot(opts: StartOptions = {}): Promise<RunningBot> {
  const secrets = new Secrets();
  const log = createLogger(secrets, {
    sink: opts.logSink,
    level: (Deno.env.get("LOG_LEVEL") as never) ?? "info",
  });
  const rawEnv = opts.env ?? Deno.env.toObject();
  const env: BotEnv = readEnv(rawEnv, secrets);
  if (!env.signingKeys) {
    throw new EnvError([
      "BISMAN_SIGNING_KEY is not set: the key, kept outside the state database, that seals approval requests " +
      "and keys the audit chain (generate one with `openssl rand -base64 32` and put it in the bot's Secret)",
    ]);
  }
  const config = opts.config ?? await loadConfig(env.configPath);
  const now = opts.now ?? (() => new Date());
  // A `schedules` key naming no job stops start-up here, naming the key, like any other config error.
  const jobServices: JobServices = {};
  const jobList = opts.jobs ?? allJobs();
  resolveSchedules({ config }, jobList);
  // Process metrics and the build (the image sets BISMAN_VERSION and BISMAN_COMMIT from its build arguments).
  const metrics = new Metrics({
    process: true,
    build: { version: rawEnv.BISMAN_VERSION, commit: rawEnv.BISMAN_COMMIT },
  });

  // Failing to reach this database then reads "State database unavailable", not an internal error.
  await setStateDatabase(env.databaseUrl);
  const state = connectState(env.databaseUrl);
  await migrateState(state, env.databaseMigrationUrl, env.migrations);

  const slackTimeoutMs = opts.slackTimeoutMs ?? 10_000;
  const slack = new WebClient(env.slackBotToken, {
    slackApiUrl: env.slackApiUrl,
    retryConfig: { retries: 5, factor: 2, minTimeout: 200, maxTimeout: 5000 },
    timeout: slackTimeoutMs,
    // The SDK's own warnings (a retried call, a timeout) as JSON lines, not console text.
    logger: boltLogger(log.child({ component: "slack-web-api" })) as never,
  });
  const groups = new GroupCache(async (usergroup) => {
    const r = await slack.usergroups.users.list({ usergroup });
    return r.users ?? [];
  });

  const vault = VaultClient.fromEnv(env, secrets, log.child({ component: "vault" }));
  const targets = new Targets(
    config,
    secrets,
    vault ? (ref, mount) => vault.readRef(ref, { mount }) : undefined,
  );
  const audit = new AuditLog(state, secrets, now, env.signingKeys, config.audit_log.unkeyed_rows);
  audit.onLost = (entry, error) =>
    log.error("audit entry not written; this line is its record", {
      error,
      entry: { ...entry, requestId: entry.requestId === undefined ? undefined : Number(entry.requestId) },
    });
  const deps: AppDeps = {
    config,
    env,
    state,
    targets,
    audit,
    log,
    metrics,
    secrets,
    groupMembers: (g) => groups.members(g),
    now,
    vault,
    slack: slackApiOf(slack, secrets),
    keys: env.signingKeys,
    witness: config.audit_log.witness && vault
      ? new VaultWitness(vault, {
        path: config.audit_log.witness.vault_path,
        mount: config.audit_log.witness.mount,
      })
      : undefined,
  };

  // The runbook's state-database values (approvals, alert threads, restore tests), read when scraped.
  registerRunbookMetrics(deps, opts.stateMetrics);

  // The approval gate: always built, so every destructive subcommand and alert button reaches it.
  const gate = new ApprovalGate(deps, new SlackApprovalNotifier(slack, secrets), {
    instanceId: opts.instanceId,
  });
  deps.gate = gate;
  // The scheduler's approval_expiry job sweeps once per slot across replicas; the gate keeps its own timer
  // only when a test asks for a faster sweep or the job will not run here.
  await gate.start({
    sweepIntervalMs: opts.sweepIntervalMs,
    sweep: opts.sweepIntervalMs !== undefined || config.schedules.approval_expiry?.enabled === false ||
      !jobList.some((j) => j.name === "approval_expiry"),
  });

  // The break-glass CLI hands its commands in through the state database, as the person logged in there.
  const cliInbox = new CliInbox(deps, gate, {
    instanceId: gate.instanceId,
    sweepIntervalMs: opts.cliSweepIntervalMs,
  });
  await cliInbox.start();

  // Alert threads post through their own client: it reports a 429 instead of waiting inside the library, so
  // the poster can honour Retry-After per channel and keep order.
  const alerts = new AlertThreads(deps, {
    slack: new WebClient(env.slackBotToken, {
      slackApiUrl: env.slackApiUrl,
      rejectRateLimitedCalls: true,
      retryConfig: { retries: 0 },
      timeout: slackTimeoutMs,
      logger: boltLogger(log.child({ component: "slack-web-api" })) as never,
    }),
  });
  alerts.start();
  // The lag check runs as the scheduler's lag_check job (on alerts.lag_check's cadence unless schedules says).
  jobServices.alerts = alerts;

  // SLACK_APP_TOKEN selects Socket Mode: envelopes arrive over a WebSocket and /slack/events goes away.
  // Its client (and undici under it) is loaded only then: over HTTP it would be ~4 MiB of heap for nothing
  // (slack/defer_bolt_requires.ts).
  const socket = env.slackAppToken
    ? new (await import("./slack/socket_mode.ts")).SocketModeEventsReceiver({
      appToken: env.slackAppToken,
      slackApiUrl: env.slackApiUrl,
      log: log.child({ component: "socket-mode" }),
      metrics,
      ...opts.socketMode,
    })
    : undefined;
  const receiver = env.slackSigningSecret && !socket
    ? new SlackEventsReceiver({
      signingSecret: env.slackSigningSecret,
      log,
      metrics,
      ackDeadlineMs: opts.slackAckDeadlineMs,
      onRefused: (reason, detail) => {
        audit.append({
          actor: "slack",
          action: "slack.request_refused",
          outcome: "refused",
          details: { reason, ...detail },
        })
          .catch((err) => log.error("audit append failed", { error: err }));
      },
    })
    : undefined;
  const bolt = createBoltApp(deps, socket ?? receiver!, {
    token: env.slackBotToken,
    slackApiUrl: env.slackApiUrl,
    timeoutMs: slackTimeoutMs,
    registrations: [
      approvalHandlers(gate),
      alertButtonRegistration(alerts),
      alertThreadRegistration(alerts),
      shareRegistration(),
      jobActionHandlers(),
      ...(opts.registrations ?? []),
    ],
  });

  let slackReady = false;
  let stopped = false;
  const probe: Record<string, unknown> = {};
  const http = createHttpHandler({
    receiver,
    metrics,
    log,
    routes: [alertmanagerRoute(alerts, deps), ...(opts.routes ?? [])],
    slackBodyDeadlineMs: opts.slackBodyDeadlineMs,
    readiness: {
      stateReachable: () => stateReachable(state),
      slackReady: () => slackReady,
      details: () => ({
        targets: probe,
        vault: vaultProbe,
        ...(socket ? { socket_mode: socket.connected ? "connected" : "connecting" } : {}),
      }),
    },
  });

  // Vault's state for /readyz's body only: reachable, sealed, or not configured; it never makes it 503.
  let vaultProbe = vault ? "not checked yet" : "not configured";
  const probeVault = async () => {
    if (!vault) return;
    const h = await vault.health();
    vaultProbe = !h.reachable ? "unreachable" : h.sealed ? "sealed" : "ok";
  };
  const probeTargets = async () => {
    void probeVault().catch((err) => log.warn("vault probe failed", { error: err }));
    const statuses = await readServerStatus(targets.names(), deps);
    for (const s of statuses) {
      probe[`${s.target}/${s.member}`] = s.reachable
        ? { status: "ok", role: s.actualRole }
        : { status: "unreachable" };
    }
  };
  void probeTargets().catch((err) => log.warn("target probe failed", { error: err }));
  const probeTimer = setInterval(
    () => void probeTargets().catch((err) => log.warn("target probe failed", { error: err })),
    opts.probeIntervalMs ?? 30_000,
  );
  Deno.unrefTimer(probeTimer);

  void verifySlackAuth(slack, deps, () => (slackReady = true), () => stopped);

  const hostname = opts.hostname ?? (env.port === 0 ? "127.0.0.1" : "0.0.0.0");
  const scheduler = new Scheduler(deps, {
    post: opsChannelPoster(slack, deps),
    jobs: jobList,
    runnerId: opts.runnerId,
    services: jobServices,
  });
  // Idle memory back to the OS after start-up, a digest or a burst (core/idle_reclaim.ts; the image's CMD
  // passes --expose-gc, elsewhere it is off). Every request counts as activity.
  const reclaimer = new IdleReclaimer({
    busy: () => scheduler.running > 0 || gate.running > 0,
    onReclaim: (r) =>
      log.debug("idle heap reclaimed", {
        ms: Math.round(r.ms),
        heap_before_mib: +(r.heapBefore / 2 ** 20).toFixed(1),
        heap_after_mib: +(r.heapAfter / 2 ** 20).toFixed(1),
        malloc_trimmed: r.trimmed,
      }),
  }).start();
  const serve = reclaimer.enabled
    ? (req: Request, info: Deno.ServeHandlerInfo<Deno.NetAddr>) => {
      reclaimer.requests++;
      return http(req, info);
    }
    : http;
  const server = Deno.serve({ hostname, port: env.port, onListen: () => {} }, serve);
  const port = server.addr.port;
  deps.jobs = scheduler;
  scheduler.start();

  log.info("bisman-ops listening", {
    port,
    targets: targets.names(),
    slack: socket ? "socket mode" : "http",
  });
  socket?.connect();

  // SIGHUP reloads the config file without a restart; an invalid file is refused and logged (the running
  // config stays). Only where signals can be listened to (not on Windows) and the config came from a file.
  let onHup: (() => void) | undefined;
  if (!opts.config && Deno.build.os !== "windows") {
    onHup = () =>
      void reloadConfig(deps, { actor: "sighup" }, scheduleCheck(jobList.map((j) => j.name))).catch((err) =>
        log.error("config reload on SIGHUP failed", { error: err })
      );
    Deno.addSignalListener("SIGHUP", onHup);
  }

  return {
    deps,
    bolt,
    slack,
    scheduler,
    gate,
    cliInbox,
    alerts,
    socket,
    port,
    url: `http://127.0.0.1:${port}`,
    fetch: (req) => Promise.resolve(http(req)),
    stop: async (stopOpts = {}) => {
      if (stopped) return { unfinished: 0, jobs: 0 };
      stopped = true;
      if (onHup) Deno.removeSignalListener("SIGHUP", onHup);
      const graceMs = stopOpts.graceMs ?? 10_000;
      clearInterval(probeTimer);
      reclaimer.stop();
      // One line per phase: a shutdown that overruns its bound shows where it waited.
      // New requests stop first: a scheduled job stalled on its target (scheduler.stop waits up to
      // scheduler.stop_grace_seconds for it, or the bound below if shorter) must not keep the listener open,
      // or Kubernetes keeps routing requests to a process that is going away. The jobs' wait runs beside the
      // requests' drain.
      // One deadline for every wait below: waits in a row, each with the whole bound, could outlast main.ts's
      // hard exit and Kubernetes' SIGKILL, and the summary of what was left would never be logged.
      const deadline = Date.now() + graceMs;
      const remaining = () => Math.max(0, deadline - Date.now());
      log.info("stopping: new requests and scheduled jobs");
      const listenerClosed = server.shutdown();
      const jobsStopped = scheduler.stop(graceMs);
      await socket?.stop();
      // Deno's shutdown() also waits for requests still being received: a client that trickles its body
      // must not hold the rest of the shutdown (their work, if any, is counted by the drain below).
      await within(listenerClosed, remaining());
      log.info("stopping: waiting for work in flight", { grace_ms: remaining() });
      const [slackLeft, cliLeft, jobsLeft] = await Promise.all([
        (receiver ?? socket)?.drain(remaining()),
        cliInbox.stop(remaining()),
        jobsStopped,
      ]);
      // Instant commands queue their audit entry and end (slack/bolt_app.ts): their rows are written here,
      // with at least AUDIT_FLOOR_MS even when the drain took the whole bound (main.ts allows 10 s over it).
      const auditLeft = await deps.audit.settled(Math.max(remaining(), AUDIT_FLOOR_MS));
      if (auditLeft) log.warn("stopping: audit entries still being written", { count: auditLeft });
      const left = (slackLeft ?? 0) + cliLeft + auditLeft;
      if (left || jobsLeft) {
        // Work still running past the bound keeps its pools and the gate's liveness lock: both end with the
        // process, at the same moment as the work, and a peer (or the next start) marks it interrupted and
        // reconciles it. Closing the pools under running queries would crash the driver instead; a scheduled
        // run deaf to its stop signal still queries them too (the scheduler has recorded it interrupted).
        log.warn("stopping with work still running: the gate marks it interrupted and reconciles it", {
          count: left,
          jobs: jobsLeft,
          grace_ms: graceMs,
        });
        return { unfinished: left, jobs: jobsLeft };
      }
      log.info("stopping: the approval gate, alert posting and the pools");
      await gate.stop();
      await alerts.stop();
      await targets.close();
      await state.end({ timeout: 5 });
      return { unfinished: 0, jobs: 0 };
    },
  };
}
