/**
 * Bolt listeners for the approval message's buttons and modals. Each acknowledges at once and works
 * after; refusals go to the clicker only (chat.postEphemeral), and every decision is the gate's.
 *
 * @module
 */

import type { ApprovalGate, Decision } from "../core/approval.ts";
import type { AppDeps } from "../core/deps.ts";
import { asOpsError } from "../core/errors.ts";
import type { BoltRegistration } from "./bolt_app.ts";
import {
  ACTIONS,
  INPUTS,
  type InteractionBody,
  invokerOfInteraction,
  type ModalMetadata,
  parseModalMetadata,
  parseRequestButton,
  VIEWS,
} from "./actions.ts";
import { renderDenyModal, renderTypedConfirmationModal } from "./render/approval.ts";

/** A block_actions payload as far as these listeners read it. */
interface ButtonBody extends InteractionBody {
  trigger_id?: string;
  actions?: { action_id?: string; value?: string }[];
  container?: { channel_id?: string; message_ts?: string; thread_ts?: string };
}

/** A view_submission payload as far as these listeners read it. */
interface ViewBody extends InteractionBody {
  view?: {
    private_metadata?: string;
    state?: { values?: Record<string, Record<string, { value?: string | null }>> };
  };
}

// deno-lint-ignore no-explicit-any
type Client = any;

