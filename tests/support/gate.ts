/**
 * Helpers for approval-gate tests: ask for something through `/bisman` and read the answer the bot sent
 * to the response_url, and wait for an ephemeral answer to one user.
 */

import type { TestBot } from "./bot.ts";
import { USERS } from "./bot.ts";
import { waitFor } from "../../standins/wait.ts";
import { afterResponse } from "../../core/after_response.ts";

/**
 * Waits until the audit entries of the commands answered so far are written: an instant command queues its
 * entry after its ack (slack/bolt_app.ts), so a test that reads or rewrites the log right after the answer
 * would race it. The bot runs in this process, so its after-response queue is this module's.
 */
export async function auditCaughtUp(tb: TestBot): Promise<void> {
  await new Promise<void>((r) => afterResponse(r));
  await tb.bot.deps.audit.settled();
}

/**
 * Sends `/bisman <text>` as `user` and waits for its final answer (the response_url reply that follows
 * the "Working on…" ack, or the ack itself for instant subcommands). Returns the text and, when the answer
 * announces a request, its id. Returns once the command's audit entry is written.
 */
export async function ask(
  tb: TestBot,
  text: string,
  user: string = USERS.alice,
  extra: Record<string, string> = {},
): Promise<{ text: string; id?: number; visibility?: string }> {
  const before = tb.slack.responses.length;
  const r = await tb.command(text, user, extra);
  if (r.status !== 200) throw new Error(`/bisman ${text} answered HTTP ${r.status}`);
  let answer = r.body as { text: string; response_type?: string };
  if (/Working on/.test(answer.text)) {
    const reply = await waitFor(() => tb.slack.responses.slice(before).at(-1), {
      what: `the answer to /bisman ${text}`,
    });
    answer = reply.body as { text: string; response_type?: string };
  }
  await auditCaughtUp(tb);
  const m = /Request #(\d+)/.exec(answer.text);
  return { text: answer.text, id: m ? Number(m[1]) : undefined, visibility: answer.response_type };
}

/** Waits for an ephemeral message to `user` whose text matches `pattern`; returns its text. */
export async function ephemeralTo(tb: TestBot, user: string, pattern: RegExp, since = 0): Promise<string> {
  const m = await waitFor(
    () =>
      tb.slack.ephemerals.slice(since).find((e) => e.ephemeral_user === user && pattern.test(e.text ?? "")),
    { what: `an ephemeral to ${user} matching ${pattern}` },
  );
  return m.text ?? "";
}
