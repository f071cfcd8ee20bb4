/**
 * Scratch databases of restore tests: a recognizable name and a comment marker, and a drop that refuses
 * any database without both. The bot only ever drops databases it created and marked itself, whatever
 * their name, so a misconfigured restore server or a typo can never cost a real database.
 *
 * @module
 */

import type { Sql } from "postgres";

/** Every scratch database's name matches this: bisman_rt_<target>_<yyyymmddhhmmss>_<4 hex>. */
export const SCRATCH_NAME = /^bisman_rt_[a-z0-9_]+_\d{14}_[0-9a-f]{4}$/;

const MARKER_PREFIX = "bisman-ops restore-test scratch database";
const MARKER =
  /^bisman-ops restore-test scratch database; target=([a-z_][a-z0-9_]*); run=(\d+); created=(\S+)$/;

/** What a marker says. */
export interface ScratchMarker {
  target: string;
  runId: number;
  created: string;
}

/**
 * A fresh scratch database name for `target` at `now` (63 bytes at most).
 * @example
 * scratchName("prod", new Date("2024-05-01T03:00:00Z")); // "bisman_rt_prod_20240501030000_9f3a"
 */
export function scratchName(target: string, now: Date): string {
  const stamp = now.toISOString().replace(/[-:T]/g, "").slice(0, 14);
  const rand = crypto.getRandomValues(new Uint8Array(2));
  const hex = Array.from(rand, (b) => b.toString(16).padStart(2, "0")).join("");
  const room = 63 - "bisman_rt_".length - 1 - stamp.length - 1 - hex.length;
  return `bisman_rt_${target.slice(0, room)}_${stamp}_${hex}`;
}

/** The comment that marks a scratch database as the bot's. */
export function markerText(m: ScratchMarker): string {
  return `${MARKER_PREFIX}; target=${m.target}; run=${m.runId}; created=${m.created}`;
}

/** Reads a marker; undefined for any other comment (or none). */
export function parseMarker(comment: string | null | undefined): ScratchMarker | undefined {
  const m = comment ? MARKER.exec(comment) : null;
  return m ? { target: m[1], runId: Number(m[2]), created: m[3] } : undefined;
}

/**
 * Creates the scratch database (from template0, as pg_restore wants) and marks it at once. The marker is
 * quoted by the server (`format('%I', '%L')`), never by string building here.
 */
export async function createScratch(server: Sql, name: string, marker: ScratchMarker): Promise<void> {
  if (!SCRATCH_NAME.test(name)) throw new Error(`not a scratch database name: ${name}`);
  await server`create database ${server(name)} template template0`;
  const [{ stmt }] = await server<{ stmt: string }[]>`
    select format('comment on database %I is %L', ${name}::text, ${markerText(marker)}::text) as stmt`;
  await server.unsafe(stmt);
}

/** A database on the server that looks like a scratch database or carries a marker. */
export interface ScratchCandidate {
  name: string;
  marker?: ScratchMarker;
  /** Why the bot will not drop it, when it will not. */
  refusal?: string;
}

function judge(name: string, comment: string | null): ScratchCandidate {
  const marker = parseMarker(comment);
  if (!marker) return { name, refusal: `${name} has no bisman-ops scratch marker` };
  if (!SCRATCH_NAME.test(name)) {
    return { name, marker, refusal: `${name} is not named like a scratch database` };
  }
  return { name, marker };
}

/** Scratch-looking and marked databases on `server`, each with the reason it may not be dropped, if any. */
export async function listScratch(server: Sql): Promise<ScratchCandidate[]> {
  const rows = await server<{ datname: string; comment: string | null }[]>`
    select datname, shobj_description(oid, 'pg_database') as comment
      from pg_database
     where datname like 'bisman\\_rt\\_%' or shobj_description(oid, 'pg_database') like ${`${MARKER_PREFIX}%`}
     order by datname`;
  return rows.map((r) => judge(r.datname, r.comment));
}

/** What {@link dropScratch} did. */
export type DropOutcome =
  | { dropped: true }
  | { dropped: false; absent: true }
  | { dropped: false; absent: false; refusal: string };

