/**
 * "Update security patches promptly" (runbook section 9): each server's `server_version_num` against the
 * newest minor release of its major in PostgreSQL's published versions feed, and against that major's end
 * of life. An older minor is a warning naming both versions; a major past its end of life (or marked
 * unsupported) is critical.
 *
 * The feed (`checklist.postgres_versions.url`, https://www.postgresql.org/versions.json by default) is an
 * array with one entry per major: `{"major": "15", "latestMinor": "19", "eolDate": "2027-11-11",
 * "supported": true, "current": false, ...}`. It is read once per `cache_hours` per process (concurrent checks
 * share one request); when it does not answer, `offline_copy` (a file) is used and the evidence says so.
 *
 * @module
 */

import { z } from "zod";
import type { PostgresVersionsConfig } from "../core/config_evidence.ts";
import { OpsError } from "../core/errors.ts";
import type { TargetMember } from "../core/targets.ts";
import type { OpDeps } from "./types.ts";
import { targetFailure } from "./_pg_errors.ts";
import { type EvidenceFinding, type EvidenceReport, failureText, settle } from "./_evidence.ts";

/** One major of the feed. */
export interface MajorRelease {
  /** "15", or "9.6" before version 10. */
  major: string;
  latestMinor: number;
  /** YYYY-MM-DD */
  eolDate?: string;
  supported?: boolean;
}

/** The feed as read. */
export interface VersionsFeed {
  majors: MajorRelease[];
  /** Where it was read: the URL, or "the local copy <path> (<url> does not answer: ...)". */
  from: string;
  readAt: Date;
}

const entrySchema = z.object({
  major: z.union([z.string(), z.number()]).transform(String),
  latestMinor: z.union([z.string().regex(/^\d+$/), z.number().int()]).transform(Number),
  eolDate: z.iso.date().optional(),
  supported: z.boolean().optional(),
});

/**
 * Parses the feed's JSON.
 * @throws {OpsError} `unreachable` when it is not the feed's shape (it changed, or the URL serves something else)
 * @example
 * parseVersionsFeed([{ major: "15", latestMinor: "19", eolDate: "2027-11-11", supported: true }]);
 */
export function parseVersionsFeed(json: unknown): MajorRelease[] {
  const r = z.array(entrySchema).min(1).safeParse(json);
  if (!r.success) {
    const i = r.error.issues[0];
    throw new OpsError(
      "unreachable",
      `the versions feed is not in the expected shape (${i.path.join(".") || "top level"}: ${i.message})`,
    );
  }
  return r.data;
}

/** A server's version from `server_version_num`. @example serverVersion(150014) // { major: "15", minor: 14 } */
export function serverVersion(num: number): { major: string; minor: number; text: string } {
  if (num >= 100000) {
    const major = String(Math.floor(num / 10000));
    const minor = num % 10000;
    return { major, minor, text: `${major}.${minor}` };
  }
  // Before 10: 90624 is 9.6.24.
  const major = `${Math.floor(num / 10000)}.${Math.floor(num / 100) % 100}`;
  const minor = num % 100;
  return { major, minor, text: `${major}.${minor}` };
}

const DAY = 86_400_000;

/**
 * Judges one server's version against the feed at `now`.
 * @example
 * judgeVersion("primary", 150010, majors, new Date("2026-12-07"), 180);
 * // warning: "runs 15.10; 15.19 is the newest 15.x release: update"
 */
export function judgeVersion(
  member: string,
  versionNum: number,
  majors: MajorRelease[],
  now: Date,
  eolWarningDays: number,
): EvidenceFinding {
  const v = serverVersion(versionNum);
  const m = majors.find((x) => x.major === v.major);
  if (!m) {
    return {
      severity: "warning",
      check: member,
      reason:
        `runs ${v.text}; the versions feed does not list major ${v.major} (a beta, or a feed out of date)`,
    };
  }
  const newest = `${m.major}.${m.latestMinor}`;
  const eol = m.eolDate ? new Date(`${m.eolDate}T00:00:00Z`) : undefined;
  if (m.supported === false || (eol && eol.getTime() <= now.getTime())) {
    return {
      severity: "critical",
      check: member,
      reason: `runs ${v.text}: PostgreSQL ${m.major} is no longer supported${
        m.eolDate ? ` (end of life ${m.eolDate})` : ""
      }; no more security fixes: upgrade to a supported major`,
    };
  }
  if (v.minor < m.latestMinor) {
    return {
      severity: "warning",
      check: member,
      reason: `runs ${v.text}; ${newest} is the newest ${m.major}.x release: update (${
        m.latestMinor - v.minor
      } minor release(s) behind)`,
    };
  }
  const eolNote = m.eolDate ? `; ${m.major} is supported until ${m.eolDate}` : "";
  if (eol && eol.getTime() - now.getTime() < eolWarningDays * DAY) {
    return {
      severity: "warning",
      check: member,
      reason: `runs ${v.text}, the newest ${m.major}.x release, but its end of life is ${m.eolDate} (${
        Math.ceil((eol.getTime() - now.getTime()) / DAY)
      } days): plan the major upgrade`,
    };
  }
  const ahead = v.minor > m.latestMinor ? ` (newer than the feed's ${newest}: the feed is behind)` : "";
  return {
    severity: "ok",
    check: member,
    reason: `runs ${v.text}, the newest ${m.major}.x release${ahead}${eolNote}`,
  };
}

