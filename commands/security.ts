/**
 * The security subcommands over a target's audit tables and catalogs:
 * `/bisman security-events`, `/bisman detect`, `/bisman usage`, `/bisman roles` (and `roles apply`, through
 * the approval gate), `/bisman tls`, and `/bisman apply-target-sql` (through the gate).
 *
 * @module
 */

import { z } from "zod";
import {
  optionalTarget,
  optionalTargetOnly,
  type ParsedArgs,
  resolveTarget,
  targetArg,
  validateArgs,
} from "./args.ts";
import { defineSubcommand } from "./types.ts";
import type { Reply } from "./types.ts";
import type { Config } from "../core/config.ts";
import type { AppDeps, GateRequest } from "../core/deps.ts";
import { NotConfigured } from "../core/errors.ts";
import { listSecurityEvents, securityEventsArgs } from "../ops/security_events.ts";
import { detectBypass } from "../ops/detect_bypass.ts";
import { readServiceUsage, serviceUsageArgs } from "../ops/service_usage.ts";
import { readRoleDrift } from "../ops/role_drift.ts";
import { checkTls } from "../ops/tls_check.ts";
import { applyTargetSqlArgs } from "../ops/apply_target_sql.ts";
import { roleName, sinceArg } from "../ops/_security.ts";
import {
  renderDetect,
  renderRoleDrift,
  renderSecurityEvents,
  renderTls,
  renderUsage,
} from "../views/security.ts";
import { renderRequestCreated } from "../views/approval.ts";

/** Hands a destructive request to the approval gate (the only way such a subcommand acts). */
export async function requestApproval(deps: AppDeps, req: GateRequest): Promise<Reply> {
  if (!deps.gate) {
    throw new NotConfigured("The approval gate is not running in this process: ask the bot in Slack");
  }
  return renderRequestCreated(await deps.gate.request(req));
}

const eventsUsage = "/bisman security-events [target] [since=7d] [type=role_locked] [limit=30]";
const eventsSchema = z.object({
  positional: optionalTarget,
  named: z.strictObject({
    since: sinceArg.optional(),
    type: securityEventsArgs.shape.type,
    limit: z.string().regex(/^\d{1,3}$/, "a number").transform(Number).pipe(
      securityEventsArgs.shape.limit.unwrap(),
    )
      .optional(),
  }),
  rest: z.string(),
});

export const securityEventsCommand = defineSubcommand({
  name: "security-events",
  summary: "Security events of a target: locked roles, blocked addresses, applied grants, DDL seen",
  usage: eventsUsage,
  examples: ["/bisman security-events", "/bisman security-events prod since=24h type=ddl"],
  access: "operator",
  parse: (args, deps) => {
    const a = validateArgs(eventsSchema, args, eventsUsage);
    return { target: resolveTarget(deps.config, a.positional[0]), ...a.named };
  },
  run: async (ctx, args) => renderSecurityEvents(await listSecurityEvents(args, ctx.deps)),
});

const detectUsage = "/bisman detect [target] [since=24h]";
const detectSchema = z.object({
  positional: optionalTarget,
  named: z.strictObject({ since: sinceArg.optional() }),
  rest: z.string(),
});

export const detectCommand = defineSubcommand({
  name: "detect",
  summary:
    "Bypass detection: writes by unexpected roles or without app context, DDL and role changes by hand, unexpected logins, services beyond their grants",
  usage: detectUsage,
  examples: ["/bisman detect", "/bisman detect prod since=7d"],
  access: "operator",
  parse: (args, deps) => {
    const a = validateArgs(detectSchema, args, detectUsage);
    return { target: resolveTarget(deps.config, a.positional[0]), ...a.named };
  },
  run: async (ctx, args) => renderDetect(await detectBypass(args, ctx.deps)),
});

const usageUsage = "/bisman usage <service> [target] [since=30d]";
const usageSchema = z.object({
  positional: z.tuple([serviceUsageArgs.shape.service]).or(
    z.tuple([serviceUsageArgs.shape.service, targetArg]),
  ),
  named: z.strictObject({ since: sinceArg.optional() }),
  rest: z.string(),
});