/** Registers the approval listeners on the Bolt app. */
export function approvalHandlers(gate: ApprovalGate): BoltRegistration {
  return (app, deps) => {
    const tell = async (
      client: Client,
      where: { channel?: string; thread?: string },
      user: string,
      text: string,
    ) => {
      if (!where.channel || !user) return;
      await client.chat.postEphemeral({
        channel: where.channel,
        user,
        text,
        ...(where.thread ? { thread_ts: where.thread } : {}),
      }).catch((err: unknown) => deps.log.warn("could not post an ephemeral answer", { error: err }));
    };
    const answer = async (
      client: Client,
      where: { channel?: string; thread?: string },
      user: string,
      d: Decision,
    ) => {
      if (d.status === "refused") await tell(client, where, user, `:no_entry: ${d.message}`);
    };

    /** Common preamble of a button: who, where, which request. */
    const button = async (body: ButtonBody, client: Client) => {
      const where = {
        channel: body.channel?.id ?? body.container?.channel_id,
        thread: body.container?.thread_ts,
      };
      const inv = invokerOfInteraction(body, where.channel);
      const value = parseRequestButton(body.actions?.[0]?.value);
      if (!value) {
        await refuseMalformed(deps, inv.userId, body.actions?.[0]?.action_id);
        await tell(
          client,
          where,
          inv.userId,
          ":no_entry: This button is not one bisman-ops understands: nothing changed",
        );
      }
      return { where, inv, value };
    };

    const guarded = (what: string, fn: (args: any) => Promise<void>) => async (args: any) => {
      try {
        await fn(args);
      } catch (err) {
        const ref = crypto.randomUUID().slice(0, 8);
        deps.log.error("approval listener failed", { what, reference: ref, error: err });
        const body = args.body as ButtonBody;
        await tell(
          args.client,
          { channel: body.channel?.id ?? body.container?.channel_id },
          body.user?.id ?? "",
          // "State database unavailable" when that is what failed; else "Internal error (reference …)".
          `:x: ${asOpsError(err, ref).userMessage}`,
        );
      }
    };

    app.action(
      ACTIONS.approve,
      guarded("approve", async ({ ack, body, client }) => {
        await ack();
        const { where, inv, value } = await button(body, client);
        if (!value) return;
        const d = await gate.approve(value.request, inv, { planHash: value.plan, backupFirst: value.backup });
        if (d.status === "confirm") {
          const view = await gate.view(value.request);
          if (!view || !where.channel) return;
          const meta: ModalMetadata = {
            request: value.request,
            plan: value.plan,
            channel: where.channel,
            ...(where.thread ? { thread: where.thread } : {}),
            expected: d.expected,
          };
          await client.views.open({
            trigger_id: body.trigger_id,
            view: renderTypedConfirmationModal(meta, view),
          });
          return;
        }
        await answer(client, where, inv.userId, d);
      }),
    );

    app.action(
      ACTIONS.deny,
      guarded("deny", async ({ ack, body, client }) => {
        await ack();
        const { where, inv, value } = await button(body, client);
        if (!value) return;
        const d = await gate.checkDecider(value.request, inv, "deny");
        if (d.status === "refused") return await answer(client, where, inv.userId, d);
        const view = await gate.view(value.request);
        if (!view || !where.channel) return;
        const meta: ModalMetadata = {
          request: value.request,
          plan: value.plan,
          channel: where.channel,
          ...(where.thread ? { thread: where.thread } : {}),
        };
        await client.views.open({ trigger_id: body.trigger_id, view: renderDenyModal(meta, view) });
      }),
    );

    app.action(
      ACTIONS.cancel,
      guarded("cancel", async ({ ack, body, client }) => {
        await ack();
        const { where, inv, value } = await button(body, client);
        if (!value) return;
        await answer(client, where, inv.userId, await gate.cancel(value.request, inv));
      }),
    );

    app.action(
      ACTIONS.backupFirst,
      guarded("backup first", async ({ ack, body, client }) => {
        await ack();
        const { where, inv, value } = await button(body, client);
        if (!value) return;
        if (value.backup === undefined) {
          return await tell(client, where, inv.userId, ":no_entry: This button says neither keep nor drop");
        }
        await answer(client, where, inv.userId, await gate.setBackupFirst(value.request, inv, value.backup));
      }),
    );

    app.view(
      VIEWS.denyReason,
      guarded("deny reason", async ({ ack, body, client }) => {
        const b = body as ViewBody;
        const meta = parseModalMetadata(b.view?.private_metadata);
        const reason = b.view?.state?.values?.[INPUTS.reason.block]?.[INPUTS.reason.action]?.value ?? "";
        if (!meta) {
          await ack();
          await refuseMalformed(deps, b.user?.id ?? "", VIEWS.denyReason);
          return;
        }
        if (reason.trim().length < 3) {
          await ack({
            response_action: "errors",
            errors: { [INPUTS.reason.block]: "Say why, in at least 3 characters" },
          });
          return;
        }
        await ack();
        const inv = invokerOfInteraction(b, meta.channel);
        const where = { channel: meta.channel, thread: meta.thread };
        await answer(client, where, inv.userId, await gate.deny(meta.request, inv, reason));
      }),
    );

    app.view(
      VIEWS.typedConfirmation,
      guarded("typed confirmation", async ({ ack, body, client }) => {
        const b = body as ViewBody;
        const meta = parseModalMetadata(b.view?.private_metadata);
        const typed = b.view?.state?.values?.[INPUTS.typed.block]?.[INPUTS.typed.action]?.value ?? "";
        if (!meta) {
          await ack();
          await refuseMalformed(deps, b.user?.id ?? "", VIEWS.typedConfirmation);
          return;
        }
        // Checked here too, so a typo is answered inside the modal; the gate checks again against the row.
        if (meta.expected !== undefined && typed.trim() !== meta.expected) {
          await ack({
            response_action: "errors",
            errors: { [INPUTS.typed.block]: `Type ${meta.expected} exactly to approve` },
          });
          return;
        }
        await ack();
        const inv = invokerOfInteraction(b, meta.channel);
        const where = { channel: meta.channel, thread: meta.thread };
        await answer(
          client,
          where,
          inv.userId,
          await gate.approve(meta.request, inv, { typed, planHash: meta.plan }),
        );
      }),
    );
  };
}

/** A button or modal payload that is not ours: audited as a refusal, nothing else happens. */
async function refuseMalformed(deps: AppDeps, user: string, what: string | undefined): Promise<void> {
  deps.log.warn("malformed approval interaction", { user, what });
  await deps.audit.append({
    actor: user || "slack",
    action: "approval.refused",
    outcome: "refused",
    details: { code: "invalid_input", reason: "malformed button or modal value", what },
  }).catch((err) => deps.log.error("audit append failed", { error: err }));
}
