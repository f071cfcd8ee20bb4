/**
 * The SQL of a BISMAN target (`sql/target/`): the seed's roles, the audit table and triggers, the bot's own
 * runtime role, and the sample schema with its data generator. The migration runner never reads these;
 * only {@link applyTargetSql} applies them, when a person (or a test, benchmark or the sandbox) asks.
 *
 * @module
 */

import type { Sql } from "postgres";
import { fileURLToPath } from "node:url";
import { z } from "zod";

/** The files of `sql/target/`, in the order they must be applied. */
export const TARGET_SQL_PARTS = ["sample_schema", "audit", "roles", "bot_role"] as const;
/** One part of the target SQL (`sql/target/<part>.sql`). */
export type TargetSqlPart = typeof TARGET_SQL_PARTS[number];

/** Row counts for the sample data generator (`sql/target/sample_data.sql`). */
export const sampleRowsSchema = z.strictObject({
  clients: z.number().int().min(0).max(10_000_000).default(1000),
  invoices: z.number().int().min(0).max(10_000_000).default(2000),
  payment_requests: z.number().int().min(0).max(10_000_000).default(2000),
  payments: z.number().int().min(0).max(10_000_000).default(1000),
  audit_rows: z.number().int().min(0).max(100_000_000).default(0),
  days: z.number().int().min(1).max(3650).default(30),
  app_users: z.number().int().min(1).max(10_000_000).default(5000),
});
/** Row counts for the sample data generator. */
export type SampleRows = z.infer<typeof sampleRowsSchema>;

/** What to apply. */
export interface ApplyTargetSqlOptions {
  /** Parts to apply (default: audit, roles, bot_role; plus sample_schema when `sample` is true). */
  parts?: TargetSqlPart[];
  /** Also create the sample schema (and, with `rows`, fill it). Never for a production target. */
  sample?: boolean;
  /** Generate sample rows (implies the generator function is installed); needs `sample: true`. */
  rows?: Partial<SampleRows>;
  /** bot_role.sql: the bot's role name (default bisman_ops). */
  botRole?: string;
  /** bot_role.sql: grant EXECUTE on pg_promote() (only where promotion is enabled). */
  allowPromote?: boolean;
  /** bot_role.sql: the non-superuser role owning the app tables, granted to the bot for roles apply. */
  ownerRole?: string;
}

/** What was applied. */
export interface ApplyTargetSqlResult {
  applied: string[];
  generated?: Record<string, number>;
}

const identifier = /^[a-z_][a-z0-9_]{0,62}$/;

/** The text of one `sql/target/` file. */
export async function readTargetSql(name: TargetSqlPart | "sample_data"): Promise<string> {
  return await Deno.readTextFile(fileURLToPath(new URL(`../sql/target/${name}.sql`, import.meta.url)));
}

/** The parts {@link applyTargetSql} would apply for `opts`, in order. */
export function targetSqlParts(opts: ApplyTargetSqlOptions = {}): TargetSqlPart[] {
  const wanted = new Set<TargetSqlPart>(opts.parts ?? ["audit", "roles", "bot_role"]);
  if (opts.sample) wanted.add("sample_schema");
  if (wanted.has("sample_schema") && !opts.sample) {
    throw new Error("The sample schema is applied only with sample: true (never to a production target)");
  }
  return TARGET_SQL_PARTS.filter((p) => wanted.has(p));
}

/**
 * Applies the target SQL to the database `sql` is connected to, each file in its own transaction, in the
 * order sample_schema, audit, roles, bot_role; then, with `rows`, generates sample data.
 *
 * Safety: run only on explicit request (the `apply-target-sql` subcommand, tests, the sandbox). Needs a
 * superuser connection (event triggers, roles, grants on pg_catalog functions). Every file is idempotent.
 * The SQL is fixed text from this repository; the only values passed in (role names, row counts) are
 * validated here and reach the server as session settings or bound parameters.
 *
 * @throws Error naming the file that failed, with the server's message
 * @example
 * await applyTargetSql(sql, { sample: true, rows: { clients: 100, audit_rows: 50_000 } });
 */
export async function applyTargetSql(
  sql: Sql,
  opts: ApplyTargetSqlOptions = {},
): Promise<ApplyTargetSqlResult> {
  for (const [key, value] of [["botRole", opts.botRole], ["ownerRole", opts.ownerRole]] as const) {
    if (value !== undefined && !identifier.test(value)) {
      throw new Error(`${key} must be a lower-case PostgreSQL identifier, not ${JSON.stringify(value)}`);
    }
  }
  if (opts.rows && !opts.sample) throw new Error("Sample rows are generated only with sample: true");
  const parts = targetSqlParts(opts);
  const applied: string[] = [];
  const conn = await sql.reserve();
  try {
    const files: (TargetSqlPart | "sample_data")[] = [
      ...parts,
      ...(opts.sample ? ["sample_data" as const] : []),
    ];
    for (const part of files) {
      const text = await readTargetSql(part);
      await conn`begin`;
      try {
        if (part === "bot_role") {
          await conn`select set_config('bisman.bot_role', ${opts.botRole ?? "bisman_ops"}, true),
                            set_config('bisman.allow_promote', ${opts.allowPromote ? "on" : "off"}, true),
                            set_config('bisman.owner_role', ${opts.ownerRole ?? ""}, true)`;
        }
        await conn.unsafe(text);
        // Recorded in the same transaction, so the DDL event trigger's rows for this apply share its txid
        // and `/bisman detect` counts them as the bot's own change, not as DDL made by hand.
        const [{ present }] = await conn<{ present: boolean }[]>`
          select to_regclass('public.security_events') is not null as present`;
        if (present) {
          await conn`
            insert into public.security_events (event_type, severity, source, details)
            values ('target_sql_applied', 'info', 'bisman-ops', ${conn.json({ part })})`;
        }
        await conn`commit`;
      } catch (err) {
        await conn`rollback`.catch(() => undefined);
        throw new Error(`sql/target/${part}.sql failed: ${err instanceof Error ? err.message : err}`, {
          cause: err,
        });
      }
      applied.push(part);
    }
    let generated: Record<string, number> | undefined;
    if (opts.sample) {
      if (opts.rows) {
        const r = sampleRowsSchema.parse(opts.rows);
        const [row] = await conn<{ result: Record<string, number> }[]>`
          select bisman_sample.generate(
            clients => ${r.clients}::integer, invoices => ${r.invoices}::integer,
            payment_requests => ${r.payment_requests}::integer, payments => ${r.payments}::integer,
            audit_rows => ${r.audit_rows}::bigint, days => ${r.days}::integer, app_users => ${r.app_users}::integer
          ) as result`;
        generated = row.result;
      }
    }
    return { applied, generated };
  } finally {
    conn.release();
  }
}
