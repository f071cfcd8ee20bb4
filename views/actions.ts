/**
 * Every Slack `action_id`, `callback_id` and input `block_id` the bot uses, and the typed encoding of the
 * values they carry. No such literal appears anywhere else: renderers and handlers import them from here.
 *
 * Values come back from Slack inside signed requests, but they are still parsed with zod: a malformed or
 * overlong value is refused, never guessed at.
 *
 * @module
 */

import { z } from "zod";

/** Button action IDs. */
export const ACTIONS = {
  approve: "bisman.request.approve",
  deny: "bisman.request.deny",
  cancel: "bisman.request.cancel",
  /** Keep or drop the offered "take a backup first" step (the value's `b` is the wanted state). */
  backupFirst: "bisman.request.backup_first",
} as const;
export type ActionId = typeof ACTIONS[keyof typeof ACTIONS];

/** Modal callback IDs. */
export const VIEWS = {
  denyReason: "bisman.request.deny_reason",
  typedConfirmation: "bisman.request.typed_confirmation",
} as const;

/** Input block and element IDs inside the modals. */
export const INPUTS = {
  reason: { block: "reason", action: "reason_input" },
  typed: { block: "typed", action: "typed_input" },
} as const;

/** Block ID of the buttons row of request `id`'s message. */
export function actionsBlockId(id: number): string {
  return `bisman.request.${id}.actions`;
}

const requestButtonSchema = z.strictObject({
  v: z.literal(1),
  request: z.number().int().positive(),
  plan: z.string().regex(/^[0-9a-f]{12}$/),
  b: z.boolean().optional(),
});

/**
 * What an Approve / Deny / Cancel button carries: the request and the plan hash the clicker saw, and, where
 * the plan offers "take a backup first", whether the step was kept as they saw it (on the keep/drop button:
 * the state it asks for).
 */
export type RequestButton = { request: number; plan: string; backup?: boolean };

/**
 * Encodes a request button's value.
 * @example
 * encodeRequestButton({ request: 12, plan: "0123456789ab" }); // '{"v":1,"request":12,"plan":"0123456789ab"}'
 */
export function encodeRequestButton(b: RequestButton): string {
  return JSON.stringify({
    v: 1,
    request: b.request,
    plan: b.plan,
    ...(b.backup === undefined ? {} : { b: b.backup }),
  });
}

/** Parses a request button's value; undefined when it is not one of ours. */
export function parseRequestButton(value: unknown): RequestButton | undefined {
  if (typeof value !== "string" || value.length > 200) return undefined;
  try {
    const r = requestButtonSchema.safeParse(JSON.parse(value));
    return r.success
      ? {
        request: r.data.request,
        plan: r.data.plan,
        ...(r.data.b === undefined ? {} : { backup: r.data.b }),
      }
      : undefined;
  } catch {
    return undefined;
  }
}

const modalMetadataSchema = z.strictObject({
  v: z.literal(1),
  request: z.number().int().positive(),
  plan: z.string().regex(/^[0-9a-f]{12}$/),
  channel: z.string().regex(/^[CGD][A-Z0-9]{2,}$/),
  thread: z.string().regex(/^\d+\.\d+$/).optional(),
  expected: z.string().max(200).optional(),
});

/** What a deny or typed-confirmation modal remembers in `private_metadata`. */
export type ModalMetadata = Omit<z.infer<typeof modalMetadataSchema>, "v">;

/** Encodes a modal's `private_metadata` (Slack allows 3,000 characters; ours is far smaller). */
export function encodeModalMetadata(m: ModalMetadata): string {
  return JSON.stringify({ v: 1, ...m });
}

/** Parses a modal's `private_metadata`; undefined when it is not one of ours. */
export function parseModalMetadata(value: unknown): ModalMetadata | undefined {
  if (typeof value !== "string" || value.length > 3000) return undefined;
  try {
    const r = modalMetadataSchema.safeParse(JSON.parse(value));
    if (!r.success) return undefined;
    const { v: _v, ...rest } = r.data;
    return rest;
  } catch {
    return undefined;
  }
}

// --- alert threads (alerts/buttons.ts): one action per remediation button of the seed's incident runbook ---

/** Action IDs of the buttons on alert messages, by button key (core/config.ts `alertButtonKeys`). */
export const ALERT_ACTIONS = {
  status: "bisman.alert.status",
  show_lag: "bisman.alert.show_lag",
  promote_replica: "bisman.alert.promote_replica",
  show_connections: "bisman.alert.show_connections",
  terminate_idle: "bisman.alert.terminate_idle",
  top_slow_queries: "bisman.alert.top_slow_queries",
  reset_statements: "bisman.alert.reset_statements",
  show_audit: "bisman.alert.show_audit",
  rotate_all: "bisman.alert.rotate_all",
  terminate_client: "bisman.alert.terminate_client",
} as const;

/** Matches every alert button's action ID (one Bolt listener serves them all). */
export const ALERT_ACTION_PATTERN = /^bisman\.alert\.[a-z_]+$/;

