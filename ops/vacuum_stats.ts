/**
 * Autovacuum health of a target's primary, from `pg_stat_user_tables`: tables with many dead tuples, their
 * dead-tuple ratio, and how long since they were last vacuumed (by hand or by autovacuum). Read-only.
 *
 * Only tables with at least `digest.vacuum.min_dead_tuples` dead tuples are judged: a small table churning
 * a few rows is harmless, and reporting every never-vacuumed empty table would bury the real findings.
 *
 * @module
 */

import { z } from "zod";
import type { OpDeps, Operation, PlanBase } from "./types.ts";
import type { DigestConfig } from "../core/config.ts";
import { unreachable } from "../core/targets.ts";

/** ok / warning / critical, as the digest shows it. */
export type VacuumSeverity = "ok" | "warning" | "critical";

/** One table with enough dead tuples to be judged. */
export interface TableVacuum {
  schema: string;
  table: string;
  liveTuples: number;
  deadTuples: number;
  /** dead / (live + dead), 0-1. */
  deadRatio: number;
  /** Newest of last_vacuum and last_autovacuum, ISO; null when never vacuumed since the stats were reset. */
  lastVacuum: string | null;
  /** Days since lastVacuum; null when never. */
  daysSinceVacuum: number | null;
  severity: VacuumSeverity;
  reasons: string[];
}

/** The autovacuum report of one target. */
export interface VacuumReport {
  target: string;
  database: string;
  checkedAt: string;
  /** Whether autovacuum is on (`autovacuum` setting); off is itself a warning. */
  autovacuumOn: boolean;
  /** Tables judged (at least min_dead_tuples dead), worst first, at most 20. */
  tables: TableVacuum[];
  /** User tables that have never been vacuumed or analysed since the statistics were reset. */
  neverVacuumed: number;
  severity: VacuumSeverity;
}

const rank: Record<VacuumSeverity, number> = { ok: 0, warning: 1, critical: 2 };

/** Judges one table against the digest's vacuum limits. Pure. */
export function judgeTable(
  t: Omit<TableVacuum, "severity" | "reasons">,
  limits: DigestConfig["vacuum"],
): TableVacuum {
  const reasons: string[] = [];
  let severity: VacuumSeverity = "ok";
  const raise = (s: VacuumSeverity) => rank[s] > rank[severity] && (severity = s);
  const pct = Math.round(t.deadRatio * 100);
  if (t.deadRatio >= limits.dead_ratio_critical) {
    raise("critical");
    reasons.push(`${pct}% dead tuples (critical at ${Math.round(limits.dead_ratio_critical * 100)}%)`);
  } else if (t.deadRatio >= limits.dead_ratio_warning) {
    raise("warning");
    reasons.push(`${pct}% dead tuples (warning at ${Math.round(limits.dead_ratio_warning * 100)}%)`);
  }
  if (t.daysSinceVacuum === null) {
    raise("warning");
    reasons.push(`never vacuumed, ${t.deadTuples} dead tuples`);
  } else if (t.daysSinceVacuum >= limits.stale_days) {
    raise("warning");
    reasons.push(`not vacuumed for ${Math.floor(t.daysSinceVacuum)} days (limit ${limits.stale_days})`);
  }
  return { ...t, severity, reasons };
}

/**
 * Reads `pg_stat_user_tables` on the target's primary (the configured database) and judges each table.
 * @throws {OpsError} `unreachable` when the primary does not answer
 */
export async function readVacuumStats(target: string, deps: OpDeps): Promise<VacuumReport> {
  const m = deps.targets.member(target, "primary");
  const limits = deps.config.digest.vacuum;
  try {
    const sql = await deps.targets.pool(target, "primary");
    const [rows, [meta]] = await Promise.all([
      sql<
        {
          schema: string;
          table: string;
          live: string;
          dead: string;
          last_vacuum: Date | null;
          days: number | null;
        }[]
      >`
        select schemaname as schema, relname as table, n_live_tup as live, n_dead_tup as dead,
               greatest(last_vacuum, last_autovacuum) as last_vacuum,
               extract(epoch from now() - greatest(last_vacuum, last_autovacuum))::float8 / 86400 as days
          from pg_stat_user_tables
         where n_dead_tup >= ${limits.min_dead_tuples}
         order by n_dead_tup::float8 / nullif(n_live_tup + n_dead_tup, 0) desc nulls last, n_dead_tup desc
         limit 50`,
      sql<{ autovacuum: string; never: number; database: string }[]>`
        select current_setting('autovacuum') as autovacuum, current_database() as database,
               (select count(*)::int from pg_stat_user_tables
                 where coalesce(last_vacuum, last_autovacuum, last_analyze, last_autoanalyze) is null) as never`,
    ]);
    const tables = rows.map((r) =>
      judgeTable({
        schema: r.schema,
        table: r.table,
        liveTuples: Number(r.live),
        deadTuples: Number(r.dead),
        deadRatio: Number(r.dead) / Math.max(1, Number(r.live) + Number(r.dead)),
        lastVacuum: r.last_vacuum ? new Date(r.last_vacuum).toISOString() : null,
        daysSinceVacuum: r.days === null ? null : Number(r.days),
      }, limits)
    ).sort((a, b) => rank[b.severity] - rank[a.severity] || b.deadRatio - a.deadRatio).slice(0, 20);
    const autovacuumOn = meta.autovacuum === "on";
    let severity: VacuumSeverity = autovacuumOn ? "ok" : "warning";
    for (const t of tables) if (rank[t.severity] > rank[severity]) severity = t.severity;
    return {
      target,
      database: meta.database,
      checkedAt: deps.now().toISOString(),
      autovacuumOn,
      tables,
      neverVacuumed: meta.never,
      severity,
    };
  } catch (err) {
    throw unreachable(m, err);
  }
}

export const vacuumStatsArgs = z.strictObject({
  target: z.string().regex(/^[a-z_][a-z0-9_]{0,62}$/, "a target name"),
});
export type VacuumStatsArgs = z.infer<typeof vacuumStatsArgs>;

/** The plan of the read-only autovacuum check. */
export interface VacuumStatsPlan extends PlanBase {
  target: string;
}

/** `vacuum_stats`: read-only. run() reads pg_stat_user_tables on the primary. */
export const vacuumStats: Operation<VacuumStatsArgs, VacuumStatsPlan, VacuumReport> = {
  name: "vacuum_stats",
  destructive: false,
  args: vacuumStatsArgs,
  plan: (args) =>
    Promise.resolve({
      summary: `Read the autovacuum state of ${args.target}'s primary`,
      target: args.target,
      steps: ["pg_stat_user_tables: dead tuples, dead-tuple ratio, last (auto)vacuum per table"],
      fingerprint: {},
    }),
  run: (plan, deps) => readVacuumStats(plan.target, deps),
  describeResult: (r) => `${r.target}: ${r.tables.length} table(s) judged, worst ${r.severity}`,
};
