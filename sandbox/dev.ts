/**
 * `deno task dev`: the whole bot in a sandbox, in one command, with no environment variables.
 *
 * In a data folder that survives restarts (`.data/`, git-ignored) it starts a PostgreSQL primary and a
 * streaming replica, loads the BISMAN sample schema with generated rows, makes a real dump, fills the
 * Vault stand-in with the role passwords, starts the Slack stand-in and the bot, and serves the console:
 * a Slack-like page for #ops at the one URL it prints. Ctrl-C stops everything it started.
 *
 * Flags: `--data-dir <dir>` (default `.data`), `--port <n>` (console; default 8080, or a free one).
 *
 * @module
 */

import { fileURLToPath } from "node:url";
import { type RunningBot, startBot } from "../bot.ts";
import { allSubcommands } from "../commands/registry.ts";
import type { SampleRows } from "../ops/_target_sql.ts";
import type { SlackStandIn } from "../standins/slack.ts";
import type { VaultStandIn } from "../standins/vault.ts";
import {
  MissingServerError,
  openSandboxCluster,
  openStateCluster,
  type PersistentCluster,
} from "./clusters.ts";
import { createConsoleApp } from "./console.ts";
import {
  ensureDump,
  ensurePgBackRest,
  ensureStateDatabase,
  forgetSetupStatements,
  grantSandboxRights,
  seedDatabases,
} from "./seed.ts";
import { startSandboxAlerts, stopLeftoverAlertmanager } from "./alerts.ts";
import { freePort } from "../standins/ports.ts";
import { OPS_CHANNEL, SANDBOX_USERS, startSlack, startVault, TEAM_ID } from "./standins.ts";
import { PASSWORD_ENV, stateUrl, writeSandboxConfig } from "./config.ts";
import { cliEnvFile, setUpCliPeople } from "./cli_people.ts";
import { createTroublePanel } from "./trouble.ts";
import { IntegrityKeys } from "../core/keys.ts";
import { startSandboxEvidence } from "./evidence.ts";

/** Options of {@link startSandbox}. */
export interface SandboxOptions {
  /** The data folder (default `.data` in the repository). */
  dataDir?: string;
  /** The console's port: 0 for any free one (default: 8080 when free, else the last one, else any). */
  port?: number;
  /** Rows generated on first start. */
  rows?: Partial<SampleRows>;
  /** Set up pgBackRest where it is installed (default true; tests of other parts skip its ~5 s). */
  pgbackrest?: boolean;
  /** Progress lines (default: stdout). */
  log?: (line: string) => void;
}

/** A running sandbox. */
export interface Sandbox {
  /** The console's URL. */
  url: string;
  dataDir: string;
  cluster: PersistentCluster;
  slack: SlackStandIn;
  vault: VaultStandIn;
  bot: RunningBot;
  /** Stops everything that was started, in reverse order; idempotent. */
  stop(): Promise<void>;
}

const REPO = fileURLToPath(new URL("../", import.meta.url));
const DEFAULT_PORT = 8080;

interface SavedState {
  ports?: { primary?: number; replica?: number; state?: number; console?: number };
  /** Alertmanager's temp folder, so a run after a SIGKILL can stop the Alertmanager it left behind. */
  alertmanagerDir?: string;
  /** pg_receivewal's pid, so a run after a SIGKILL can stop the one it left behind. */
  receiveWalPid?: number;
}

async function readState(dataDir: string): Promise<SavedState> {
  try {
    return JSON.parse(await Deno.readTextFile(`${dataDir}/sandbox.json`));
  } catch {
    return {};
  }
}

function portFree(port: number | undefined): port is number {
  if (!port) return false;
  try {
    Deno.listen({ hostname: "127.0.0.1", port }).close();
    return true;
  } catch {
    return false;
  }
}

/** Raised when another sandbox already runs on the same data folder. */
export class SandboxBusyError extends Error {
  constructor(readonly pid: number, dataDir: string, url?: string) {
    super(
      `Another sandbox (pid ${pid}) is running on ${dataDir}${url ? ` at ${url}` : ""}: ` +
        `use it, or stop it (Ctrl-C in its terminal) first.`,
    );
    this.name = "SandboxBusyError";
  }
}

function processAlive(pid: number): boolean {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    return !/^\d+ \(.*\) [ZX]/.test(stat);
  } catch {
    return false;
  }
}

