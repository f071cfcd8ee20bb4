/**
 * What the live checklist holds (jobs/checklist.ts evaluates it, views/checklist.ts draws it): the seed's
 * section 9 items, each with a status and the evidence behind it.
 *
 * @module
 */

import type { AlertButtonKey } from "../core/config.ts";

/**
 * How an item stands: pass / warning / fail judge something that was looked at; `not_configured` (nothing is
 * configured to look at), `unknown` (could not check) and `attestation_needed` (only a person can tell) say
 * why nothing was judged. `runbook` items are the incident runbook, not checks. Never pass for something not
 * looked at.
 */
export type ItemStatus =
  | "pass"
  | "fail"
  | "warning"
  | "not_configured"
  | "unknown"
  | "attestation_needed"
  | "runbook";

/** The three lists of the seed's section 9. */
export type ItemGroup = "pre_production" | "ongoing" | "incident_response";

/** What an operator may attest for an item the database cannot show. */
export interface Attestable {
  item: AttestationItem;
  /** The mechanisms to choose from (one button each). */
  mechanisms: string[];
}

/** Items settled by an operator's attestation. */
export const ATTESTATION_ITEMS = ["waf_rules", "encryption_at_rest", "network_policies"] as const;
export type AttestationItem = typeof ATTESTATION_ITEMS[number];

/** One checklist item. */
export interface ChecklistItem {
  group: ItemGroup;
  key: string;
  /** The seed's wording. */
  title: string;
  status: ItemStatus;
  /** What was found: figures, offending rules, who attested and when. */
  evidence: string[];
  /** The command that shows more. */
  command?: string;
  attest?: Attestable;
  /** Incident response: the alert-runbook buttons that perform it. */
  buttons?: AlertButtonKey[];
}

/** The evaluated checklist of one target. */
export interface Checklist {
  target: string;
  checkedAt: Date;
  items: ChecklistItem[];
}
