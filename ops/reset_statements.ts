/**
 * Resets pg_stat_statements on a target's primary (`select pg_stat_statements_reset()`): every statement's
 * statistics are discarded, so the slow-query report starts from zero. Destructive (the history cannot be
 * brought back), and the first operation that goes through the approval gate end to end.
 *
 * The plan is bound to the statistics it describes: its fingerprint is whether the extension is there and
 * `pg_stat_statements_info.stats_reset`. If someone reset them (or dropped the extension) between the
 * request and the click, revalidate() says so and nothing runs. After a crash, reconcile() tells from
 * `stats_reset` whether a reset happened after the plan was made.
 *
 * @module
 */

import { z } from "zod";
import type { OpDeps, Operation, PlanBase, Reconciled } from "./types.ts";
import { type TargetMember, unreachable } from "../core/targets.ts";
import { NotConfigured, OpsError, StepFailed } from "../core/errors.ts";
import { failpoint } from "../core/failpoint.ts";
import { recordSecurityEvent, withAuditContext } from "../core/target_audit.ts";
import type { Sql } from "postgres";

export const resetStatementsArgs = z.strictObject({
  target: z.string().regex(/^[a-z_][a-z0-9_]{0,62}$/, "a target name"),
});
export type ResetStatementsArgs = z.infer<typeof resetStatementsArgs>;

/** What the statistics look like: the state the plan is bound to. */
export interface StatementStats {
  extension: boolean;
  /** `pg_stat_statements_info.stats_reset`, UTC with microseconds (fixed width, so strings compare in time order). */
  statsReset: string | null;
  statements: number | null;
  inRecovery: boolean;
}

/** The stored plan. */
export interface ResetStatementsPlan extends PlanBase {
  target: string;
  address: string;
  database: string;
  statements: number | null;
  verify: string[];
  undo: string[];
  fingerprint: { extension: boolean; statsReset: string | null; inRecovery: boolean };
}

/** What run() did. */
export interface ResetStatementsResult {
  target: string;
  statementsBefore: number | null;
  statsResetBefore: string | null;
  statsResetAfter: string | null;
}

/** Reads the extension's presence, its reset time and statement count, and whether the server is a standby. */
export async function readStatementStats(sql: Sql): Promise<StatementStats> {
  const [base] = await sql<{ extension: boolean; in_recovery: boolean }[]>`
    select exists (select 1 from pg_extension where extname = 'pg_stat_statements') as extension,
           pg_is_in_recovery() as in_recovery`;
  if (!base.extension) {
    return { extension: false, statsReset: null, statements: null, inRecovery: base.in_recovery };
  }
  const [info] = await sql<{ stats_reset: string | null; statements: number }[]>`
    select to_char(i.stats_reset at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') as stats_reset,
           (select count(*)::int from pg_stat_statements) as statements
      from pg_stat_statements_info i`;
  return {
    extension: true,
    statsReset: info?.stats_reset ?? null,
    statements: info?.statements ?? null,
    inRecovery: base.in_recovery,
  };
}

async function readOn(m: TargetMember, deps: OpDeps): Promise<StatementStats> {
  try {
    return await readStatementStats(await deps.targets.pool(m.target, m.name));
  } catch (err) {
    if (err instanceof OpsError) throw err;
    const code = (err as { code?: string }).code;
    // 55000: the extension is created but the library is not in shared_preload_libraries.
    if (code === "55000") {
      throw new NotConfigured(
        `Cannot read pg_stat_statements on ${m.target}: the library is not in shared_preload_libraries`,
        { cause: err },
      );
    }
    throw unreachable(m, err);
  }
}

/**
 * `reset_statements`: destructive.
 * @throws {NotConfigured} when pg_stat_statements is not installed or not loaded on the target
 * @throws {OpsError} `conflict` when the configured primary is in recovery, `unreachable` when it does not answer
 */
