/**
 * Lists a target's `security_events` (sql/target/audit.sql): the bot's incident actions, DDL seen by the
 * event trigger, and what the application reports. Newest first; reads go to a replica when configured.
 *
 * @module
 */

import { z } from "zod";
import type { OpDeps, Operation, PlanBase } from "./types.ts";
import { onAuditReader, parseSince, sinceArg, targetName } from "./_security.ts";
import { maskStatementFor, type Redaction, redactionOf, redactRow } from "../core/redact.ts";

/** Arguments: target, since (default 7d), optional event type, limit. */
export const securityEventsArgs = z.strictObject({
  target: targetName,
  since: sinceArg.default("7d"),
  /** Only this event type (e.g. role_locked, ddl). */
  type: z.string().max(63).regex(/^[a-z][a-z0-9_.]{0,62}$/, "an event type such as role_locked").optional(),
  limit: z.number().int().min(1).max(200).default(30),
});
/** Validated arguments. */
export type SecurityEventsArgs = z.infer<typeof securityEventsArgs>;

/** One event as shown. */
export interface SecurityEventView {
  id: number;
  occurredAt: string;
  eventType: string;
  severity: string;
  source: string;
  actor: string | null;
  requestId: number | null;
  targetRole: string | null;
  targetAddress: string | null;
  dbUser: string;
  clientAddr: string | null;
  txid: number | null;
  /** The event's details, redacted: {@link redactDetails}. */
  details: Record<string, unknown>;
}

/**
 * An event's details as the bot may show them: sensitive keys (`redaction.sensitive_columns`) replaced by the
 * mark, verifiers masked in every value, and the statement the DDL event trigger stores (`query`, the
 * client's text: audit.sql only strips `password '...'` with a pattern a doubled quote or an E'' literal gets
 * past) masked like every statement (core/statement_mask.ts).
 */
export function redactDetails(details: Record<string, unknown>, r: Redaction): Record<string, unknown> {
  const out = redactRow(details, r);
  if (typeof out.query === "string") out.query = maskStatementFor(out.query, r);
  return out;
}

/** What the listing found, with counts per type in the window. */
export interface SecurityEventsResult {
  target: string;
  member: string;
  note?: string;
  since: string;
  events: SecurityEventView[];
  /** Events in the window beyond those shown. */
  more: number;
  /** Count per event type in the window. */
  byType: Record<string, number>;
}

/**
 * Reads events newer than `since`.
 * @throws {OpsError} `unreachable`, `not_configured` (security_events missing)
 */
export async function listSecurityEvents(
  input: z.input<typeof securityEventsArgs>,
  deps: OpDeps,
): Promise<SecurityEventsResult> {
  const args = securityEventsArgs.parse(input);
  const since = parseSince(args.since, deps.now());
  const type = args.type ?? null;
  const { value, member, note } = await onAuditReader(deps, args.target, async (sql) => {
    const rows = await sql`
      select id, occurred_at, event_type, severity, source, actor, request_id, target_role,
             host(target_address) || case when masklen(target_address) in (32, 128) then '' else '/' || masklen(target_address) end as target_address,
             db_user, host(client_addr) as client_addr, txid, details
        from public.security_events
       where occurred_at >= ${since} and (${type}::text is null or event_type = ${type})
       order by occurred_at desc, id desc
       limit ${args.limit}`;
    const counts = await sql<{ event_type: string; n: number }[]>`
      select event_type, count(*)::int as n from public.security_events
       where occurred_at >= ${since} and (${type}::text is null or event_type = ${type})
       group by event_type order by event_type`;
    return { rows, counts };
  });
  const redaction = redactionOf(deps.config);
  const byType = Object.fromEntries(value.counts.map((c) => [c.event_type, c.n]));
  const total = value.counts.reduce((a, c) => a + c.n, 0);
  return {
    target: args.target,
    member,
    note,
    since: since.toISOString(),
    byType,
    more: Math.max(0, total - value.rows.length),
    events: value.rows.map((r) => ({
      id: Number(r.id),
      occurredAt: new Date(r.occurred_at).toISOString(),
      eventType: r.event_type,
      severity: r.severity,
      source: r.source,
      actor: r.actor,
      requestId: r.request_id === null ? null : Number(r.request_id),
      targetRole: r.target_role,
      targetAddress: r.target_address,
      dbUser: r.db_user,
      clientAddr: r.client_addr,
      txid: r.txid === null ? null : Number(r.txid),
      details: redactDetails(r.details ?? {}, redaction),
    })),
  };
}

/** The read-only operation. */
export const securityEvents: Operation<
  SecurityEventsArgs,
  PlanBase & { args: SecurityEventsArgs },
  SecurityEventsResult
> = {
  name: "security_events",
  destructive: false,
  args: securityEventsArgs,
  plan: (args) =>
    Promise.resolve({
      summary: `List security_events on ${args.target} since ${args.since}`,
      target: args.target,
      steps: ["Read security_events, newest first"],
      fingerprint: {},
      args,
    }),
  run: (plan, deps) => listSecurityEvents(plan.args, deps),
  describeResult: (r) => `${r.events.length} events${r.more ? `, ${r.more} more` : ""}`,
};
