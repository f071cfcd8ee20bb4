/**
 * Editing a server's pg_hba.conf where the bot runs beside it (`security.manage_hba`): block lines that
 * reject one address, inserted above every other rule and marked so unblock finds exactly them; an
 * atomic write that keeps the file's owner and mode; and a change procedure that checks the new file
 * through `pg_hba_file_rules` before reloading and puts the old file back if it does not parse, so an
 * unparsable pg_hba.conf is never left in place (PostgreSQL keeps its old rules on a failed reload, but the
 * next restart would refuse every connection).
 *
 * @module
 */

import type { Sql } from "postgres";
import { dirname } from "node:path";
import { StepFailed } from "../core/errors.ts";
import type { ParsedAddress } from "./_security.ts";

/** Starts the comment line above each rule the bot adds. */
export const HBA_MARKER = "# bisman-ops block";

/** Advisory lock key serialising pg_hba.conf edits of one server across bot replicas. */
const HBA_LOCK = 0x6862615f; // "hba_"

/** The rule that rejects every TCP connection (SSL or not) from `address`. */
export function blockRule(address: ParsedAddress): string {
  return `host    all    all    ${address.text}    reject`;
}

/** The two lines a block adds: a marker comment (who, when, why) and the rule. */
export function blockLines(
  address: ParsedAddress,
  meta: { actor?: string; at: Date; requestId?: number },
): string[] {
  const who = (meta.actor ?? "unknown").replace(/[^A-Za-z0-9:_.@-]/g, "_").slice(0, 60);
  const req = meta.requestId !== undefined ? ` request=${meta.requestId}` : "";
  return [`${HBA_MARKER} ${address.text} by=${who} at=${meta.at.toISOString()}${req}`, blockRule(address)];
}

/** True for a line that is a rule (not blank, not a comment). */
function isRule(line: string): boolean {
  const t = line.trim();
  return t !== "" && !t.startsWith("#");
}

/**
 * Inserts `lines` above the first rule of `content` (and above blocks added before, whose marker must stay
 * right above its rule).
 * @returns the new content and the 1-based line number the rule will have
 */
export function insertBlock(content: string, lines: string[]): { content: string; ruleLine: number } {
  const all = content.split("\n");
  // Above the first rule, and above earlier blocks' markers (a marker must stay right above its rule).
  let at = all.findIndex((l) => isRule(l) || l.startsWith(HBA_MARKER));
  if (at < 0) at = all.length;
  const next = [...all.slice(0, at), ...lines, ...all.slice(at)];
  return { content: next.join("\n"), ruleLine: at + lines.length };
}

/** The addresses the bot blocked in `content` (marker comment directly above a matching rule). */
export function findBlocks(content: string): { address: string; markerLine: number; comment: string }[] {
  const all = content.split("\n");
  const out: { address: string; markerLine: number; comment: string }[] = [];
  for (let i = 0; i < all.length - 1; i++) {
    const m = new RegExp(`^${HBA_MARKER} (\\S+)`).exec(all[i]);
    if (!m) continue;
    const rule = all[i + 1].trim().split(/\s+/);
    if (rule[0] === "host" && rule[3] === m[1] && rule[4] === "reject") {
      out.push({ address: m[1], markerLine: i + 1, comment: all[i] });
    }
  }
  return out;
}

/** Removes the bot's block of `address` (marker and rule); other lines are left byte for byte. */
export function removeBlock(content: string, address: ParsedAddress): { content: string; removed: number } {
  const all = content.split("\n");
  const drop = new Set<number>();
  for (const b of findBlocks(content)) {
    if (b.address === address.text) {
      drop.add(b.markerLine - 1);
      drop.add(b.markerLine);
    }
  }
  return { content: all.filter((_, i) => !drop.has(i)).join("\n"), removed: drop.size / 2 };
}

