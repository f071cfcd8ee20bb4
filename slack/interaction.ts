/**
 * Who clicked: the invoker of a Slack interaction (block_actions, view_submission), read from its payload.
 * Transport: the Slack listeners (slack/, alerts/) use it; views never do.
 *
 * @module
 */

import type { Invoker } from "../core/access.ts";

/** The parts of an interaction payload (block_actions, view_submission) that say who clicked. */
export interface InteractionBody {
  user?: { id?: string; username?: string; name?: string; team_id?: string };
  team?: { id?: string } | null;
  enterprise?: { id?: string } | null;
  channel?: { id?: string } | null;
}

/**
 * The invoker of an interaction: Slack's IDs only. The name is kept for display and never compared.
 *
 * The workspace is the clicking user's own (`user.team_id`), and the payload's `team` only when the user
 * object carries none. In a Slack Connect channel members of other organisations see the bot's messages and
 * can click their buttons, and the payload's `team` is the context of the click, which need not be the
 * user's home (https://docs.slack.dev/apis/slack-connect: "be on the lookout for minor differences in
 * channel, message, user, team and related objects"; Bolt's `buildSource` prefers
 * `view.app_installed_team_id` over the payload's team for the same reason). The user's own team decides:
 * an outsider clicking in a shared channel is refused by `checkWorkspace`.
 */
export function invokerOfInteraction(body: InteractionBody, channelId?: string): Invoker {
  return {
    userId: body.user?.id ?? "",
    userName: body.user?.username ?? body.user?.name,
    teamId: body.user?.team_id ?? body.team?.id,
    enterpriseId: body.enterprise?.id,
    channelId: channelId ?? body.channel?.id,
    via: "slack",
  };
}
