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
 * The workspace is the payload's team (or, without one, the user's), so a click from another workspace
 * is refused by `checkWorkspace`.
 */
export function invokerOfInteraction(body: InteractionBody, channelId?: string): Invoker {
  return {
    userId: body.user?.id ?? "",
    userName: body.user?.username ?? body.user?.name,
    teamId: body.team?.id ?? body.user?.team_id,
    enterpriseId: body.enterprise?.id,
    channelId: channelId ?? body.channel?.id,
    via: "slack",
  };
}
