/**
 * Starts a real bot in process against a throwaway cluster and the Slack stand-in, for tests.
 * Nothing inside the bot is replaced: only its environment points at the stand-ins.
 */

import { type Config, parseConfig } from "../../core/config.ts";
import { type RunningBot, startBot, type StartOptions } from "../../bot.ts";
import type { TestCluster } from "../../standins/cluster.ts";
import { SlackStandIn, type StoredMessage } from "../../standins/slack.ts";
import { waitFor } from "../../standins/wait.ts";
import { IntegrityKeys } from "../../core/keys.ts";
import type { RequestState } from "../../gate/store.ts";
import { type ActionId, encodeRequestButton } from "../../views/actions.ts";
import { currentVersionsCopy, UNREACHABLE_FEED_URL } from "./versions_feed.ts";

/** The integrity key of every test bot of this process (a fresh one per test process). */
export const TEST_SIGNING_KEY = IntegrityKeys.generate();
import { REQUEST_EVENT_TYPE } from "../../slack/approval_messages.ts";

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
  return parseConfig(testConfigDoc(cluster, patch), "test-config");
}

/** The YAML document behind {@link testConfig} (for a config file given to a bot subprocess). */
export function testConfigDoc(
  cluster: TestCluster,
  patch: (doc: Record<string, any>) => void = () => {},
): Record<string, any> {
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
    // Security patches judged against a local copy of the versions feed (tests/support/versions_feed.ts).
    checklist: {
      postgres_versions: { url: UNREACHABLE_FEED_URL, offline_copy: currentVersionsCopy(cluster.binDir) },
    },
  };
  patch(doc);
  return doc;
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
  /** The latest approval message (of request `id` when given), found by its metadata. */
  approvalMessage(id?: number): StoredMessage | undefined;
  /**
   * Clicks a button of request `id`'s approval message as `user`, as Slack would deliver it (signed
   * block_actions). The value is the button's own; a message whose buttons are gone is clicked with the
   * value it had (a stale client). Returns the HTTP status of the ack.
   */
  click(
    action: ActionId,
    id: number,
    user: string,
    opts?: { teamId?: string; userName?: string; eventsUrl?: string },
  ): Promise<number>;
  /** Submits the latest modal with `callbackId` that the bot opened, as `user`, with `values` per block. */
  submitView(
    callbackId: string,
    user: string,
    values: Record<string, Record<string, string>>,
  ): Promise<{ status: number; body: any }>;
  /** Waits until request `id` is in `state` (and its message edits are done); returns its view. */
  waitForState(id: number, state: RequestState, timeoutMs?: number): Promise<void>;
  /** The id of the newest request, from its approval message. */
  lastRequestId(): number;
  stop(): Promise<void>;
}

/** How long TestBot.stop() waits for the bot (its own bounds: 10 s grace, 10 s gate, 5 s pools). */
const STOP_BOUND_MS = 60_000;

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
    /** Use this state database (two bots sharing one), instead of a fresh one. */
    stateDb?: string;
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
  const stateDb = opts.stateDb ?? await cluster.createDatabase("state");
  const logs: string[] = [];
  const bot = await startBot({
    env: {
      SLACK_SIGNING_SECRET: slack.signingSecret,
      BISMAN_SIGNING_KEY: TEST_SIGNING_KEY,
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
  const requestIdOf = (m: StoredMessage): number | undefined => {
    const meta = m.metadata as { event_type?: string; event_payload?: { request_id?: number } } | undefined;
    return meta?.event_type === REQUEST_EVENT_TYPE ? meta.event_payload?.request_id : undefined;
  };
  const approvalMessage = (id?: number) =>
    slack.messages.findLast((m) =>
      requestIdOf(m) !== undefined && (id === undefined || requestIdOf(m) === id)
    );
  const buttonValue = (m: StoredMessage, action: string): string | undefined => {
    for (const b of (m.blocks ?? []) as any[]) {
      for (const e of b.elements ?? []) if (e.action_id === action) return e.value;
    }
    return undefined;
  };
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
    approvalMessage,
    click: async (action, id, user, o = {}) => {
      const m = approvalMessage(id);
      if (!m) throw new Error(`No approval message for request #${id}`);
      let value = buttonValue(m, action);
      if (!value) {
        const view = await bot.gate.view(id);
        value = encodeRequestButton({ request: id, plan: view!.request.plan_hash });
      }
      const res = await slack.sendBlockAction(o.eventsUrl ?? eventsUrl, {
        user_id: user,
        user_name: o.userName,
        team_id: o.teamId ?? TEAM,
        action_id: action,
        value,
        channel_id: m.channel,
        message_ts: m.ts,
      });
      await res.body?.cancel();
      return res.status;
    },
    submitView: async (callbackId, user, values) => {
      const opened = slack.views.findLast((v) => (v.view as any).callback_id === callbackId);
      if (!opened) throw new Error(`The bot opened no modal ${callbackId}`);
      const view = opened.view as any;
      const stateValues: Record<string, Record<string, { type: string; value: string }>> = {};
      for (const [block, actions] of Object.entries(values)) {
        stateValues[block] = Object.fromEntries(
          Object.entries(actions).map(([a, v]) => [a, { type: "plain_text_input", value: v }]),
        );
      }
      const res = await slack.sendViewSubmission(eventsUrl, {
        user_id: user,
        team_id: TEAM,
        callback_id: callbackId,
        private_metadata: view.private_metadata,
        values: stateValues,
      });
      const raw = await res.text();
      return { status: res.status, body: raw ? JSON.parse(raw) : undefined };
    },
    waitForState: async (id, state, timeoutMs = 10_000) => {
      await waitFor(async () => (await bot.gate.view(id))?.request.state === state, {
        what: `request #${id} to be ${state}`,
        timeoutMs,
      });
      await bot.gate.idle();
    },
    lastRequestId: () => {
      const m = approvalMessage();
      const id = m ? requestIdOf(m) : undefined;
      if (id === undefined) throw new Error("No approval message was posted");
      return id;
    },
    stop: async () => {
      // Bounded, with the bot's last log lines: a stop that never ends would hang the whole suite, where
      // a failure names what was still running.
      let timer: ReturnType<typeof setTimeout> | undefined;
      const stopped = await Promise.race([
        bot.stop().then(() => true),
        new Promise<false>((r) => (timer = setTimeout(() => r(false), STOP_BOUND_MS))),
      ]);
      clearTimeout(timer);
      if (ownSlack) await slack.stop();
      if (!stopped) {
        throw new Error(
          `bot.stop() did not finish within ${STOP_BOUND_MS / 1000} s; its last log lines:\n${
            logs.slice(-15).join("\n")
          }`,
        );
      }
    },
  };
}
