/**
 * What the bot answers, independent of where it is shown: `text` is complete on its own (the CLI prints
 * it; Slack uses it as the notification fallback) and `blocks` is the Block Kit form.
 *
 * @module
 */

import type { KnownBlock } from "@slack/types";

/**
 * A Block Kit block as `@slack/types` defines them (the version @slack/web-api 8.2.0 depends on): views/
 * builds only blocks Slack knows, with the fields each type has; the Slack stand-in checks Slack's limits.
 */
export type Block = KnownBlock;

export interface Reply {
  text: string;
  blocks?: Block[];
  /** Query results are ephemeral to the asker by default. */
  visibility?: "ephemeral" | "in_channel";
}