export const usageCommand = defineSubcommand({
  name: "usage",
  summary: "Which tables a service touched and how, against what it is granted",
  usage: usageUsage,
  examples: ["/bisman usage payments", "/bisman usage svc_payments prod since=7d"],
  access: "operator",
  parse: (args, deps) => {
    const a = validateArgs(usageSchema, args, usageUsage);
    return { service: a.positional[0], target: resolveTarget(deps.config, a.positional[1]), ...a.named };
  },
  run: async (ctx, args) => renderUsage(await readServiceUsage(args, ctx.deps)),
});

const rolesUsage = "/bisman roles [target] | /bisman roles apply [target]";
const rolesSchema = z.object({
  positional: z.union([
    z.tuple([]),
    z.tuple([z.literal("apply")]),
    z.tuple([z.literal("apply"), targetArg]),
    z.tuple([targetArg]),
  ]),
  named: z.strictObject({}),
  rest: z.string(),
});

/** Parses `roles [target]` and `roles apply [target]`. */
function parseRoles(args: ParsedArgs, config: Config): { apply: boolean; target: string } {
  const a = validateArgs(rolesSchema, args, rolesUsage);
  const apply = a.positional[0] === "apply";
  return { apply, target: resolveTarget(config, apply ? a.positional[1] : a.positional[0]) };
}

export const rolesCommand = defineSubcommand({
  name: "roles",
  summary:
    "Least-privilege drift against the role policy; `roles apply` asks to run the exact GRANT/REVOKE fix",
  usage: rolesUsage,
  examples: ["/bisman roles", "/bisman roles prod", "/bisman roles apply prod"],
  access: "operator",
  parse: (args, deps) => parseRoles(args, deps.config),
  run: async (ctx, args) =>
    args.apply
      ? await requestApproval(ctx.deps, {
        action: "roles_apply",
        args: { target: args.target },
        invoker: ctx.invoker,
      })
      : renderRoleDrift(await readRoleDrift({ target: args.target }, ctx.deps)),
});

const tlsUsage = "/bisman tls [target]";
export const tlsCommand = defineSubcommand({
  name: "tls",
  summary: "TLS, hostssl + scram-sha-256 rules, a final reject, non-TLS sessions, pgaudit settings",
  usage: tlsUsage,
  examples: ["/bisman tls", "/bisman tls prod"],
  access: "anyone",
  parse: (args, deps) => {
    const a = validateArgs(optionalTargetOnly, args, tlsUsage);
    return { target: resolveTarget(deps.config, a.positional[0]) };
  },
  run: async (ctx, args) => renderTls(await checkTls(args, ctx.deps)),
});

const applyUsage =
  "/bisman apply-target-sql <target> [parts=audit,roles,bot_role] [sample=true] [bot_role=bisman_ops] [promote=true] [owner_role=\u2026]";
const bool = z.enum(["true", "false"]).transform((v) => v === "true");
const applySchema = z.object({
  positional: z.tuple([targetArg]),
  named: z.strictObject({
    parts: z.string().max(80).transform((s) => s.split(",").map((p) => p.trim())).pipe(
      applyTargetSqlArgs.shape.parts.unwrap(),
    )
      .optional(),
    sample: bool.optional(),
    bot_role: roleName.optional(),
    promote: bool.optional(),
    owner_role: roleName.optional(),
  }),
  rest: z.string(),
});

export const applyTargetSqlCommand = defineSubcommand({
  name: "apply-target-sql",
  summary:
    "Apply sql/target/ (audit table and triggers, the seed's roles, the bot's role) to a target, after approval",
  usage: applyUsage,
  examples: ["/bisman apply-target-sql staging", "/bisman apply-target-sql staging parts=audit,roles"],
  access: "operator",
  destructive: true,
  parse: (args, deps) => {
    const a = validateArgs(applySchema, args, applyUsage);
    return { target: resolveTarget(deps.config, a.positional[0]), ...a.named };
  },
  run: (ctx, args) => requestApproval(ctx.deps, { action: "apply_target_sql", args, invoker: ctx.invoker }),
});
