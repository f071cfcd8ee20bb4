/**
 * Applies the bot's own numbered migrations (`sql/NNNN_name.sql`) to its state database.
 *
 * Each file is applied once, in its own transaction, and recorded in `bisman_ops.migrations`. Start-ups of
 * several replicas serialise on a session advisory lock, so a migration is never applied twice. A database
 * that already holds a migration this build does not know (a newer bot ran) is refused with both names,
 * rather than run against a schema the code does not understand.
 *
 * @module
 */

import type { Sql, TransactionSql } from "postgres";
import { connectState } from "./state_db.ts";
import { fileURLToPath } from "node:url";
import { transaction } from "./pg_tx.ts";

/** Advisory lock key for migrations: an arbitrary constant, the same in every replica. */
const MIGRATION_LOCK = 0x6269736d; // "bism"
/**
 * Transaction-level advisory lock key for the grants that follow the migrations. Replicas start together,
 * and two GRANTs on one object at once fail with "tuple concurrently updated" (PostgreSQL rewrites the
 * object's ACL in place; a CI run saw one of three bots starting on one database die of it), so each grant
 * transaction takes this lock first and they run one after another.
 */
const GRANT_LOCK = MIGRATION_LOCK + 1;

export interface Migration {
  id: number;
  name: string;
  sql: string;
}

/** Reads `sql/*.sql` (not `sql/target/`: target SQL is only applied by an explicit command). */
export async function readMigrations(
  dir = fileURLToPath(new URL("../sql/", import.meta.url)),
): Promise<Migration[]> {
  const out: Migration[] = [];
  for await (const entry of Deno.readDir(dir)) {
    const m = /^(\d{4})_([a-z0-9_]+)\.sql$/.exec(entry.name);
    if (!entry.isFile || !m) continue;
    out.push({ id: Number(m[1]), name: entry.name, sql: await Deno.readTextFile(`${dir}/${entry.name}`) });
  }
  out.sort((a, b) => a.id - b.id);
  for (let i = 1; i < out.length; i++) {
    if (out[i].id === out[i - 1].id) {
      throw new Error(`Two migrations share number ${out[i].id}: ${out[i - 1].name}, ${out[i].name}`);
    }
  }
  return out;
}

/**
 * Brings the schema up to date.
 * @returns the names of the migrations this call applied (empty when another replica did it first)
 * @throws Error when the database has a migration this build does not know
 */
export async function migrate(sql: Sql, migrations?: Migration[]): Promise<string[]> {
  const all = migrations ?? await readMigrations();
  const conn = await sql.reserve();
  const applied: string[] = [];
  try {
    await conn`select pg_advisory_lock(${MIGRATION_LOCK})`;
    try {
      await conn`create schema if not exists bisman_ops`;
      await conn`
        create table if not exists bisman_ops.migrations (
          id integer primary key,
          name text not null,
          applied_at timestamptz not null default now()
        )`;
      const done = await conn<
        { id: number; name: string }[]
      >`select id, name from bisman_ops.migrations order by id`;
      const known = new Set(all.map((m) => m.id));
      const unknown = done.filter((d) => !known.has(d.id));
      if (unknown.length) {
        const newest = all.at(-1)?.name ?? "none";
        throw new Error(
          `Refusing to start: the state database has migration ${
            unknown.at(-1)!.name
          }, which this build does not know (its newest is ${newest}); upgrade the bot`,
        );
      }
      const doneIds = new Set(done.map((d) => d.id));
      for (const m of all) {
        if (doneIds.has(m.id)) continue;
        await conn.unsafe("begin");
        try {
          await conn.unsafe(m.sql);
          await conn`insert into bisman_ops.migrations (id, name) values (${m.id}, ${m.name})`;
          await conn.unsafe("commit");
        } catch (err) {
          await conn.unsafe("rollback").catch(() => undefined);
          throw new Error(`Migration ${m.name} failed: ${err instanceof Error ? err.message : err}`, {
            cause: err,
          });
        }
        applied.push(m.name);
      }
    } finally {
      await conn`select pg_advisory_unlock(${MIGRATION_LOCK})`.catch(() => undefined);
    }
  } finally {
    conn.release();
  }
  return applied;
}