/**
 * Claims the data folder for this process (`sandbox.pid`); a second sandbox on the same folder would stop
 * the first one's PostgreSQL. A pid file left by a killed run is taken over.
 */
async function lockDataDir(dataDir: string): Promise<() => Promise<void>> {
  const file = `${dataDir}/sandbox.pid`;
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      await Deno.writeTextFile(file, String(Deno.pid), { createNew: true });
      return () => Deno.remove(file).catch(() => {});
    } catch (err) {
      if (!(err instanceof Deno.errors.AlreadyExists)) throw err;
      const pid = Number((await Deno.readTextFile(file).catch(() => "")).trim());
      if (pid && pid !== Deno.pid && processAlive(pid)) {
        const port = (await readState(dataDir)).ports?.console;
        throw new SandboxBusyError(pid, dataDir, port ? `http://127.0.0.1:${port}/` : undefined);
      }
      await Deno.remove(file).catch(() => {});
    }
  }
  throw new Error(`Could not claim ${file}`);
}

/**
 * Starts the sandbox. On failure everything already started is stopped again before the error is thrown.
 * @throws {MissingServerError} when the PostgreSQL server is not installed (its message says what to install)
 */
export async function startSandbox(opts: SandboxOptions = {}): Promise<Sandbox> {
  const log = opts.log ?? ((line: string) => console.log(line));
  await Deno.mkdir(opts.dataDir ?? `${REPO}.data`, { recursive: true });
  // Absolute: the config names folders in it, and the postgres user resolves them from elsewhere.
  const dataDir = await Deno.realPath(opts.dataDir ?? `${REPO}.data`);
  const release = await lockDataDir(dataDir);
  const saved = await readState(dataDir);
  const stops: (() => Promise<unknown>)[] = [release];
  const stopAll = async () => {
    for (const stop of stops.splice(0).reverse()) {
      await stop().catch((err) =>
        console.error(`sandbox: while stopping: ${err instanceof Error ? err.message : err}`)
      );
    }
  };

  try {
    const started = performance.now();
    const pgbackrestInstalled = opts.pgbackrest !== false &&
      await Deno.stat("/usr/bin/pgbackrest").then((s) => s.isFile).catch(() => false);
    const { cluster, note } = await openSandboxCluster({
      dataDir,
      ports: saved.ports,
      archive: pgbackrestInstalled,
    });
    stops.push(() => cluster.stop());
    if (note) log(note);
    log(
      `PostgreSQL 15: primary on port ${cluster.primary.port}, streaming replica on port ${cluster.replica?.port} ` +
        `(${cluster.reused ? "started again from" : "created in"} ${cluster.dir})`,
    );

    const stateCluster = await openStateCluster({ dataDir, port: saved.ports?.state });
    stops.push(() => stateCluster.stop());
    await ensureStateDatabase(stateCluster);
    log(
      `PostgreSQL 15: the bot's state database on its own server, port ${stateCluster.primary.port} ` +
        `(so stopping the target's primary leaves the bot running)`,
    );

    await seedDatabases(cluster, { rows: opts.rows, log, dataDir });
    const rights = await grantSandboxRights(cluster);
    if (rights.length) log(`Sandbox rights: ${rights.join("; ")}`);
    const dumpDir = `${dataDir}/backups/dumps`;
    await ensureDump(cluster, dumpDir, log);
    const pgbackrest = pgbackrestInstalled ? await ensurePgBackRest(cluster, log) : undefined;

    const { vault, botPassword } = await startVault(cluster);
    stops.push(() => vault.stop());
    log(`Vault stand-in at ${vault.addr}: role passwords written to secret/bisman/db and set on the roles`);

    const slack = await startSlack();
    stops.push(() => slack.stop());
    log(
      `Slack stand-in at ${slack.apiUrl} (#${OPS_CHANNEL.name}; ${
        SANDBOX_USERS.map((u) => u.name).join(", ")
      })`,
    );

    await forgetSetupStatements(cluster);

    // The bot's port is chosen first: Alertmanager's webhook points at it before the bot starts.
    const botPort = await freePort();
    const alertsToken = `sandbox-alerts-${crypto.randomUUID()}`;
    if (await stopLeftoverAlertmanager(saved.alertmanagerDir)) {
      log("Stopped the Alertmanager a killed sandbox left running");
    }
    const alerts = await startSandboxAlerts({
      webhookUrl: `http://127.0.0.1:${botPort}/alerts`,
      token: alertsToken,
      replicaPort: cluster.replica?.port,
      primaryPort: cluster.primary.port,
      log,
    });
    stops.push(() => alerts.stop());

    const evidence = await startSandboxEvidence({
      cluster,
      dataDir,
      leftoverPid: saved.receiveWalPid,
      log,
    });
    stops.push(() => evidence.stop());

    const configPath = await writeSandboxConfig({
      cluster,
      dataDir,
      dumpDir,
      pgbackrest,
      alertmanagerUrl: alerts.url,
      evidence,
    });
    // Targets read `password_env` from the process environment (as in production); so do the AWS SDK's
    // default credential chain and the search password.
    Deno.env.set(PASSWORD_ENV, botPassword);
    for (const [k, v] of Object.entries(evidence.env)) Deno.env.set(k, v);
    const env: Record<string, string> = {
      SLACK_SIGNING_SECRET: slack.signingSecret,
      SLACK_BOT_TOKEN: slack.botToken,
      SLACK_API_URL: slack.apiUrl,
      DATABASE_URL: stateUrl(stateCluster),
      BISMAN_CONFIG: configPath,
      VAULT_ADDR: vault.addr,
      VAULT_TOKEN: vault.rootToken,
      ALERTS_TOKEN: alertsToken,
      [PASSWORD_ENV]: botPassword,
      // Kept in .data beside the state database it seals, only because this is a sandbox: in production it
      // lives in the bot's Secret, never beside the database.
      BISMAN_SIGNING_KEY: await sandboxSigningKey(dataDir),
      ...evidence.env,
    };
    const botLog = await Deno.open(`${dataDir}/bot.log`, { create: true, append: true });
    stops.push(() => Promise.resolve(botLog.close()));
    const encoder = new TextEncoder();
    const bot = await startBot({
      env: { ...env, PORT: String(botPort) },
      hostname: "127.0.0.1",
      logSink: (line) => void botLog.write(encoder.encode(`${line}\n`)).catch(() => {}),
    });
    stops.push(() => bot.stop());
    log(`bisman-ops bot at ${bot.url} (log: ${dataDir}/bot.log)`);

    // The CLI's people log in as themselves (the bot's migration has created bisman_cli by now).
    const cliFiles = await setUpCliPeople(stateCluster, dataDir);
    stops.push(() => Promise.all(cliFiles.map((f) => Deno.remove(f).catch(() => {}))));
    // Creating the CLI's people (CREATE ROLE, ALTER ROLE … PASSWORD) is the sandbox's set-up too, not a role
    // change made by hand for `/bisman detect` and the digest to report.
    await forgetSetupStatements(cluster);

    const trouble = createTroublePanel({
      cluster,
      vault,
      dumpDir,
      alerts,
      subcommands: () => allSubcommands().map((s) => s.name),
      hooks: {
        digestNow: async (user) => {
          const u = SANDBOX_USERS.find((x) => x.id === user);
          const run = await bot.scheduler.runNow("digest", {
            via: "slack",
            userId: user,
            userName: u?.name,
            teamId: TEAM_ID,
            channelId: OPS_CHANNEL.id,
          });
          return `The digest job ran (${run.outcome}${
            run.error ? `: ${run.error}` : ""
          }): its message is in #${OPS_CHANNEL.name}.`;
        },
      },
    });
    stops.push(() => trouble.stop());

    const app = createConsoleApp({
      slack,
      eventsUrl: `${bot.url}/slack/events`,
      teamId: TEAM_ID,
      channel: OPS_CHANNEL,
      users: SANDBOX_USERS,
      subcommands: () =>
        allSubcommands().map((s) => ({
          name: s.name,
          usage: s.usage,
          summary: s.summary,
          examples: s.examples,
          destructive: s.destructive,
        })),
      trouble,
    });
    const port = opts.port ??
      (portFree(DEFAULT_PORT) ? DEFAULT_PORT : portFree(saved.ports?.console) ? saved.ports.console : 0);
    const server = Deno.serve({ hostname: "127.0.0.1", port, onListen: () => {} }, app.fetch);
    stops.push(() => {
      app.close();
      return server.shutdown();
    });
    const url = `http://127.0.0.1:${server.addr.port}/`;

    await Deno.writeTextFile(
      `${dataDir}/sandbox.json`,
      JSON.stringify(
        {
          ports: {
            primary: cluster.primary.port,
            replica: cluster.replica?.port,
            state: stateCluster.primary.port,
            console: server.addr.port,
          },
          alertmanagerDir: alerts.dir,
          receiveWalPid: evidence.receiveWalPid,
        } satisfies SavedState,
        null,
        2,
      ),
    );
    log(`Ready in ${((performance.now() - started) / 1000).toFixed(1)} s.`);

    let stopping: Promise<void> | undefined;
    return {
      url,
      dataDir,
      cluster,
      slack,
      vault,
      bot,
      stop: () => (stopping ??= stopAll()),
    };
  } catch (err) {
    await stopAll();
    throw err;
  }
}

