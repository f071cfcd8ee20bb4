/**
 * Applies sql/target/ to a BISMAN database without the bot, for a DBA with a superuser login:
 *
 *   DATABASE_URL=postgres://postgres@db/bisman deno run -A tools/apply_target_sql.ts \
 *     [--parts=audit,roles,bot_role] [--bot-role=bisman_ops] [--promote] [--owner-role=bisman_owner] \
 *     [--sample [--rows=clients:1000,audit_rows:100000]]
 *
 * The password, when the URL needs one, comes from PGPASSWORD (never the command line). Nothing is applied
 * unless this is run on purpose: the bot's migrations never read sql/target/.
 *
 * @module
 */

import postgres from "postgres";
import { applyTargetSql, TARGET_SQL_PARTS, type TargetSqlPart } from "../ops/_target_sql.ts";

function flag(name: string): string | true | undefined {
  for (const a of Deno.args) {
    if (a === `--${name}`) return true;
    if (a.startsWith(`--${name}=`)) return a.slice(name.length + 3);
  }
  return undefined;
}

if (import.meta.main) {
  const url = Deno.env.get("DATABASE_URL");
  if (!url) {
    console.error("Set DATABASE_URL to the target database (a superuser login); PGPASSWORD for its password");
    Deno.exit(2);
  }
  const parts = typeof flag("parts") === "string"
    ? String(flag("parts")).split(",").map((p) => p.trim()) as TargetSqlPart[]
    : undefined;
  for (const p of parts ?? []) {
    if (!(TARGET_SQL_PARTS as readonly string[]).includes(p)) {
      console.error(`Unknown part ${p}: parts are ${TARGET_SQL_PARTS.join(", ")}`);
      Deno.exit(2);
    }
  }
  const rowsFlag = flag("rows");
  const rows = typeof rowsFlag === "string"
    ? Object.fromEntries(rowsFlag.split(",").map((kv) => kv.split(":")).map(([k, v]) => [k, Number(v)]))
    : undefined;
  const sql = postgres(url, {
    max: 1,
    onnotice: () => {},
    password: Deno.env.get("PGPASSWORD") || undefined,
  });
  try {
    const r = await applyTargetSql(sql, {
      parts,
      sample: flag("sample") === true,
      rows,
      botRole: typeof flag("bot-role") === "string" ? String(flag("bot-role")) : undefined,
      allowPromote: flag("promote") === true,
      ownerRole: typeof flag("owner-role") === "string" ? String(flag("owner-role")) : undefined,
    });
    console.log(
      `applied: ${r.applied.join(", ")}${r.generated ? `; generated ${JSON.stringify(r.generated)}` : ""}`,
    );
  } catch (err) {
    console.error(err instanceof Error ? err.message : err);
    Deno.exitCode = 1;
  } finally {
    await sql.end({ timeout: 2 });
  }
}
