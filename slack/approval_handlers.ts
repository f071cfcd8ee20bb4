/**
 * Bolt listeners for the approval message's buttons and modals. Each acknowledges at once and works
 * after; refusals go to the clicker only (chat.postEphemeral), and every decision is the gate's.
 *
 * @module
 */

import type { ApprovalGate, Decision, RequestView } from "../gate/gate.ts";
import type { AppDeps } from "../core/deps.ts";
import { asOpsError } from "../core/errors.ts";
import type { BoltRegistration } from "./bolt_app.ts";
import {
  ACTIONS,
  INPUTS,
  type ModalMetadata,
  parseModalMetadata,
  parseRequestButton,
  VIEWS,
} from "../views/actions.ts";
import { type InteractionBody, invokerOfInteraction } from "./interaction.ts";
import {
  approvalPlanTexts,
  blockTexts,
  renderDenyModal,
  renderTypedConfirmationModal,
} from "../views/approval.ts";

/** A block_actions payload as far as these listeners read it. */
interface ButtonBody extends InteractionBody {
  trigger_id?: string;
  actions?: { action_id?: string; value?: string }[];
  container?: { channel_id?: string; message_ts?: string; thread_ts?: string };
  /** The clicked message as Slack shows it (messages in channels; not ephemeral ones). */
  message?: { ts?: string; blocks?: unknown };
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
          // "State database unavailable" when that is what failed; else "Internal error (reference ...)".
          `:x: ${asOpsError(err, ref).userMessage}`,
        );
      }
    };

    /** A button listener: acknowledged at once, then `fn` runs only for a request button we understand. */
    const onButton = (
      id: string,
      what: string,
      fn: (b: {
        body: ButtonBody;
        client: Client;
        where: { channel?: string; thread?: string };
        inv: ReturnType<typeof invokerOfInteraction>;
        value: NonNullable<ReturnType<typeof parseRequestButton>>;
      }) => Promise<void>,
    ) => {
      app.action(
        id,
        guarded(what, async ({ ack, body, client }) => {
          await ack();
          const { where, inv, value } = await button(body, client);
          if (!value) return;
          await fn({ body, client, where, inv, value });
        }),
      );
    };

    /** What a modal carries back to its submission: the request, its plan and where to answer. */
    const modalMeta = (
      value: { request: ModalMetadata["request"]; plan: ModalMetadata["plan"] },
      where: { channel: string; thread?: string },
      expected?: string,
    ): ModalMetadata => ({
      request: value.request,
      plan: value.plan,
      channel: where.channel,
      ...(where.thread ? { thread: where.thread } : {}),
      ...(expected !== undefined ? { expected } : {}),
    });

    /**
     * A modal submission: a payload that is not ours is refused and audited; `problem` may keep the modal
     * open with an error under the input; otherwise the gate's `decide` is answered to the submitter.
     */
    const onSubmit = (
      id: string,
      what: string,
      input: { block: string; action: string },
      problem: (text: string, meta: ModalMetadata) => string | undefined,
      decide: (
        meta: ModalMetadata,
        inv: ReturnType<typeof invokerOfInteraction>,
        text: string,
      ) => Promise<Decision>,
    ) => {
      app.view(
        id,
        guarded(what, async ({ ack, body, client }) => {
          const b = body as ViewBody;
          const meta = parseModalMetadata(b.view?.private_metadata);
          const text = b.view?.state?.values?.[input.block]?.[input.action]?.value ?? "";
          if (!meta) {
            await ack();
            await refuseMalformed(deps, b.user?.id ?? "", id);
            return;
          }
          const error = problem(text, meta);
          if (error !== undefined) {
            await ack({ response_action: "errors", errors: { [input.block]: error } });
            return;
          }
          await ack();
          const inv = invokerOfInteraction(b, meta.channel);
          const where = { channel: meta.channel, thread: meta.thread };
          await answer(client, where, inv.userId, await decide(meta, inv, text));
        }),
      );
    };

    onButton(ACTIONS.approve, "approve", async ({ body, client, where, inv, value }) => {
      const d = await gate.approve(value.request, inv, {
        planHash: value.plan,
        backupFirst: value.backup,
        notAsShown: (view) => notAsDrawn(deps, body, view),
      });
      if (d.status === "confirm") {
        const view = await gate.view(value.request);
        if (!view || !where.channel) return;
        const meta = modalMeta(value, { channel: where.channel, thread: where.thread }, d.expected);
        await client.views.open({
          trigger_id: body.trigger_id,
          view: renderTypedConfirmationModal(meta, view),
        });
        return;
      }
      await answer(client, where, inv.userId, d);
    });

    onButton(ACTIONS.deny, "deny", async ({ body, client, where, inv, value }) => {
      const d = await gate.checkDecider(value.request, inv, "deny");
      if (d.status === "refused") return await answer(client, where, inv.userId, d);
      const view = await gate.view(value.request);
      if (!view || !where.channel) return;
      const meta = modalMeta(value, { channel: where.channel, thread: where.thread });
      await client.views.open({ trigger_id: body.trigger_id, view: renderDenyModal(meta, view) });
    });

    onButton(ACTIONS.cancel, "cancel", async ({ client, where, inv, value }) => {
      await answer(client, where, inv.userId, await gate.cancel(value.request, inv));
    });

    onButton(ACTIONS.backupFirst, "backup first", async ({ client, where, inv, value }) => {
      if (value.backup === undefined) {
        return await tell(client, where, inv.userId, ":no_entry: This button says neither keep nor drop");
      }
      await answer(client, where, inv.userId, await gate.setBackupFirst(value.request, inv, value.backup));
    });

    onSubmit(
      VIEWS.denyReason,
      "deny reason",
      INPUTS.reason,
      (reason) => reason.trim().length < 3 ? "Say why, in at least 3 characters" : undefined,
      (meta, inv, reason) => gate.deny(meta.request, inv, reason),
    );

    onSubmit(
      VIEWS.typedConfirmation,
      "typed confirmation",
      INPUTS.typed,
      // Checked here too, so a typo is answered inside the modal; the gate checks again against the row.
      (typed, meta) =>
        meta.expected !== undefined && typed.trim() !== meta.expected
          ? `Type ${meta.expected} exactly to approve`
          : undefined,
      (meta, inv, typed) => gate.approve(meta.request, inv, { typed, planHash: meta.plan }),
    );
  };
}

