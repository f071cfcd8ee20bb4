/**
 * How an error looks to the person who asked: ephemeral, one line, what to do next.
 *
 * @module
 */

import type { Reply } from "./reply.ts";
import type { OpsError } from "../core/errors.ts";
import { mrkdwnSection } from "./blocks.ts";

const icon: Partial<Record<OpsError["code"], string>> = {
  not_permitted: ":no_entry:",
  invalid_input: ":warning:",
  unknown_subcommand: ":grey_question:",
  frozen: ":ice_cube:",
  not_configured: ":gear:",
  unreachable: ":electric_plug:",
};

export function renderError(e: OpsError): Reply {
  const text = `${icon[e.code] ?? ":x:"} ${e.userMessage}`;
  return { text, blocks: [mrkdwnSection(text)], visibility: "ephemeral" };
}