export const resetStatements: Operation<ResetStatementsArgs, ResetStatementsPlan, ResetStatementsResult> = {
  name: "reset_statements",
  destructive: true,
  args: resetStatementsArgs,

  async plan(args, deps) {
    const m = deps.targets.member(args.target, "primary");
    const s = await readOn(m, deps);
    if (!s.extension) {
      throw new NotConfigured(
        `Cannot reset statement statistics on ${args.target}: pg_stat_statements is not installed in database ` +
          `${m.conn.database} (create extension pg_stat_statements, with the library in shared_preload_libraries)`,
      );
    }
    if (s.inRecovery) {
      throw new OpsError(
        "conflict",
        `Cannot reset statement statistics on ${args.target}: its configured primary is in recovery (a standby); ` +
          `check the target's configuration after a failover`,
      );
    }
    const address = `${m.conn.host}:${m.conn.port}`;
    const count = s.statements === null ? "every" : `all ${s.statements}`;
    return {
      summary:
        `Reset pg_stat_statements on ${args.target}'s primary: discard the statistics of ${count} statements`,
      target: args.target,
      address,
      database: m.conn.database,
      statements: s.statements,
      steps: [
        `Connect to ${args.target}/primary (${address}, database ${m.conn.database}) as ${m.conn.user}`,
        `Run \`select pg_stat_statements_reset()\` (every user, every database), with app.user_id set to the requester`,
        "Record a security_events row (statement_stats_reset) where the target has that table",
      ],
      verify: [`pg_stat_statements_info.stats_reset is later than ${s.statsReset ?? "before"}`],
      undo: [
        "Nothing to undo: a failed reset leaves the statistics as they were; a done reset cannot be reversed",
      ],
      warnings: [
        "The slow-query report and the digest start again from zero: copy what you need first (/bisman slow-queries)",
      ],
      fingerprint: { extension: s.extension, statsReset: s.statsReset, inRecovery: s.inRecovery },
    };
  },

  async revalidate(plan, deps) {
    const now = await readOn(deps.targets.member(plan.target, "primary"), deps);
    const was = plan.fingerprint;
    if (!now.extension) return "pg_stat_statements is no longer installed on the primary";
    if (now.inRecovery !== was.inRecovery) return "the configured primary is now in recovery (a standby)";
    if (now.statsReset !== was.statsReset) {
      return `the statistics were reset at ${now.statsReset ?? "an unknown time"} by someone else ` +
        `(the plan saw them as of ${was.statsReset ?? "an unknown time"})`;
    }
    return undefined;
  },

  async run(plan, deps) {
    const m = deps.targets.member(plan.target, "primary");
    const sql = await deps.targets.pool(plan.target, "primary");
    await failpoint("reset_statements.before_reset");
    try {
      await withAuditContext(sql, deps.actor, async (tx) => {
        await tx`select pg_stat_statements_reset()`;
        await recordSecurityEvent(tx, {
          eventType: "statement_stats_reset",
          actor: deps.actor,
          requestId: deps.requestId,
          details: { target: plan.target, stats_reset_before: plan.fingerprint.statsReset },
        });
      });
    } catch (err) {
      if ((err as { code?: string }).code === "42501") {
        throw new StepFailed(
          "reset",
          `Reset refused on ${plan.target}: the bot's role may not run pg_stat_statements_reset() ` +
            `(grant execute on function pg_stat_statements_reset to it)`,
          { cause: err },
        );
      }
      throw new StepFailed("reset", unreachable(m, err).userMessage, { cause: err });
    }
    await failpoint("reset_statements.after_reset");
    const after = await readOn(m, deps);
    if (
      !after.statsReset || (plan.fingerprint.statsReset && after.statsReset <= plan.fingerprint.statsReset)
    ) {
      throw new StepFailed(
        "verify",
        `Reset ran on ${plan.target} but stats_reset still says ${
          after.statsReset ?? "nothing"
        }: check by hand`,
      );
    }
    return {
      target: plan.target,
      statementsBefore: plan.statements,
      statsResetBefore: plan.fingerprint.statsReset,
      statsResetAfter: after.statsReset,
    };
  },

  async reconcile(plan, deps): Promise<Reconciled<ResetStatementsResult>> {
    const now = await readOn(deps.targets.member(plan.target, "primary"), deps);
    if (!now.extension) {
      return { status: "needs_human", note: "pg_stat_statements is no longer installed: check the primary" };
    }
    if (now.statsReset && (!plan.fingerprint.statsReset || now.statsReset > plan.fingerprint.statsReset)) {
      return {
        status: "done",
        note: `the statistics were reset at ${now.statsReset}, after the plan was made (${
          plan.fingerprint.statsReset ?? "no earlier reset"
        })`,
        result: {
          target: plan.target,
          statementsBefore: plan.statements,
          statsResetBefore: plan.fingerprint.statsReset,
          statsResetAfter: now.statsReset,
        },
      };
    }
    return {
      status: "not_done",
      note: `the statistics still date from ${now.statsReset ?? "an unknown time"}: no reset happened; ` +
        `request it again if it is still needed`,
    };
  },

  describeResult(r) {
    const n = r.statementsBefore === null ? "" : ` of ${r.statementsBefore} statements`;
    return `statistics${n} discarded on ${r.target}; stats_reset is now ${r.statsResetAfter}`;
  },
};
