/**
 * `/bisman apply-target-sql`: applies the SQL of sql/target/ (audit table and triggers, the seed's roles,
 * the bot's role, optionally the sample schema) to a target, only when a person asks and an approver agrees.
 * Never run automatically: the migration runner does not read sql/target/.
 *
 * It connects as the target's configured login, which must be a superuser for this (event triggers, roles,
 * grants on pg_catalog functions); with the bot's least-privilege role the first file fails and nothing
 * changes. A DBA can run the same files without the bot: `deno run -A tools/apply_target_sql.ts`.
 *
 * @module
 */

import { z } from "zod";
import { InvalidInput } from "../core/errors.ts";
import type { OpDeps, Operation, PlanBase, Reconciled } from "./types.ts";
import {
  applyTargetSql,
  readTargetSql,
  TARGET_SQL_PARTS,
  type TargetSqlPart,
  targetSqlParts,
} from "./_target_sql.ts";
import { contentHash } from "./_hba.ts";
import { asTargetError, primaryPool, roleName, targetName } from "./_security.ts";

/** Arguments: target, parts, sample, and the bot_role.sql parameters. */
export const applyTargetSqlArgs = z.strictObject({
  target: targetName,
  parts: z.array(z.enum(TARGET_SQL_PARTS)).min(1).default(["audit", "roles", "bot_role"]),
  /** The sample schema (never for production): must be asked for explicitly. */
  sample: z.boolean().default(false),
  /** bot_role.sql: the bot's role name (default bisman_ops). */
  bot_role: roleName.default("bisman_ops"),
  /** bot_role.sql: EXECUTE on pg_promote() (only where promotion is enabled). */
  promote: z.boolean().default(false),
  /** bot_role.sql: the non-superuser owner of the app tables, granted to the bot for roles apply. */
  owner_role: roleName.optional(),
});
/** Validated arguments. */
export type ApplyTargetSqlArgs = z.infer<typeof applyTargetSqlArgs>;

/** The plan: the files, in order, with their hashes. */
export interface ApplyTargetSqlPlan extends PlanBase {
  target: string;
  args: ApplyTargetSqlArgs;
  parts: TargetSqlPart[];
  fingerprint: { files: Record<string, string> };
}

/** The parts applied. */
export interface ApplyTargetSqlOpResult {
  target: string;
  applied: string[];
}

async function fileHashes(parts: TargetSqlPart[]): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const p of parts) out[p] = (await contentHash(await readTargetSql(p))).slice(0, 16);
  return out;
}

/** The operation. */
export const applyTargetSqlOp: Operation<ApplyTargetSqlArgs, ApplyTargetSqlPlan, ApplyTargetSqlOpResult> = {
  name: "apply_target_sql",
  destructive: true,
  args: applyTargetSqlArgs,
  async plan(input, deps: OpDeps) {
    const args = applyTargetSqlArgs.parse(input);
    if (args.parts.includes("sample_schema") && !args.sample) {
      throw new InvalidInput(
        "The sample schema is applied only with sample=true (never to a production target)",
      );
    }
    const parts = targetSqlParts({ parts: args.parts, sample: args.sample });
    const sql = await primaryPool(deps, args.target);
    const [who] = await sql<{ u: string; su: boolean; db: string }[]>`
      select current_user as u, (select rolsuper from pg_roles where rolname = current_user) as su,
             current_database() as db`;
    if (parts.includes("bot_role") && args.bot_role === who.u) {
      throw new InvalidInput(
        `bot_role=${args.bot_role} is the login applying the SQL: name the bot's own role`,
      );
    }
    const warnings: string[] = [];
    if (!who.su) {
      warnings.push(`${who.u} is not a superuser: the first file will fail and nothing will change`);
    }
    if (args.sample) {
      warnings.push("sample=true: creates the sample schema and its generator (not for production)");
    }
    return {
      summary: `Apply ${parts.join(", ")} of sql/target/ to ${args.target} (database ${who.db}) as ${who.u}`,
      target: args.target,
      args,
      parts,
      steps: [
        ...parts.map((p) =>
          `sql/target/${p}.sql in its own transaction${
            p === "bot_role" ? ` (bot role ${args.bot_role}${args.promote ? ", with pg_promote" : ""})` : ""
          }`
        ),
        ...(args.sample ? ["sql/target/sample_data.sql (the generator function; no rows)"] : []),
      ],
      fingerprint: { files: await fileHashes(parts) },
      warnings,
    };
  },
  async revalidate(plan) {
    const now = await fileHashes(plan.parts);
    // Compared key by key: the stored plan went through jsonb, which does not keep key order.
    const same = Object.keys(now).length === Object.keys(plan.fingerprint.files).length &&
      Object.entries(now).every(([k, v]) => plan.fingerprint.files[k] === v);
    return same ? undefined : "The files of sql/target/ changed since the plan (a new bot version?)";
  },
  async run(plan, deps) {
    const m = deps.targets.member(plan.target, "primary");
    try {
      const sql = await primaryPool(deps, plan.target);
      const r = await applyTargetSql(sql, {
        parts: plan.parts,
        sample: plan.args.sample,
        botRole: plan.args.bot_role,
        allowPromote: plan.args.promote,
        ownerRole: plan.args.owner_role,
      });
      return { target: plan.target, applied: r.applied };
    } catch (err) {
      throw asTargetError(m, err, "apply the target SQL");
    }
  },
  async reconcile(plan, deps): Promise<Reconciled<ApplyTargetSqlOpResult>> {
    const sql = await primaryPool(deps, plan.target);
    const [r] = await sql<{ audit: boolean; events: boolean }[]>`
      select to_regclass('public.audit_logs_dml') is not null as audit,
             to_regclass('public.security_events') is not null as events`;
    // Each file is idempotent, so running the request again is safe; say what is there.
    return {
      status: "needs_human",
      note:
        `audit_logs_dml ${r.audit ? "exists" : "is missing"}, security_events ${
          r.events ? "exists" : "is missing"
        }: ` +
        "every file is idempotent, so asking again is safe",
    };
  },
  describeResult: (r) => `applied ${r.applied.join(", ")} on ${r.target}`,
};
