/**
 * `deno task ops approve <id>`: a person approves only a plan they were shown. The CLI reads the request
 * with the person's own login (bisman_cli may SELECT requests and approvals), shows its plan, and sends the
 * hash of the plan it showed, computed here from the plan itself rather than copied from the row. At a
 * terminal it asks y/N (and for the typed confirmation some policies want); elsewhere it needs
 * `--plan <hash>`, the hash the person saw (here, with `deno task ops request <id>`, or on the Slack
 * message), and refuses when the plan now hashes to anything else. The bot's gate then checks the hash again
 * against the plan that runs.
 *
 * @module
 */

import type { Sql } from "postgres";
import { getRequest, listApprovals } from "../gate/store.ts";
import { confirmTextOf, planHashOf } from "../gate/hooks.ts";
import { type CliOutcome, describeRequest, EXIT } from "../commands/cli_requests.ts";
import { askLine, askYesNo } from "./prompt.ts";

/** What approving needs from the person, or the answer that ends the command here. */
export type ApprovalPrep = { options: { planHash: string; typed?: string } } | { outcome: CliOutcome };

/**
 * Shows request `id`'s plan and settles which plan hash the approval carries.
 * @param ask whether a person can be asked at a terminal
 * @param show prints the plan for the person (stderr)
 */
export async function prepareApproval(
  sql: Sql,
  id: number,
  flags: { plan?: string; confirm?: string },
  io: { ask: boolean; show: (text: string) => void },
): Promise<ApprovalPrep> {
  const row = await getRequest(sql, id);
  if (!row) {
    const msg = `There is no request #${id}`;
    return {
      outcome: { text: msg, exit: EXIT.refused, json: { ok: false, code: "invalid_input", error: msg } },
    };
  }
  const shown = await planHashOf(row.plan);
  // A closed request is refused by the gate, which says why; there is nothing to look at first.
  if (row.state !== "pending") return { options: { planHash: shown, typed: flags.confirm } };

  const approvals = await listApprovals(sql, id);
  let text = describeRequest({ request: { ...row, plan_hash: shown }, approvals });
  if (shown !== row.plan_hash) {
    text += `\n  ! The request was recorded with plan ${row.plan_hash}; the plan above is not that plan.`;
  }
  if (flags.plan !== undefined) {
    if (flags.plan.trim().toLowerCase() !== shown) {
      const msg =
        `Not approved: request #${id}'s plan is ${shown}, not the ${flags.plan} you gave. Look at it ` +
        `again (\`deno task ops request ${id}\`) and approve the plan you see.`;
      return {
        outcome: {
          text: `${text}\n\n${msg}`,
          exit: EXIT.refused,
          json: { ok: false, code: "state_changed", error: msg, plan_hash: shown },
        },
      };
    }
    return { options: { planHash: shown, typed: flags.confirm } };
  }
  if (!io.ask) {
    const msg = `To approve exactly this plan: deno task ops approve ${id} --plan ${shown}`;
    return {
      outcome: {
        text: `${text}\n\n${msg}`,
        exit: EXIT.refused,
        json: { ok: false, code: "plan_needed", error: msg, plan_hash: shown, plan: row.plan },
      },
    };
  }
  io.show(text);
  if (!(await askYesNo(`Approve request #${id}, plan ${shown}?`))) {
    const msg = `Not approved: request #${id} stays ${row.state}`;
    return { outcome: { text: msg, exit: EXIT.refused, json: { ok: false, code: "declined", error: msg } } };
  }
  let typed = flags.confirm;
  if (typed === undefined && row.policy.typed_confirmation) {
    typed = await askLine(`Type ${confirmTextOf(row)} to confirm: `);
  }
  return { options: { planHash: shown, ...(typed !== undefined ? { typed } : {}) } };
}

/** A line describing request `id`'s state and progress while its approval runs, read with the CLI's role. */
export async function requestProgress(sql: Sql, id: number): Promise<string | undefined> {
  const [r] = await sql<{ state: string; progress: string | null }[]>`
    select state, progress from bisman_ops.requests where id = ${id}`;
  return r ? `request #${id} ${r.state}${r.progress ? `: ${r.progress}` : ""}` : undefined;
}