/** The button key of an alert action ID, or undefined when it is not one. */
export function alertButtonOf(actionId: string): keyof typeof ALERT_ACTIONS | undefined {
  const hit = Object.entries(ALERT_ACTIONS).find(([, id]) => id === actionId);
  return hit?.[0] as keyof typeof ALERT_ACTIONS | undefined;
}

const alertButtonSchema = z.union([
  z.strictObject({ v: z.literal(1), f: z.string().regex(/^[0-9a-f]{1,64}$/) }),
  z.strictObject({ v: z.literal(1), s: z.number().int().positive() }),
]);

/** What an alert button points at: one alert (its fingerprint) or a storm group's parent message. */
export type AlertButtonRef = { fingerprint: string } | { storm: number };

/**
 * Encodes an alert button's value.
 * @example
 * encodeAlertButton({ fingerprint: "304ffdb0e058c0a1" }); // '{"v":1,"f":"304ffdb0e058c0a1"}'
 */
export function encodeAlertButton(ref: AlertButtonRef): string {
  return JSON.stringify("fingerprint" in ref ? { v: 1, f: ref.fingerprint } : { v: 1, s: ref.storm });
}

/** Parses an alert button's value; undefined when it is not one of ours. */
export function parseAlertButton(value: unknown): AlertButtonRef | undefined {
  if (typeof value !== "string" || value.length > 200) return undefined;
  try {
    const r = alertButtonSchema.safeParse(JSON.parse(value));
    if (!r.success) return undefined;
    return "f" in r.data ? { fingerprint: r.data.f } : { storm: r.data.s };
  } catch {
    return undefined;
  }
}

// --- scheduled jobs and the checklist (jobs/, issue 8) ---

/** Action IDs of the jobs' and the checklist's buttons. */
export const JOB_ACTIONS = {
  /** Acknowledge a review run (the weekly slow-query review, audit-anomaly findings). */
  ack: "bisman.job.ack",
  /**
   * Attest a checklist item the database cannot show (WAF rules, encryption at rest). Several sit in one
   * actions block, and Slack refuses a repeated action_id in a block: each button's id is this plus its index
   * ({@link checklistButtonId}); the value says what it does.
   */
  attest: "bisman.checklist.attest",
  /** Perform an incident-response runbook entry from the checklist (the alert runbook's buttons); indexed too. */
  runbook: "bisman.checklist.runbook",
} as const;

/**
 * The action_id of the `i`-th attest or runbook button of a checklist item: unique within its actions block,
 * as Slack requires ("unique among all other action_ids in the containing block").
 * @example
 * checklistButtonId(JOB_ACTIONS.attest, 2); // "bisman.checklist.attest.2"
 */
export function checklistButtonId(
  base: typeof JOB_ACTIONS.attest | typeof JOB_ACTIONS.runbook,
  i: number,
): string {
  return `${base}.${i}`;
}

/** Matches every attest button (indexed, and the plain id of messages posted before the index). */
export const CHECKLIST_ATTEST_PATTERN = /^bisman\.checklist\.attest(\.\d{1,2})?$/;
/** Matches every checklist runbook button (indexed, and the plain id). */
export const CHECKLIST_RUNBOOK_PATTERN = /^bisman\.checklist\.runbook(\.\d{1,2})?$/;

const ackButtonSchema = z.strictObject({ v: z.literal(1), run: z.number().int().positive() });

/**
 * Encodes an Acknowledge button's value: the job run it acknowledges.
 * @example
 * encodeAckButton(42); // '{"v":1,"run":42}'
 */
export function encodeAckButton(run: number): string {
  return JSON.stringify({ v: 1, run });
}

/** Parses an Acknowledge button's value; undefined when it is not one of ours. */
export function parseAckButton(value: unknown): number | undefined {
  if (typeof value !== "string" || value.length > 100) return undefined;
  try {
    const r = ackButtonSchema.safeParse(JSON.parse(value));
    return r.success ? r.data.run : undefined;
  } catch {
    return undefined;
  }
}

const checklistTarget = z.string().regex(/^[a-z_][a-z0-9_]{0,62}$/);
const attestButtonSchema = z.strictObject({
  v: z.literal(1),
  t: checklistTarget,
  i: z.enum(["waf_rules", "encryption_at_rest", "network_policies"]),
  m: z.string().regex(/^[A-Za-z0-9 ._-]{1,40}$/),
});

/** What an attestation button carries: the target, the checklist item and the mechanism attested. */
export type AttestButton = {
  target: string;
  item: "waf_rules" | "encryption_at_rest" | "network_policies";
  mechanism: string;
};

/** Encodes an attestation button's value. */
export function encodeAttestButton(b: AttestButton): string {
  return JSON.stringify({ v: 1, t: b.target, i: b.item, m: b.mechanism });
}

/** Parses an attestation button's value; undefined when it is not one of ours. */
export function parseAttestButton(value: unknown): AttestButton | undefined {
  if (typeof value !== "string" || value.length > 300) return undefined;
  try {
    const r = attestButtonSchema.safeParse(JSON.parse(value));
    return r.success ? { target: r.data.t, item: r.data.i, mechanism: r.data.m } : undefined;
  } catch {
    return undefined;
  }
}