/** A path as the person can type it: relative to the working folder when inside it. */
function shownPath(path: string): string {
  const cwd = `${Deno.cwd()}/`;
  return path.startsWith(cwd) ? path.slice(cwd.length) : path;
}

function parseFlags(args: string[]): { dataDir?: string; port?: number } {
  const out: { dataDir?: string; port?: number } = {};
  for (let i = 0; i < args.length; i++) {
    const [flag, inline] = args[i].split("=", 2);
    const value = () => inline ?? args[++i];
    if (flag === "--data-dir") out.dataDir = value();
    else if (flag === "--port") {
      const n = Number(value());
      if (!Number.isInteger(n) || n < 0 || n > 65535) throw new Error(`--port wants a port number`);
      out.port = n;
    } else if (flag === "--help" || flag === "-h") {
      console.log("deno task dev [--data-dir <dir>] [--port <n>]");
      Deno.exit(0);
    } else throw new Error(`Unknown flag ${args[i]}: deno task dev [--data-dir <dir>] [--port <n>]`);
  }
  return out;
}

if (import.meta.main) {
  let sandbox: Sandbox | undefined;
  let stopping = false;
  const shutdown = async (signal: string) => {
    if (stopping) {
      console.log("\nStill stopping; press Ctrl-C again to leave processes behind.");
      Deno.exit(130);
    }
    stopping = true;
    // Still starting: startSandbox() finishes first, then the code below stops what it started.
    if (!sandbox) return void console.log(`\n${signal}: stopping as soon as start-up has finished…`);
    console.log(`\n${signal}: stopping the bot, the stand-ins and PostgreSQL…`);
    await sandbox?.stop();
    console.log("Stopped. The data stays in the data folder for next time.");
    Deno.exit(0);
  };
  Deno.addSignalListener("SIGINT", () => void shutdown("Ctrl-C"));
  Deno.addSignalListener("SIGTERM", () => void shutdown("SIGTERM"));
  try {
    const flags = parseFlags(Deno.args);
    console.log("Starting the bisman-ops sandbox…");
    sandbox = await startSandbox({ dataDir: flags.dataDir, port: flags.port });
    if (stopping) {
      await sandbox.stop();
      Deno.exit(0);
    } else {
      console.log(
        `\n  Open ${sandbox.url}\n\n  That is the #ops console. The break-glass CLI works against this sandbox too:\n` +
          `    deno task ops --env-file ${shownPath(cliEnvFile(sandbox.dataDir, "alice"))} status\n` +
          `  (alice; bob, carol and dave have their own files: each logs in to the state database as themselves)\n` +
          `  Ctrl-C stops everything.\n`,
      );
    }
  } catch (err) {
    if (err instanceof MissingServerError || err instanceof SandboxBusyError) {
      console.error(err.message);
      Deno.exit(1);
    }
    console.error(`The sandbox could not start: ${err instanceof Error ? err.stack ?? err.message : err}`);
    Deno.exit(1);
  }
}

/** The sandbox's integrity key: made once, kept in `.data/signing.key` (mode 600) across restarts. */
async function sandboxSigningKey(dataDir: string): Promise<string> {
  const file = `${dataDir}/signing.key`;
  try {
    return (await Deno.readTextFile(file)).trim();
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  }
  const key = IntegrityKeys.generate();
  await Deno.writeTextFile(file, `${key}\n`, { mode: 0o600 });
  return key;
}