/**
 * Narrows what the runtime role may do in the state schema, after the owner role (DATABASE_MIGRATION_URL)
 * applied the migrations: it may use every table of `bisman_ops`, but only SELECT and INSERT the audit
 * log (no UPDATE, DELETE or TRUNCATE, and as a non-owner it cannot disable the trigger) and only read the
 * migrations table. Run after every migration, so tables added later are covered. Does nothing when both
 * URLs name the same role (then the trigger and the hash chain are the guard).
 * @param owner a connection as the schema's owner
 * @param runtimeRole the role of DATABASE_URL
 */
export async function grantRuntimeAccess(owner: Sql, runtimeRole: string): Promise<void> {
  const [{ me }] = await owner<{ me: string }[]>`select current_user as me`;
  if (me === runtimeRole) return;
  const role = owner(runtimeRole);
  await transaction(owner, async (tx) => {
    await tx`select pg_advisory_xact_lock(${GRANT_LOCK})`;
    await tx`grant usage on schema bisman_ops to ${role}`;
    await tx`revoke create on schema bisman_ops from ${role}`;
    await tx`grant select, insert, update, delete on all tables in schema bisman_ops to ${role}`;
    await tx`grant usage, select on all sequences in schema bisman_ops to ${role}`;
    await tx`revoke update, delete, truncate, references, trigger on bisman_ops.audit_log from ${role}`;
    await tx`revoke insert, update, delete, truncate, references, trigger on bisman_ops.migrations from ${role}`;
    // The CLI's inbox (sql/0009_cli_inbox.sql): the runtime role reads rows and may only claim and answer
    // them. It never inserts one (only cli_submit() does, as the person logged in), so holding DATABASE_URL
    // does not let anyone type a CLI command under another person's login.
    if (await tableExists(tx, "cli_inbox")) {
      await tx`revoke insert, update, delete, truncate, references, trigger on bisman_ops.cli_inbox from ${role}`;
      await tx`
        grant update (picked_by, picked_at, heartbeat_at, progress, reply, exit_code, done_at)
          on bisman_ops.cli_inbox to ${role}`;
    }
  });
}

async function tableExists(sql: Sql | TransactionSql, table: string): Promise<boolean> {
  const [{ ok }] = await sql<
    { ok: boolean }[]
  >`select to_regclass(${`bisman_ops.${table}`}) is not null as ok`;
  return ok;
}

/** The group role of the break-glass CLI's people (sql/0009_cli_inbox.sql). */
export const CLI_GROUP_ROLE = "bisman_cli";

/**
 * Gives the CLI's group role `bisman_cli` exactly what the thin-client CLI needs, and nothing else: USAGE on
 * the schema, SELECT on requests, approvals and the audit log (the plan it shows before an approval, and
 * `audit-log export`), EXECUTE on `cli_submit` and `cli_reply`. Idempotent; run after every migration, so a
 * role an admin created after the migration (when the owner lacked CREATEROLE) is covered at the next start.
 * Does nothing while the role or the inbox does not exist.
 * @param owner a connection as the schema's owner
 * @returns whether the role exists (and was granted)
 */
export async function grantCliAccess(owner: Sql): Promise<boolean> {
  const [{ exists }] = await owner<{ exists: boolean }[]>`
    select exists (select 1 from pg_roles where rolname = ${CLI_GROUP_ROLE}) as exists`;
  if (!exists || !(await tableExists(owner, "cli_inbox"))) return false;
  const role = owner(CLI_GROUP_ROLE);
  await transaction(owner, async (tx) => {
    await tx`select pg_advisory_xact_lock(${GRANT_LOCK})`;
    await tx`grant usage on schema bisman_ops to ${role}`;
    await tx`grant select on bisman_ops.requests, bisman_ops.approvals, bisman_ops.audit_log to ${role}`;
    await tx`grant execute on function bisman_ops.cli_submit(text, jsonb), bisman_ops.cli_reply(bigint) to ${role}`;
  });
  return true;
}