/** sha256 hex of a file's content (the plan's fingerprint of pg_hba.conf). */
export async function contentHash(content: string): Promise<string> {
  const d = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(content));
  return Array.from(new Uint8Array(d), (b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * `revalidate()` of an operation that edits pg_hba.conf: undefined while the file still has the content the
 * plan fingerprinted (or the bot does not edit it), else why the plan no longer holds.
 */
export async function hbaChangedSincePlan(
  plan: { hbaPath?: string; fingerprint: { hbaSha256?: string } },
): Promise<string | undefined> {
  if (!plan.hbaPath) return undefined;
  const now = await contentHash(await Deno.readTextFile(plan.hbaPath));
  return now === plan.fingerprint.hbaSha256 ? undefined : `${plan.hbaPath} changed since the plan was made`;
}

/**
 * Replaces `path` with `content` atomically (a temp file in the same folder, renamed over it), keeping the
 * original's mode, owner and group, so the server (another OS user) can still read it.
 */
export async function writeAtomically(path: string, content: string): Promise<void> {
  const st = await Deno.stat(path);
  const tmp = `${dirname(path)}/.pg_hba.conf.bisman-${crypto.randomUUID().slice(0, 8)}`;
  try {
    await Deno.writeTextFile(tmp, content, { mode: (st.mode ?? 0o600) & 0o777, createNew: true });
    await Deno.chmod(tmp, (st.mode ?? 0o600) & 0o777);
    if (Deno.uid() === 0 && st.uid !== null && st.gid !== null) await Deno.chown(tmp, st.uid, st.gid);
    await Deno.rename(tmp, path);
  } catch (err) {
    await Deno.remove(tmp).catch(() => undefined);
    throw err;
  }
}

/** A line pg_hba_file_rules could not parse. */
export interface HbaError {
  line: number | null;
  error: string;
}

/** The parse errors of the server's pg_hba.conf as it is on disk now (the view re-reads the file). */
export async function hbaErrors(sql: Sql): Promise<HbaError[]> {
  const rows = await sql<{ line_number: number | null; error: string }[]>`
    select line_number, error from pg_catalog.pg_hba_file_rules where error is not null order by line_number`;
  return rows.map((r) => ({ line: r.line_number, error: r.error }));
}

/** The server's own hba_file setting, to make sure the bot edits the file the server reads. */
export async function serverHbaFile(sql: Sql): Promise<string> {
  const [{ f }] = await sql<{ f: string }[]>`select current_setting('hba_file') as f`;
  return f;
}

/** Resolves symlinks and `..`, so two spellings of one file compare equal. */
export async function samePath(a: string, b: string): Promise<boolean> {
  const real = (p: string) => Deno.realPath(p).catch(() => p);
  return (await real(a)) === (await real(b));
}

/** What {@link applyHbaChange} did. */
export interface HbaChangeResult {
  /** The server's configuration load time after the reload. */
  reloadedAt: string;
  /** pg_hba_file_rules rows after the reload (line, type, address, auth method). */
  rules: { line: number; type: string; address: string | null; netmask: string | null; auth: string }[];
}

/**
 * Writes `next` over the server's pg_hba.conf at `path`, then asks the server (through `pg_hba_file_rules`)
 * whether it parses. If not, the previous content goes back at once and nothing is reloaded. If it does,
 * `pg_reload_conf()` runs, the function waits until the server has reloaded, and re-checks the file.
 *
 * Serialised across bot replicas with an advisory lock on the server; `expectedHash` (the plan's
 * fingerprint) must still match the file when the lock is held, or nothing is written.
 *
 * @throws {StepFailed} `hba.changed` (file changed since the plan), `hba.parse` (would not parse: restored),
 *   `hba.locked` (another edit in progress), `hba.reload` (the server did not reload in time)
 */
export async function applyHbaChange(
  sql: Sql,
  path: string,
  change: (current: string) => string,
  opts: { expectedHash?: string; reloadTimeoutMs?: number } = {},
): Promise<HbaChangeResult> {
  const conn = await sql.reserve();
  try {
    const [{ locked }] = await conn<
      { locked: boolean }[]
    >`select pg_try_advisory_lock(${HBA_LOCK}) as locked`;
    if (!locked) {
      throw new StepFailed(
        "hba.locked",
        "Another pg_hba.conf change is in progress on this server: try again shortly",
      );
    }
    try {
      const before = await Deno.readTextFile(path);
      if (opts.expectedHash && (await contentHash(before)) !== opts.expectedHash) {
        throw new StepFailed(
          "hba.changed",
          `${path} changed since the plan was made: nothing was written; ask again for a fresh plan`,
        );
      }
      const next = change(before);
      await writeAtomically(path, next);
      let errors: HbaError[];
      try {
        errors = await hbaErrors(conn);
      } catch (err) {
        await writeAtomically(path, before);
        throw err;
      }
      if (errors.length) {
        await writeAtomically(path, before);
        throw new StepFailed(
          "hba.parse",
          `The new pg_hba.conf would not parse (${
            errors.map((e) => `line ${e.line ?? "?"}: ${e.error}`).join("; ").slice(0, 300)
          }): the previous file was put back and nothing was reloaded`,
        );
      }
      const [{ t0 }] = await conn<{ t0: Date }[]>`select pg_conf_load_time() as t0`;
      await conn`select pg_reload_conf()`;
      // The postmaster re-reads pg_hba.conf on SIGHUP; backends update pg_conf_load_time() when they see it.
      const deadline = Date.now() + (opts.reloadTimeoutMs ?? 10_000);
      let loaded: Date = t0;
      while (Date.now() < deadline) {
        const [{ t }] = await conn<{ t: Date }[]>`select pg_conf_load_time() as t`;
        loaded = t;
        if (new Date(t).getTime() > new Date(t0).getTime()) break;
        await new Promise((r) => setTimeout(r, 25));
      }
      if (new Date(loaded).getTime() <= new Date(t0).getTime()) {
        throw new StepFailed(
          "hba.reload",
          "The server did not confirm the reload within 10 s: check its log",
        );
      }
      const after = await hbaErrors(conn);
      if (after.length) {
        throw new StepFailed("hba.parse", `pg_hba.conf reports errors after the reload: ${after[0].error}`);
      }
      const rules = await conn<
        { line: number; type: string; address: string | null; netmask: string | null; auth: string }[]
      >`select line_number as line, type, address, netmask, auth_method as auth
          from pg_catalog.pg_hba_file_rules order by line_number`;
      return { reloadedAt: new Date(loaded).toISOString(), rules: [...rules] };
    } finally {
      await conn`select pg_advisory_unlock(${HBA_LOCK})`.catch(() => undefined);
    }
  } finally {
    conn.release();
  }
}