/**
 * Whether an Approve click was made on something other than the bot's own drawing of the request: Slack
 * signs clicks, but the bot's token edits and posts the bot's messages, so a holder of that token could show
 * the approver another plan around the genuine button, or copy the button elsewhere. The click must come from
 * the request's own message, and that message (as the click's payload shows it) must hold every text that
 * says what would run. The gate calls this after its own checks (a closed or altered request is its to refuse).
 * @returns what differs, in words, or undefined
 */
function notAsDrawn(deps: AppDeps, body: ButtonBody, view: RequestView): string | undefined {
  if (view.request.state !== "pending" || view.tampered) return undefined;
  const r = view.request;
  const channel = body.channel?.id ?? body.container?.channel_id;
  const ts = body.container?.message_ts ?? body.message?.ts;
  if (!r.message_ts || r.message_ts !== ts || (r.channel && r.channel !== channel)) {
    return "the click came from another message than the request's own";
  }
  if (body.message?.blocks === undefined) return undefined;
  // Compared loosely on entities and white space: Slack may hand text back with `&` as `&amp;` or lines
  // trimmed; the words that say what runs must all be there.
  const norm = (t: string) =>
    t.replaceAll("&amp;", "&").replaceAll("&lt;", "<").replaceAll("&gt;", ">").replace(/\s+/g, " ").trim();
  const shown = new Set(blockTexts(body.message.blocks).map(norm));
  const missing = approvalPlanTexts(view).map((t) => norm(deps.secrets.scrub(t))).filter((t) =>
    !shown.has(t)
  );
  return missing.length ? `${missing.length} line(s) of its plan are not on it` : undefined;
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
