/**
 * Starts a real bot in process against a throwaway cluster and the Slack stand-in, for tests.
 * Nothing inside the bot is replaced: only its environment points at the stand-ins.
 */

import { type Config, parseConfig } from "../../core/config.ts";
import { type RunningBot, startBot, type StartOptions } from "../../bot.ts";
import type { TestCluster } from "./cluster.ts";
import { SlackStandIn } from "../standins/slack.ts";
import { waitFor } from "./wait.ts";

/** Slack user IDs used across the tests. */
export const USERS = {
  alice: "U0ALICE", // operator, the usual requester
  bob: "U0BOB", // operator and approver
  carol: "U0CAROL", // approver
  dave: "U0DAVE", // outsider
  erin: "U0ERIN", // approver through a user group only
} as const;
export const APPROVER_GROUP = "S0DBAS";
export const TEAM = "T0TEST";
export const OPS_CHANNEL = "C0OPS";

/** A config whose target `main` is the test cluster (primary and, when present, its replica). */
export function testConfig(
  cluster: TestCluster,
  patch: (doc: Record<string, any>) => void = () => {},
): Config {
  const conn = (port: number) => ({
    host: "127.0.0.1",
    port,
    database: "postgres",
    user: "postgres",
    sslmode: "disable",
  });
  const doc: Record<string, any> = {
    workspace: { team_id: TEAM },
    slack: { ops_channel: OPS_CHANNEL, command_channels: [] },
    access: {
      operators: { users: [USERS.alice, USERS.bob], groups: [] },
      approvers: { users: [USERS.bob, USERS.carol], groups: [APPROVER_GROUP] },
    },
    targets: {
      main: {
        primary: conn(cluster.primary.port),
        replicas: cluster.replica ? [{ name: "replica1", ...conn(cluster.replica.port) }] : [],
      },
    },
  };
  patch(doc);
  return parseConfig(doc, "test-config");
}

export interface TestBot {
  bot: RunningBot;
  slack: SlackStandIn;
  eventsUrl: string;
  logs: string[];
  /** Sends `/bisman <text>` as `user` and returns the HTTP response and its JSON body (when any). */
  command(
    text: string,
    user?: string,
    extra?: Record<string, string>,
  ): Promise<{ status: number; body: any; ms: number }>;
  stop(): Promise<void>;
}

/**
 * Starts the bot on a fresh state database of `cluster`, with the Slack stand-in (started here unless given).
 * Waits until `/readyz` is 200 (auth.test done).
 */
export async function startTestBot(
  cluster: TestCluster,
  opts: {
    config?: Config;
    slack?: SlackStandIn;
    env?: Record<string, string>;
    start?: Partial<StartOptions>;
  } = {},
): Promise<TestBot> {
  const slack = opts.slack ?? await SlackStandIn.start({
    teamId: TEAM,
    users: {
      [USERS.alice]: { name: "alice" },
      [USERS.bob]: { name: "bob" },
      [USERS.carol]: { name: "carol" },
      [USERS.dave]: { name: "dave" },
      [USERS.erin]: { name: "erin" },
    },
    usergroups: { [APPROVER_GROUP]: [USERS.erin] },
  });
  const stateDb = await cluster.createDatabase("state");
  const logs: string[] = [];
  const bot = await startBot({
    env: {
      SLACK_SIGNING_SECRET: slack.signingSecret,
      SLACK_BOT_TOKEN: slack.botToken,
      SLACK_API_URL: slack.apiUrl,
      DATABASE_URL: cluster.primary.url({ database: stateDb }),
      BISMAN_CONFIG: "test-config",
      PORT: "0",
      ...opts.env,
    },
    config: opts.config ?? testConfig(cluster),
    logSink: (l) => logs.push(l),
    ...opts.start,
  });
  const eventsUrl = `${bot.url}/slack/events`;
  await waitFor(
    async () => (await fetch(`${bot.url}/readyz`).then((r) => r.body?.cancel().then(() => r.status))) === 200,
    {
      what: "bot /readyz",
      timeoutMs: 10_000,
    },
  );
  const ownSlack = !opts.slack;
  return {
    bot,
    slack,
    eventsUrl,
    logs,
    command: async (text, user = USERS.alice, extra = {}) => {
      const started = performance.now();
      const res = await slack.sendCommand(eventsUrl, {
        text,
        user_id: user,
        team_id: TEAM,
        channel_id: OPS_CHANNEL,
        ...extra,
      });
      const raw = await res.text();
      const ms = performance.now() - started;
      return { status: res.status, body: raw ? JSON.parse(raw) : undefined, ms };
    },
    stop: async () => {
      await bot.stop();
      if (ownSlack) await slack.stop();
    },
  };
}
