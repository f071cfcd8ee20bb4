/**
 * Block Kit for credentials: `/bisman creds` (each role, its Vault key, the age of its password) and the
 * one-line form the digest can reuse. Never shows a password: credential ages hold none.
 *
 * @module
 */

import type { Block, Reply } from "./reply.ts";
import type { CredentialAge } from "../ops/credential_ages.ts";
import { capBlocks, chunkLines, context, escapeMrkdwn, header, mrkdwnSection } from "./blocks.ts";

/** One line: role, key, age and whether it is past the maximum. */
export function credentialAgeLine(a: CredentialAge): string {
  const where = `\`${escapeMrkdwn(a.ref)}\``;
  if (a.error) return `:white_circle: *${a.role}* ${where}: age unknown: ${escapeMrkdwn(a.error)}`;
  const age = `${a.atLeast ? "at least " : ""}${a.ageDays} days`;
  const mark = a.overdue ? ":red_circle:" : ":large_green_circle:";
  const verdict = a.overdue ? `*past the ${a.maxAgeDays}-day maximum*` : `within ${a.maxAgeDays} days`;
  return `${mark} *${a.role}* ${where}: ${age} old (since v${a.sinceVersion}, ${
    a.changedAt?.slice(0, 10)
  }), ${verdict}`;
}

/** The answer to `/bisman creds [target]`. */
export function renderCredentialAges(target: string, ages: CredentialAge[]): Reply {
  const overdue = ages.filter((a) => a.overdue);
  const unknown = ages.filter((a) => a.error);
  const headline = overdue.length
    ? `${overdue.length} of ${ages.length} credentials on ${target} are past their maximum age: ${
      overdue.map((a) => a.role).join(", ")
    }`
    : `All ${ages.length - unknown.length} known credentials on ${target} are within their maximum age`;
  const blocks: Block[] = [header(`Credential ages: ${target}`), mrkdwnSection(escapeMrkdwn(headline))];
  for (const chunk of chunkLines(ages.map(credentialAgeLine))) blocks.push(mrkdwnSection(chunk));
  if (overdue.length) {
    blocks.push(context("`/bisman rotate <role>` or `/bisman rotate all` rotates them (needs approval)"));
  }
  const text = [
    headline,
    ...ages.map((a) =>
      a.error
        ? `${a.role} ${a.ref}: unknown (${a.error})`
        : `${a.role} ${a.ref}: ${a.atLeast ? ">=" : ""}${a.ageDays} days${a.overdue ? " OVERDUE" : ""}`
    ),
  ].join("\n");
  return { text, blocks: capBlocks(blocks), visibility: "ephemeral" };
}
