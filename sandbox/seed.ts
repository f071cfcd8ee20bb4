/**
 * What the sandbox's servers hold: the BISMAN sample schema with generated rows on the primary
 * (sql/target/ through {@link applyTargetSql}), the bot's own state database on its own server, and a real
 * `pg_dump -Fc` of the sample database.
 * Every step checks first, so a restart on an existing data folder only fills in what is missing.
 *
 * @module
 */

import { fileURLToPath } from "node:url";
import type { PersistentCluster } from "../standins/cluster.ts";
import { applyTargetSql, type SampleRows } from "../ops/_target_sql.ts";
import { setupStanza } from "../standins/pgbackrest.ts";
import { pgDumpArgv } from "../standins/cluster.ts";

/** The sample database on the sandbox's primary. */
export const SAMPLE_DB = "bisman";
/** The bot's own state database (DATABASE_URL). */
export const STATE_DB = "bisman_ops_state";
/** The bot's least-privilege role on the target (sql/target/bot_role.sql). */
export const BOT_ROLE = "bisman_ops";
/**
 * The non-superuser role that owns the sample's tables (nologin). The bot is a member, and `roles apply`
 * runs its GRANT and REVOKE after SET LOCAL ROLE to it (security.grant_role): a grant made by someone else
 * can only be revoked with the owner's rights, and the bot is never a superuser.
 */
export const OWNER_ROLE = "bisman_owner";

/** Rows the sandbox generates on first start: enough to look real, quick on a small machine. */
export const DEFAULT_ROWS: Partial<SampleRows> = {
  clients: 1000,
  invoices: 2000,
  payment_requests: 2000,
  payments: 1000,
  audit_rows: 5000,
  days: 30,
  app_users: 500,
};

/** Creates the bot's state database on its own server (sandbox/clusters.ts openStateCluster) when missing. */
export async function ensureStateDatabase(state: Pick<PersistentCluster, "primary">): Promise<void> {
  if (!(await databaseExists(state, STATE_DB))) await state.primary.psql(`create database ${STATE_DB}`);
}

async function databaseExists(cluster: Pick<PersistentCluster, "primary">, name: string): Promise<boolean> {
  const out = await cluster.primary.psql(`select 1 from pg_database where datname = '${name}'`);
  return out.trim() === "1";
}

/** A digest of sql/target/*.sql, so a data folder made by an older checkout gets the current SQL. */
async function targetSqlDigest(): Promise<string> {
  const dir = fileURLToPath(new URL("../sql/target/", import.meta.url));
  const names: string[] = [];
  for await (const e of Deno.readDir(dir)) if (e.isFile && e.name.endsWith(".sql")) names.push(e.name);
  const text = (await Promise.all(names.sort().map(async (n) => `${n}\n${await Deno.readTextFile(dir + n)}`)))
    .join("\n");
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text)));
  return Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * Creates the state and sample databases when missing, loads the sample schema and rows once, and applies
 * sql/target/ again (without new rows; every file is idempotent) when it changed since the last start.
 */