const runbookButtonSchema = z.strictObject({
  v: z.literal(1),
  t: checklistTarget,
  k: z.string().regex(/^[a-z_]{1,40}$/),
});

/** What a checklist runbook button carries: the target and the alert-runbook button key it performs. */
export type RunbookButton = { target: string; key: string };

/** Encodes a checklist runbook button's value. */
export function encodeRunbookButton(b: RunbookButton): string {
  return JSON.stringify({ v: 1, t: b.target, k: b.key });
}

/** Parses a checklist runbook button's value; undefined when it is not one of ours. */
export function parseRunbookButton(value: unknown): RunbookButton | undefined {
  if (typeof value !== "string" || value.length > 200) return undefined;
  try {
    const r = runbookButtonSchema.safeParse(JSON.parse(value));
    return r.success ? { target: r.data.t, key: r.data.k } : undefined;
  } catch {
    return undefined;
  }
}

// --- alert threads: ownership and silences (alerts/ownership.ts, issue 11) ---

/** Action IDs of the "I'm on it" and silence buttons on an alert's parent message. */
export const THREAD_ACTIONS = {
  take: "bisman.thread.take",
  /**
   * The silence buttons share one actions block, and Slack refuses a repeated action_id in a block
   * (invalid_blocks): each length has its own id, {@link silenceActionId}. This plain id is what parents
   * posted before that carry; a click on one is still understood (its value names the hours).
   */
  silence: "bisman.thread.silence",
  unsilence: "bisman.thread.unsilence",
} as const;

/** Matches every thread button's action ID (one Bolt listener serves them all). */
export const THREAD_ACTION_PATTERN = /^bisman\.thread\.[a-z]+(\.\d{1,2}h)?$/;

/** The silence lengths offered, in hours. */
export const SILENCE_HOURS = [1, 4, 24] as const;
export type SilenceHours = typeof SILENCE_HOURS[number];

/**
 * The action_id of the "Silence `hours` h" button.
 * @example
 * silenceActionId(4); // "bisman.thread.silence.4h"
 */
export function silenceActionId(hours: SilenceHours): string {
  return `${THREAD_ACTIONS.silence}.${hours}h`;
}

/**
 * Whether an action_id is a silence button, and for how long: `{hours}` for `bisman.thread.silence.<n>h`,
 * `{hours: undefined}` for the plain id of older messages (the hours are in its value), undefined otherwise.
 */
export function parseSilenceAction(actionId: string): { hours?: SilenceHours } | undefined {
  if (actionId === THREAD_ACTIONS.silence) return {};
  const m = /^bisman\.thread\.silence\.(\d{1,2})h$/.exec(actionId);
  if (!m) return undefined;
  const hours = Number(m[1]);
  return (SILENCE_HOURS as readonly number[]).includes(hours) ? { hours: hours as SilenceHours } : undefined;
}

const threadButtonSchema = z.strictObject({
  v: z.literal(1),
  f: z.string().regex(/^[0-9a-f]{1,64}$/),
  h: z.union([z.literal(1), z.literal(4), z.literal(24)]).optional(),
});

/** What a thread button carries: the alert's fingerprint and, on a silence button, its length in hours. */
export type ThreadButton = { fingerprint: string; hours?: 1 | 4 | 24 };

/**
 * Encodes a thread button's value.
 * @example
 * encodeThreadButton({ fingerprint: "304ffdb0e058c0a1", hours: 4 }); // '{"v":1,"f":"304ffdb0e058c0a1","h":4}'
 */
export function encodeThreadButton(b: ThreadButton): string {
  return JSON.stringify({ v: 1, f: b.fingerprint, ...(b.hours ? { h: b.hours } : {}) });
}

/** Parses a thread button's value; undefined when it is not one of ours. */
export function parseThreadButton(value: unknown): ThreadButton | undefined {
  if (typeof value !== "string" || value.length > 200) return undefined;
  try {
    const r = threadButtonSchema.safeParse(JSON.parse(value));
    return r.success ? { fingerprint: r.data.f, ...(r.data.h ? { hours: r.data.h } : {}) } : undefined;
  } catch {
    return undefined;
  }
}

// --- query results shared to the channel (slack/share.ts, issue 11) ---

/** Action ID of the "Post to channel" button on an ephemeral query result. */
export const SHARE_ACTION = "bisman.reply.share";

const shareButtonSchema = z.strictObject({ v: z.literal(1), s: z.number().int().positive() });

/** Encodes a "Post to channel" button's value: the stored reply's id. */
export function encodeShareButton(id: number): string {
  return JSON.stringify({ v: 1, s: id });
}

/** Parses a "Post to channel" button's value; undefined when it is not one of ours. */
export function parseShareButton(value: unknown): number | undefined {
  if (typeof value !== "string" || value.length > 100) return undefined;
  try {
    const r = shareButtonSchema.safeParse(JSON.parse(value));
    return r.success ? r.data.s : undefined;
  } catch {
    return undefined;
  }
}
