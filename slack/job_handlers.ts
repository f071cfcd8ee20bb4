/**
 * Bolt listeners of the jobs' and the checklist's buttons: Acknowledge (a review run), Attest (a checklist
 * item the database cannot show) and the checklist's incident-response runbook buttons. Each acknowledges at
 * once and answers the clicker only; changes of state are operators' and go to the audit log, and runbook
 * actions that change state go through the approval gate, exactly as the alert threads' buttons do.
 *
 * @module
 */

import type { BoltRegistration } from "./bolt_app.ts";
import {
  CHECKLIST_ATTEST_PATTERN,
  CHECKLIST_RUNBOOK_PATTERN,
  JOB_ACTIONS,
  parseAckButton,
  parseAttestButton,
  parseRunbookButton,
} from "../views/actions.ts";
import { type InteractionBody, invokerOfInteraction } from "./interaction.ts";
import { actorOf, checkWorkspace, type Invoker, requireOperator } from "../core/access.ts";
import { InvalidInput, OpsError } from "../core/errors.ts";
import { type AlertButtonKey, alertButtonKeys } from "../core/config.ts";
import { ackRun, readRun } from "../jobs/run_store.ts";
import { recordAttestation } from "../jobs/checklist.ts";
import { resolveButton } from "../alerts/buttons.ts";
import { prepareCommand, runPrepared, toUserError } from "../commands/router.ts";
import { renderError } from "../views/error.ts";
import { renderRequestCreated } from "../views/approval.ts";
import { own } from "../core/lookup.ts";

interface ButtonBody extends InteractionBody {
  actions?: { action_id?: string; value?: string }[];
  container?: { channel_id?: string; message_ts?: string; thread_ts?: string };
}

// deno-lint-ignore no-explicit-any
type Client = any;

/** Registers the listeners on the Bolt app. */
export function jobActionHandlers(): BoltRegistration {
  return (app, deps) => {
    /** Who clicked where, and a way to answer only them. */
    const clicked = (body: ButtonBody, client: Client) => {
      const channel = body.channel?.id ?? body.container?.channel_id ?? deps.config.slack.ops_channel;
      const inv: Invoker = invokerOfInteraction(body, channel);
      const thread = body.container?.thread_ts;
      const tell = async (text: string, blocks?: unknown[]) => {
        await client.chat.postEphemeral({
          channel,
          user: inv.userId,
          text,
          ...(blocks ? { blocks } : {}),
          ...(thread ? { thread_ts: thread } : {}),
        }).catch((err: unknown) => deps.log.warn("could not answer a job button", { error: err }));
      };
      return { inv, tell, value: body.actions?.[0]?.value, channel };
    };

    app.action(JOB_ACTIONS.ack, async ({ ack, body, client }) => {
      await ack();
      const { inv, tell, value } = clicked(body as ButtonBody, client);
      try {
        checkWorkspace(deps.config, inv);
        const run = parseAckButton(value);
        if (!run) throw new InvalidInput("This button is not one of bisman-ops' acknowledge buttons");
        await requireOperator(deps.config, inv, deps.groupMembers, "Acknowledging a review");
        const rec = await readRun(deps.state, run);
        if (!rec) throw new InvalidInput(`Job run ${run} is no longer kept`);
        if (!await ackRun(deps.state, run, inv)) {
          throw new OpsError(
            "conflict",
            rec.ackedAt
              ? `Run ${run} was already acknowledged by ${rec.ackedBy}`
              : `Run ${run} cannot be acknowledged`,
          );
        }
        await deps.audit.append({
          actor: actorOf(inv),
          actorName: inv.userName,
          action: "job.acknowledged",
          outcome: "ok",
          details: { job: rec.job, run, slot: rec.slot.toISOString() },
        });
        await tell(`:white_check_mark: Run ${run} of ${rec.job} acknowledged`);
      } catch (err) {
        await tell(renderError(toUserError(err, deps)).text);
      }
    });

    app.action(CHECKLIST_ATTEST_PATTERN, async ({ ack, body, client }) => {
      await ack();
      const { inv, tell, value } = clicked(body as ButtonBody, client);
      try {
        checkWorkspace(deps.config, inv);
        const a = parseAttestButton(value);
        if (!a || !own(deps.config.targets, a.target)) {
          throw new InvalidInput("This button is not one of bisman-ops' attestation buttons");
        }
        await requireOperator(deps.config, inv, deps.groupMembers, "Attesting a checklist item");
        await recordAttestation(deps, { ...a, by: inv.userId, byName: inv.userName });
        await deps.audit.append({
          actor: actorOf(inv),
          actorName: inv.userName,
          action: "checklist.attested",
          target: a.target,
          outcome: "ok",
          details: { item: a.item, mechanism: a.mechanism },
        });
        await tell(
          `:memo: Recorded: ${
            a.item.replaceAll("_", " ")
          } on ${a.target} (${a.mechanism}), attested by <@${inv.userId}>`,
        );
      } catch (err) {
        await tell(renderError(toUserError(err, deps)).text);
      }
    });

    app.action(CHECKLIST_RUNBOOK_PATTERN, async ({ ack, body, client }) => {
      await ack();
      const { inv, tell, channel } = clicked(body as ButtonBody, client);
      try {
        checkWorkspace(deps.config, inv);
        const r = parseRunbookButton((body as ButtonBody).actions?.[0]?.value);
        const key = alertButtonKeys.find((k) => k === r?.key) as AlertButtonKey | undefined;
        if (!r || !key || !own(deps.config.targets, r.target)) {
          throw new InvalidInput("This button is not one of bisman-ops' runbook buttons");
        }
        // The alert runbook decides what the button does, so the checklist and the alert threads agree.
        const what = resolveButton(deps.config, key, [{
          alertname: "checklist",
          labels: { target: r.target },
        }]);
        await deps.audit.append({
          actor: actorOf(inv),
          actorName: inv.userName,
          action: "checklist.runbook_clicked",
          target: r.target,
          outcome: what.kind === "unavailable" ? "refused" : "ok",
          details: { button: key },
        });
        if (what.kind === "unavailable") return await tell(`:construction: ${what.message}`);
        if (what.kind === "read") {
          const reply = await runPrepared(
            prepareCommand(what.text, { ...inv, channelId: channel }, deps),
            inv,
            deps,
          );
          return await tell(reply.text, reply.blocks);
        }
        if (!deps.gate) return await tell(":construction: The approval gate is not running in this process");
        const reply = renderRequestCreated(
          await deps.gate.request({ action: what.action, args: what.args, invoker: inv }),
        );
        await tell(reply.text, reply.blocks);
      } catch (err) {
        await tell(renderError(toUserError(err, deps)).text);
      }
    });
  };
}