export async function seedDatabases(
  cluster: PersistentCluster,
  opts: { rows?: Partial<SampleRows>; log: (line: string) => void; dataDir: string },
): Promise<void> {
  const digestFile = `${opts.dataDir}/target_sql.sha256`;
  const digest = await targetSqlDigest();
  if (!(await databaseExists(cluster, SAMPLE_DB))) await cluster.primary.psql(`create database ${SAMPLE_DB}`);
  const sql = cluster.primary.sql(SAMPLE_DB);
  try {
    const [{ loaded }] = await sql<{ loaded: boolean }[]>`
      select to_regclass('public.clients') is not null
         and to_regclass('public.security_events') is not null
         and exists (select 1 from pg_roles where rolname = ${BOT_ROLE}) as loaded`;
    if (loaded) {
      const [{ n }] = await sql<{ n: number }[]>`select count(*)::int as n from public.clients`;
      const applied = (await Deno.readTextFile(digestFile).catch(() => "")).trim();
      if (applied !== digest) {
        await applyTargetSql(sql, { sample: true, botRole: BOT_ROLE, allowPromote: true });
        await Deno.writeTextFile(digestFile, digest);
        opts.log(
          `BISMAN sample schema (${n} clients): sql/target/ changed since the last start, applied again`,
        );
      } else opts.log(`BISMAN sample schema already loaded (${n} clients)`);
      return;
    }
    const started = performance.now();
    const result = await applyTargetSql(sql, {
      sample: true,
      rows: opts.rows ?? DEFAULT_ROWS,
      botRole: BOT_ROLE,
      allowPromote: true,
    });
    await Deno.writeTextFile(digestFile, digest);
    const counts = Object.entries(result.generated ?? {})
      .filter(([k, v]) => typeof v === "number" && k !== "seconds")
      .map(([k, v]) => `${v} ${k}`)
      .join(", ");
    opts.log(
      `BISMAN sample schema loaded with generated data (${counts}) in ${
        ((performance.now() - started) / 1000).toFixed(1)
      } s`,
    );
  } finally {
    await sql.end({ timeout: 2 });
  }
}

/**
 * What the sandbox's own features need beyond sql/target/ (idempotent, every start): the tables owned by
 * {@link OWNER_ROLE} with the bot a member of it (`roles apply`), and EXECUTE on pg_stat_statements_reset
 * for the bot (`reset-stats`; the extension grants it to superusers only). The ownership change is DDL, so
 * it is recorded in security_events in the same transaction as the bot's own target SQL is, and
 * `/bisman detect` does not report it as DDL made by hand.
 */
export async function grantSandboxRights(cluster: PersistentCluster): Promise<string[]> {
  const sql = cluster.primary.sql(SAMPLE_DB);
  try {
    return await sql.begin(async (tx) => {
      const done: string[] = [];
      const [{ exists }] = await tx<{ exists: boolean }[]>`
        select exists (select 1 from pg_roles where rolname = ${OWNER_ROLE}) as exists`;
      if (!exists) {
        await tx.unsafe(`create role ${OWNER_ROLE} nologin`);
        done.push(`created ${OWNER_ROLE}`);
      }
      const [{ member }] = await tx<{ member: boolean }[]>`
        select pg_has_role(${BOT_ROLE}, ${OWNER_ROLE}, 'member') as member`;
      if (!member) {
        await tx.unsafe(`grant ${OWNER_ROLE} to ${BOT_ROLE}`);
        done.push(`granted ${OWNER_ROLE} to ${BOT_ROLE}`);
      }
      const tables = await tx<{ name: string }[]>`
        select c.relname as name from pg_class c join pg_namespace n on n.oid = c.relnamespace
         where n.nspname = 'public' and c.relkind in ('r', 'p', 'v')
           and pg_get_userbyid(c.relowner) <> ${OWNER_ROLE}
           and not exists (select 1 from pg_depend d where d.objid = c.oid and d.deptype = 'e')
         order by 1`;
      for (const t of tables) {
        await tx.unsafe(`alter table public."${t.name.replaceAll('"', '""')}" owner to ${OWNER_ROLE}`);
      }
      if (tables.length) done.push(`${tables.length} table(s) now owned by ${OWNER_ROLE}`);
      const [reset] = await tx<{ sig: string | null; granted: boolean }[]>`
        select p.oid::regprocedure::text as sig,
               has_function_privilege(${BOT_ROLE}, p.oid, 'execute') as granted
          from pg_proc p where p.proname = 'pg_stat_statements_reset' limit 1`;
      if (reset?.sig && !reset.granted) {
        await tx.unsafe(`grant execute on function ${reset.sig} to ${BOT_ROLE}`);
        done.push(`EXECUTE on ${reset.sig} granted to ${BOT_ROLE}`);
      }
      if (done.length) {
        await tx`
          insert into public.security_events (event_type, severity, source, details)
          values ('target_sql_applied', 'info', 'bisman-ops', ${tx.json({ part: "sandbox_rights", done })})`;
      }
      return done;
    });
  } finally {
    await sql.end({ timeout: 2 });
  }
}

