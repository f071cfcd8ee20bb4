/**
 * The seed's incident runbook as buttons: every button an alert thread (or a failing checklist item) can
 * offer, what it runs, and which alert names get which. Pure data and config lookups: the alert threads
 * dispatch clicks by it (alerts/buttons.ts), the views draw it.
 *
 * @module
 */

import type { AlertButtonKey, Config } from "./config.ts";
import { own } from "./lookup.ts";

/** What a button does: run a read-only subcommand, or ask the gate for a destructive operation. */
export interface ButtonDefinition {
  label: string;
  kind: "read" | "gated";
  /** The subcommand a read-only button runs. */
  subcommand?: string;
  /** The operation a gated button requests. */
  action?: string;
}

/** Every button the alert threads know. */
export const BUTTONS: Record<AlertButtonKey, ButtonDefinition> = {
  status: { label: "Status", kind: "read", subcommand: "status" },
  show_lag: { label: "Show lag", kind: "read", subcommand: "lag" },
  promote_replica: { label: "Promote replica", kind: "gated", action: "promote_replica" },
  show_connections: { label: "Show connections", kind: "read", subcommand: "connections" },
  terminate_idle: {
    label: "Terminate idle-in-transaction sessions",
    kind: "gated",
    action: "terminate_idle",
  },
  top_slow_queries: { label: "Top slow queries", kind: "read", subcommand: "slow-queries" },
  reset_statements: { label: "Reset pg_stat_statements", kind: "gated", action: "reset_statements" },
  show_audit: { label: "Show audit trail", kind: "read", subcommand: "audit" },
  rotate_all: { label: "Rotate all credentials", kind: "gated", action: "rotate" },
  terminate_client: {
    label: "Terminate sessions from this client address",
    kind: "gated",
    action: "terminate_client",
  },
};

/** The seed's incident runbook: alert name -> its diagnostics and remediation. */
export const RUNBOOK_BUTTONS: Readonly<Record<string, readonly AlertButtonKey[]>> = {
  HighReplicationLag: ["show_lag", "promote_replica"],
  ReplicationFailure: ["show_lag", "promote_replica"],
  TooManyConnections: ["show_connections", "terminate_idle"],
  SlowQueries: ["top_slow_queries", "reset_statements"],
  UnexpectedDbUser: ["show_audit", "rotate_all", "terminate_client"],
  SuspiciousQueries: ["show_audit", "rotate_all", "terminate_client"],
};

/** The generic diagnostics of an alert name nobody mapped. */
export const GENERIC_BUTTONS: readonly AlertButtonKey[] = [
  "status",
  "show_lag",
  "show_connections",
  "top_slow_queries",
];

/** The buttons of `alertname`: `alerts.buttons.<name>`, then the runbook, then `alerts.buttons.default`, then generic. */
export function buttonsFor(config: Config, alertname: string): readonly AlertButtonKey[] {
  const configured = own(config.alerts.buttons, alertname);
  const runbook = own(RUNBOOK_BUTTONS, alertname);
  return configured ?? runbook ?? own(config.alerts.buttons, "default") ?? GENERIC_BUTTONS;
}

/** The label shown on a button (the terminate button names its age limit). */
export function buttonLabel(config: Config, key: AlertButtonKey): string {
  if (key === "terminate_idle") {
    return `Terminate idle-in-transaction sessions > ${config.thresholds.idle_in_transaction_minutes} min`;
  }
  return BUTTONS[key].label;
}
