/**
 * What the bot answers, independent of where it is shown: `text` is complete on its own (the CLI prints
 * it; Slack uses it as the notification fallback) and `blocks` is the Block Kit form.
 *
 * @module
 */

/** A Block Kit block, kept loose: views/ builds them, the Slack stand-in validates them. */
export type Block = Record<string, unknown>;

export interface Reply {
  text: string;
  blocks?: Block[];
  /** Query results are ephemeral to the asker by default. */
  visibility?: "ephemeral" | "in_channel";
}