/**
 * Checks, changing nothing, that the state schema holds exactly this build's migrations: what a bot does
 * when it must not migrate (`BISMAN_MIGRATIONS=check`, the shipped Deployment, whose runtime role cannot
 * change the schema; its `migrate` init container applies them as the owner first). Read-only, so any role that may
 * read `bisman_ops.migrations` can run it.
 * @throws Error naming the schema's newest migration and this build's newest when one is missing, or the
 * unknown migration when the schema is ahead of this build
 */
export async function checkMigrations(sql: Sql, migrations?: Migration[]): Promise<void> {
  const all = migrations ?? await readMigrations();
  let done: { id: number; name: string }[];
  try {
    done = await sql<{ id: number; name: string }[]>`select id, name from bisman_ops.migrations order by id`;
  } catch (err) {
    // 42P01 undefined_table, 3F000 invalid_schema_name: nothing was ever applied here.
    const code = (err as { code?: string }).code;
    if (code === "42501") {
      throw new Error(
        `Refusing to start: this role cannot read bisman_ops.migrations (${
          (err as Error).message
        }); run the migrations as the schema's owner, which also grants the runtime role what it needs ` +
          "(the Deployment's `migrate` init container, or `deno run -A main.ts migrate` with DATABASE_MIGRATION_URL)",
        { cause: err },
      );
    }
    if (code !== "42P01" && code !== "3F000") throw err;
    done = [];
  }
  const newest = all.at(-1)?.name ?? "none";
  const known = new Set(all.map((m) => m.id));
  const unknown = done.filter((d) => !known.has(d.id));
  if (unknown.length) {
    throw new Error(
      `Refusing to start: the state database has migration ${
        unknown.at(-1)!.name
      }, which this build does not know (its newest is ${newest}); upgrade the bot`,
    );
  }
  const doneIds = new Set(done.map((d) => d.id));
  const missing = all.filter((m) => !doneIds.has(m.id));
  if (missing.length) {
    throw new Error(
      `Refusing to start: the state database's schema is at ${
        done.at(-1)?.name ?? "no migration"
      }, and this build needs ${newest} (not applied: ${missing.map((m) => m.name).join(", ")}). ` +
        "This bot only checks migrations (BISMAN_MIGRATIONS=check): run them as the schema's owner first " +
        "(the Deployment's `migrate` init container, or `deno run -A main.ts migrate` with DATABASE_MIGRATION_URL)",
    );
  }
}

/**
 * Brings the state schema up to date for a bot process or the CLI: with `DATABASE_MIGRATION_URL`, as the
 * owner role, then grants the runtime role (the user of `state`) only what it needs; without it, as the
 * runtime role itself. With `mode: "check"` it only checks ({@link checkMigrations}) and never applies.
 * @returns the migrations this call applied
 * @throws what {@link migrate} or {@link checkMigrations} throws, or the owner connection's error
 */
export async function migrateState(
  state: Sql,
  migrationUrl: string | undefined,
  mode: "apply" | "check" = "apply",
): Promise<string[]> {
  if (mode === "check") {
    await checkMigrations(state);
    return [];
  }
  if (!migrationUrl) {
    const applied = await migrate(state);
    await grantCliAccess(state);
    return applied;
  }
  const owner = connectState(migrationUrl, { max: 1 });
  try {
    const applied = await migrate(owner);
    // The runtime role may only read and append to the audit log (and use the gate's tables).
    const [{ role }] = await state<{ role: string }[]>`select current_user as role`;
    await grantRuntimeAccess(owner, role);
    await grantCliAccess(owner);
    return applied;
  } finally {
    await owner.end({ timeout: 2 });
  }
}