/** Today's dump name in the seed's pattern (`bisman_YYYYMMDD.dump`). */
export function dumpName(now = new Date()): string {
  return `bisman_${now.toISOString().slice(0, 10).replaceAll("-", "")}.dump`;
}

/** The dumps already in `dir`, newest name last. */
export async function listDumps(dir: string): Promise<string[]> {
  const out: string[] = [];
  try {
    for await (const e of Deno.readDir(dir)) {
      if (e.isFile && /^bisman_\d{8}\.dump$/.test(e.name)) out.push(e.name);
    }
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  }
  return out.sort();
}

/**
 * Makes a real `pg_dump -Fc` of the sample database into `dir` when it holds none yet (the seed's daily
 * full backup). It runs as the sandbox's own user over loopback TCP (pg_hba trusts postgres there), so the
 * data folder need not be reachable by the postgres OS user.
 */
export async function ensureDump(
  cluster: PersistentCluster,
  dir: string,
  log: (line: string) => void,
): Promise<string> {
  await Deno.mkdir(dir, { recursive: true });
  const existing = await listDumps(dir);
  if (existing.length) {
    log(`pg_dump: ${existing.length} dump(s) in ${dir}, newest ${existing.at(-1)}`);
    return `${dir}/${existing.at(-1)}`;
  }
  const file = `${dir}/${dumpName()}`;
  const started = performance.now();
  const res = await cluster.run(pgDumpArgv(cluster, SAMPLE_DB, file));
  if (res.code !== 0) throw new Error(`pg_dump failed (exit ${res.code}): ${res.stderr.trim()}`);
  const size = (await Deno.stat(file)).size;
  log(
    `pg_dump: made ${file} (${(size / 1024).toFixed(0)} KiB) in ${
      ((performance.now() - started) / 1000).toFixed(1)
    } s`,
  );
  return file;
}

/** The sandbox's pgBackRest stanza. */
export interface SandboxStanza {
  stanza: string;
  configFile: string;
}

/**
 * Where pgbackrest is installed: writes its config for the current ports, sets archive_command, creates the
 * stanza (idempotent) and checks that WAL reaches the repository, through the test harness's
 * {@link setupStanza}; takes a full backup when the repository holds none.
 */
export async function ensurePgBackRest(
  cluster: PersistentCluster,
  log: (line: string) => void,
): Promise<SandboxStanza | undefined> {
  if (!(await Deno.stat("/usr/bin/pgbackrest").then((s) => s.isFile).catch(() => false))) {
    log("pgBackRest is not installed (apt-get install pgbackrest): no stanza, no WAL archiving");
    return undefined;
  }
  const started = performance.now();
  const stanza = await setupStanza(cluster, { name: "bisman" });
  const info = await stanza.info() as { backup?: unknown[] }[];
  const backups = info[0]?.backup?.length ?? 0;
  if (!backups) await stanza.backup("full");
  log(
    `pgBackRest: stanza ${stanza.name}, WAL archiving on, ${
      backups ? `${backups} backup(s) kept` : "full backup taken"
    } ` +
      `(${((performance.now() - started) / 1000).toFixed(1)} s)`,
  );
  return { stanza: stanza.name, configFile: stanza.configFile };
}

/**
 * Resets pg_stat_statements once the sandbox's own set-up is done, so the slow-query report and the
 * detection of superuser changes start from what happens in the sandbox, not from its bootstrap (creating
 * databases, loading rows, setting the role passwords Vault holds).
 */
export async function forgetSetupStatements(cluster: PersistentCluster): Promise<void> {
  await cluster.primary.psql(
    "do $$ begin if exists (select 1 from pg_extension where extname = 'pg_stat_statements') then " +
      "perform pg_stat_statements_reset(); end if; end $$;",
    SAMPLE_DB,
  );
}
