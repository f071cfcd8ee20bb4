/** What the benchmarks that start the bot as a process share: its environment and signed requests for it. */

import { createHmac } from "node:crypto";
import type { SlackStandIn } from "../standins/slack.ts";
import { OPS_CHANNEL, TEAM, USERS } from "../tests/support/bot.ts";
import { IntegrityKeys } from "../core/keys.ts";
import { httpRequest } from "./_http_load.ts";

/** The bot's environment against the Slack stand-in and a state database (LOG_LEVEL: BOT_LOG_LEVEL or info). */
export function botEnv(slack: SlackStandIn, databaseUrl: string): Record<string, string> {
  return {
    SLACK_SIGNING_SECRET: slack.signingSecret,
    BISMAN_SIGNING_KEY: IntegrityKeys.generate(),
    SLACK_BOT_TOKEN: slack.botToken,
    SLACK_API_URL: slack.apiUrl,
    DATABASE_URL: databaseUrl,
    // Production's level: one JSON line per request is part of the bot's cost.
    LOG_LEVEL: Deno.env.get("BOT_LOG_LEVEL") ?? "info",
  };
}

/**
 * `n` raw HTTP requests of a signed `/bisman help` from alice in the ops channel, each with its own
 * trigger_id, made before any clock starts (signing is not part of what is measured).
 */
export function signedHelpRequests(slack: SlackStandIn, eventsUrl: string, n: number): Uint8Array[] {
  const ts = Math.floor(Date.now() / 1000);
  return Array.from({ length: n }, (_, i) => {
    const body = new URLSearchParams({
      token: "t",
      team_id: TEAM,
      channel_id: OPS_CHANNEL,
      user_id: USERS.alice,
      user_name: "alice",
      command: "/bisman",
      text: "help",
      api_app_id: "A0STANDIN",
      response_url: slack.responseUrl({ user: USERS.alice, channel: OPS_CHANNEL }),
      trigger_id: `${ts}.${i}.bench`,
    }).toString();
    const sig = `v0=${createHmac("sha256", slack.signingSecret).update(`v0:${ts}:${body}`).digest("hex")}`;
    return httpRequest(eventsUrl, {
      "content-type": "application/x-www-form-urlencoded",
      "x-slack-signature": sig,
      "x-slack-request-timestamp": String(ts),
    }, body);
  });
}