// --- the feed, cached per process ---------------------------------------------------------------------------

const cache = new Map<string, VersionsFeed>();
const inflight = new Map<string, Promise<VersionsFeed>>();

/** Forgets every cached feed (tests, and a config reload that changed the URL need not). */
export function forgetVersionsFeed(): void {
  cache.clear();
}

async function fetchFeed(cfg: PostgresVersionsConfig, now: Date): Promise<VersionsFeed> {
  let json: unknown;
  try {
    const res = await fetch(cfg.url, {
      headers: { accept: "application/json" },
      signal: AbortSignal.timeout(cfg.timeout_seconds * 1000),
    });
    if (!res.ok) {
      await res.body?.cancel();
      throw new OpsError("unreachable", `${cfg.url} answered HTTP ${res.status}`);
    }
    json = await res.json().catch(() => {
      throw new OpsError("unreachable", `${cfg.url} did not answer with JSON`);
    });
  } catch (err) {
    const why = err instanceof OpsError ? err.userMessage : `${cfg.url} does not answer: ${failureText(err)}`;
    if (!cfg.offline_copy) throw new OpsError("unreachable", why, { cause: err });
    return await readOfflineCopy(cfg.offline_copy, why, now);
  }
  return { majors: parseVersionsFeed(json), from: cfg.url, readAt: now };
}

async function readOfflineCopy(path: string, why: string, now: Date): Promise<VersionsFeed> {
  let text: string;
  let modified: Date | null = null;
  try {
    text = await Deno.readTextFile(path);
    modified = (await Deno.stat(path)).mtime;
  } catch (err) {
    throw new OpsError("unreachable", `${why}; the local copy ${path} cannot be read: ${failureText(err)}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new OpsError("unreachable", `${why}; the local copy ${path} is not JSON`);
  }
  const age = modified ? `, written ${modified.toISOString().slice(0, 10)}` : "";
  return { majors: parseVersionsFeed(json), from: `the local copy ${path}${age} (${why})`, readAt: now };
}

/**
 * The versions feed: from the process cache when younger than `cache_hours`, else fetched (one request for
 * concurrent callers), else the offline copy.
 * @throws {OpsError} `unreachable` when neither the URL nor the offline copy gives a feed
 */
export async function loadVersionsFeed(cfg: PostgresVersionsConfig, now: Date): Promise<VersionsFeed> {
  const key = `${cfg.url}\n${cfg.offline_copy ?? ""}`;
  const cached = cache.get(key);
  // A feed read from the offline copy is not kept: the next check tries the URL again.
  if (
    cached && cached.from === cfg.url && now.getTime() - cached.readAt.getTime() < cfg.cache_hours * 3600_000
  ) {
    return cached;
  }
  let p = inflight.get(key);
  if (!p) {
    p = fetchFeed(cfg, now).finally(() => inflight.delete(key));
    inflight.set(key, p);
  }
  const feed = await p;
  cache.set(key, feed);
  return feed;
}

// --- the check ---------------------------------------------------------------------------------------------

async function readVersionNum(m: TargetMember, deps: OpDeps): Promise<number> {
  try {
    const sql = await deps.targets.pool(m.target, m.name);
    const [row] = await sql<{ num: number }[]>`select current_setting('server_version_num')::int as num`;
    return row.num;
  } catch (err) {
    throw targetFailure(m, err, "read server_version_num");
  }
}

/**
 * The patch level of every server of `target` (the primary and each replica).
 * @throws {NotConfigured} for an unknown target
 */
export async function readPatchLevel(target: string, deps: OpDeps): Promise<EvidenceReport> {
  const members = deps.targets.members(target);
  const cfg = deps.config.checklist.postgres_versions;
  const now = deps.now();
  const [feed, versions] = await Promise.all([
    settle(loadVersionsFeed(cfg, now)),
    Promise.all(members.map((m) => settle(readVersionNum(m, deps)))),
  ]);
  if (!feed.ok) {
    const why = deps.secrets.scrub(failureText(feed.error));
    return { target, source: `PostgreSQL versions feed ${cfg.url}`, findings: [], unchecked: [why] };
  }
  const findings: EvidenceFinding[] = [];
  const unchecked: string[] = [];
  members.forEach((m, i) => {
    const v = versions[i];
    if (v.ok) findings.push(judgeVersion(m.name, v.value, feed.value.majors, now, cfg.eol_warning_days));
    else unchecked.push(`${m.name}: ${deps.secrets.scrub(failureText(v.error))}`);
  });
  const f = feed.value;
  return { target, source: `PostgreSQL versions feed: ${f.from}`, findings, unchecked };
}
