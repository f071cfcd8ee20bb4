/**
 * The slowest statements of a target's primary by mean execution time, from `pg_stat_statements` (the seed's
 * slow-query detection: calls, mean and total time), with the query text cut short. Read-only.
 *
 * The view exists only in databases where `CREATE EXTENSION pg_stat_statements` ran, and only works when the
 * library is in `shared_preload_libraries`; both cases answer "not configured" with the fix.
 *
 * The text is masked here, as it is read (core/statement_mask.ts): pg_stat_statements keeps utility
 * statements verbatim, so `ALTER ROLE ... PASSWORD '...'` (Vault's rotate-root in clear, the bot's own SCRAM
 * verifiers) would otherwise reach the command, the digest and the weekly review.
 *
 * @module
 */

import { z } from "zod";
import type { OpDeps, Operation, PlanBase } from "./types.ts";
import { NotConfigured } from "../core/errors.ts";
import { maskStatementFor, redactionOf } from "../core/redact.ts";
import type { MaskedStatement } from "../core/statement_mask.ts";
import { targetFailure } from "./_pg_errors.ts";
import type { Severity } from "./replication_lag.ts";

/** Longest query text kept; the full text stays in the database. */
export const QUERY_TEXT_MAX = 300;

/** One statement's statistics. */
export interface SlowQuery {
  queryId: string;
  user: string | null;
  database: string | null;
  calls: number;
  meanMs: number;
  totalMs: number;
  rows: number;
  /** The normalised text, cut to {@link QUERY_TEXT_MAX} characters, then masked (literals, passwords). */
  query: MaskedStatement;
  severity: Severity;
}

/** The slowest statements of a target. */
export interface SlowQueriesReport {
  target: string;
  checkedAt: string;
  thresholdMs: number;
  queries: SlowQuery[];
  /** How many statements have a mean above the threshold (of all tracked, not only those listed). */
  overThreshold: number;
  /** When the statistics were last reset (`pg_stat_statements_info.stats_reset`), ISO. */
  statsReset: string | null;
  severity: Severity;
}

/**
 * Reads the `limit` slowest statements by mean time.
 * @throws {NotConfigured} when pg_stat_statements is not installed or not preloaded
 * @throws {OpsError} `unreachable` when the primary does not answer
 */
export async function readSlowQueries(target: string, deps: OpDeps, limit = 10): Promise<SlowQueriesReport> {
  const m = deps.targets.member(target, "primary");
  const thresholdMs = deps.config.thresholds.slow_query_mean_ms;
  try {
    const sql = await deps.targets.pool(target, "primary");
    const [ext] = await sql<{ schema: string }[]>`
      select n.nspname as schema from pg_extension e join pg_namespace n on n.oid = e.extnamespace
       where e.extname = 'pg_stat_statements'`;
    if (!ext) {
      throw new NotConfigured(
        `pg_stat_statements is not installed in ${target}'s database ${m.conn.database}: ` +
          "add it to shared_preload_libraries, restart, then CREATE EXTENSION pg_stat_statements",
      );
    }
    const rows = await sql<
      {
        queryid: string;
        usename: string | null;
        datname: string | null;
        calls: number;
        mean: number;
        total: number;
        rows: number;
        query: string;
      }[]
    >`
      select s.queryid::text as queryid, r.rolname as usename, d.datname, s.calls::float8 as calls,
             s.mean_exec_time::float8 as mean, s.total_exec_time::float8 as total, s.rows::float8 as rows,
             left(s.query, ${QUERY_TEXT_MAX}) as query
        from ${sql(ext.schema)}.pg_stat_statements s
        left join pg_roles r on r.oid = s.userid
        left join pg_database d on d.oid = s.dbid
       order by s.mean_exec_time desc
       limit ${limit}`;
    const [agg] = await sql<{ over: number }[]>`
      select count(*)::int as over from ${sql(ext.schema)}.pg_stat_statements
       where mean_exec_time >= ${thresholdMs}`;
    const [info] = await sql<{ stats_reset: Date | null }[]>`
      select stats_reset from ${sql(ext.schema)}.pg_stat_statements_info`;
    const redaction = redactionOf(deps.config);
    const queries: SlowQuery[] = rows.map((r) => ({
      queryId: r.queryid,
      user: r.usename,
      database: r.datname,
      calls: r.calls,
      meanMs: r.mean,
      totalMs: r.total,
      rows: r.rows,
      query: maskStatementFor(r.query, redaction),
      severity: r.mean >= thresholdMs ? "warning" : "ok",
    }));
    return {
      target,
      checkedAt: deps.now().toISOString(),
      thresholdMs,
      queries,
      overThreshold: agg.over,
      statsReset: info?.stats_reset ? new Date(info.stats_reset).toISOString() : null,
      severity: agg.over > 0 ? "warning" : "ok",
    };
  } catch (err) {
    if ((err as { code?: string })?.code === "55000") {
      throw new NotConfigured(
        `pg_stat_statements is installed in ${target} but not loaded: add it to shared_preload_libraries and restart`,
        { cause: err },
      );
    }
    throw targetFailure(m, err, "read pg_stat_statements");
  }
}

const identifier = z.string().regex(/^[a-z_][a-z0-9_]{0,62}$/, "a target name");

export const slowQueriesArgs = z.strictObject({
  target: identifier,
  limit: z.number().int().min(1).max(50).default(10),
});
export type SlowQueriesArgs = z.infer<typeof slowQueriesArgs>;

/** The plan of a read-only slow-query check. */
export interface SlowQueriesPlan extends PlanBase {
  target: string;
  limit: number;
}

/** `slow_queries`: read-only. */
export const slowQueries: Operation<SlowQueriesArgs, SlowQueriesPlan, SlowQueriesReport> = {
  name: "slow_queries",
  destructive: false,
  args: slowQueriesArgs,
  plan: (args) =>
    Promise.resolve({
      summary: `Read the ${args.limit} slowest statements of ${args.target} by mean time`,
      target: args.target,
      limit: args.limit,
      steps: ["pg_stat_statements ordered by mean_exec_time"],
      fingerprint: {},
    }),
  run: (plan, deps) => readSlowQueries(plan.target, deps, plan.limit),
  describeResult: (r) => `${r.target}: ${r.overThreshold} statement(s) with a mean over ${r.thresholdMs} ms`,
};