/**
 * Drops a scratch database only if it carries the bot's marker (and, when `expect` is given, the marker of
 * that target and run) and has a scratch name. Anything else is refused and left alone.
 *
 * The check and the drop are separate statements (DROP DATABASE runs in no transaction and no function), so
 * the name could change hands in between: another session drops the marked database and creates a different
 * one under the same name, and a DROP by name would take that one. So the database is first renamed, by
 * the name that was checked, to a fresh scratch name only this call knows; what now carries that name is
 * checked again (the same OID, the same marker), renamed back if it is not the checked database, and only
 * then dropped (WITH FORCE) by the name nobody else has. The rename needs no other session connected: the
 * checked database's sessions (by OID, never by name) are ended first.
 * @throws the server's error when a step fails (the database is then left under its name or the quarantine
 *   name, which is a scratch name with the marker, so the cleanup job finds it again)
 */
export async function dropScratch(
  server: Sql,
  name: string,
  expect?: { target: string; runId?: number },
): Promise<DropOutcome> {
  const [row] = await server<{ oid: string; comment: string | null }[]>`
    select oid::text as oid, shobj_description(oid, 'pg_database') as comment
      from pg_database where datname = ${name}`;
  if (!row) return { dropped: false, absent: true };
  const c = judge(name, row.comment);
  if (c.refusal) return { dropped: false, absent: false, refusal: c.refusal };
  if (
    expect &&
    (c.marker!.target !== expect.target || (expect.runId !== undefined && c.marker!.runId !== expect.runId))
  ) {
    return {
      dropped: false,
      absent: false,
      refusal: `${name} is marked for ${c.marker!.target} run ${
        c.marker!.runId
      }, not ${expect.target} run ${expect.runId}`,
    };
  }
  return await dropChecked(server, name, row.oid, row.comment!);
}

/** SQLSTATEs of the rename: the database is gone, it has sessions, the new name is taken. */
const UNDEFINED_DATABASE = "3D000";
const OBJECT_IN_USE = "55006";
const DUPLICATE_DATABASE = "42P04";

/**
 * The second half of {@link dropScratch}, for a database already checked: drops `name` only while it is still
 * the database `oid` with the comment `comment`. Exported for the test that swaps the database in between.
 */
export async function dropChecked(
  server: Sql,
  name: string,
  oid: string,
  comment: string,
): Promise<DropOutcome> {
  const marker = parseMarker(comment);
  if (!marker) return { dropped: false, absent: false, refusal: `${name} has no bisman-ops scratch marker` };
  let quarantine = "";
  for (let attempt = 1;; attempt++) {
    await endSessions(server, oid);
    quarantine = scratchName(marker.target, new Date());
    try {
      await server`alter database ${server(name)} rename to ${server(quarantine)}`;
      break;
    } catch (err) {
      const code = (err as { code?: string }).code;
      if (code === UNDEFINED_DATABASE) return { dropped: false, absent: true };
      if ((code === OBJECT_IN_USE || code === DUPLICATE_DATABASE) && attempt < 5) continue;
      throw err;
    }
  }
  const [now] = await server<{ oid: string; comment: string | null }[]>`
    select oid::text as oid, shobj_description(oid, 'pg_database') as comment
      from pg_database where datname = ${quarantine}`;
  if (!now || now.oid !== oid || now.comment !== comment) {
    // Not the database that was checked: it gets its name back, untouched.
    const back = await server`alter database ${server(quarantine)} rename to ${server(name)}`.then(
      () => "",
      (err) => ` (it could not get its name back and is now called ${quarantine}: ${(err as Error).message})`,
    );
    return {
      dropped: false,
      absent: false,
      refusal: `${name} changed between the check and the drop: it is no longer the marked database${back}`,
    };
  }
  await server`drop database ${server(quarantine)} with (force)`;
  return { dropped: true };
}

/** Ends the other sessions of the database `oid` and waits (bounded) until they are gone. */
async function endSessions(server: Sql, oid: string): Promise<void> {
  for (let i = 0; i < 50; i++) {
    const [{ n }] = await server<{ n: number }[]>`
      select count(pg_terminate_backend(pid))::int as n from pg_stat_activity
       where datid = ${oid}::oid and pid <> pg_backend_pid()`;
    if (n === 0) return;
    await new Promise((r) => setTimeout(r, 100));
  }
}
