/**
 * The tamper-evident audit log.
 *
 * Rows are appended under a transaction-scoped advisory lock, so concurrent writers (several bot replicas)
 * take turns and never fork the chain. Each row stores `prev_hash`, `hash = sha256(prev_hash + "\n" +
 * canonical(row))` (anyone can check the chain, offline too, and anchors pin it), and
 * `mac = HMAC-SHA-256(audit key, hash)` under the key named in `key_id` (core/keys.ts: a key kept outside
 * the state database). Whoever can write the table can edit a row and recompute every hash after it, but
 * not the MACs: {@link verifyChain} with the key names the first row whose MAC fails. Rows written before a
 * key was configured have no MAC; they are accepted only as the chain's first `audit_log.unkeyed_rows` rows
 * (a bound kept in the config, outside the database), never after a keyed one.
 * Values are scrubbed of registered secrets before they are written.
 *
 * @module
 */

import { createHash } from "node:crypto";
import type { Sql } from "postgres";
import type { Secrets } from "./log.ts";
import { transaction } from "./pg_tx.ts";
import type { IntegrityKeys } from "./keys.ts";
import { within } from "./within.ts";

/** Advisory lock key for appends: constant across replicas. */
/** The advisory lock appends take (exported for tests that hold it). */
export const AUDIT_LOCK = 0x61756469; // "audi"
/** Most rows written in one append transaction. */
const MAX_BATCH = 200;

/** An entry waiting to be written, and its caller's promise. */
interface PendingAppend {
  entry: AuditEntry;
  details: Record<string, unknown>;
  resolve(r: { seq: number; hash: string }): void;
  reject(e: unknown): void;
}

/** The predecessor hash of the first row. */
export const GENESIS_HASH = "0".repeat(64);

/** What one audit entry says. */
export interface AuditEntry {
  /** Slack user ID, `scheduler`, `alertmanager`, `cli:<name>` or `slack` (for refused forged requests). */
  actor: string;
  actorName?: string;
  /** What happened, e.g. `command.received`, `request.approved`, `op.started`. */
  action: string;
  target?: string;
  requestId?: number | bigint;
  /** `ok`, `refused`, `failed`, `succeeded`, ... */
  outcome: string;
  details?: Record<string, unknown>;
}

/** A stored row, as read back. */
export interface AuditRow {
  seq: number;
  at: string;
  actor: string;
  actor_name: string | null;
  action: string;
  target: string | null;
  request_id: number | null;
  outcome: string;
  details: Record<string, unknown>;
  prev_hash: string;
  hash: string;
  /** HMAC-SHA-256 of `hash` under the audit key `key_id` (core/keys.ts); null for rows from before a key. */
  mac?: string | null;
  /** The key that made `mac`. */
  key_id?: string | null;
}

/** The audit log's columns in table order: what an append writes, and what an export or CSV shows. */
export const AUDIT_COLUMNS = [
  "seq",
  "at",
  "actor",
  "actor_name",
  "action",
  "target",
  "request_id",
  "outcome",
  "details",
  "prev_hash",
  "hash",
  "mac",
  "key_id",
] as const satisfies readonly (keyof AuditRow)[];

/**
 * JSON with object keys sorted at every depth, so the same content always hashes the same, whatever the
 * key order jsonb hands back.
 * @example
 * canonicalJson({ b: 1, a: [true, null] }); // '{"a":[true,null],"b":1}'
 */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== "object") return JSON.stringify(value ?? null);
  if (Array.isArray(value)) {
    return `[${value.map((v) => canonicalJson(v === undefined ? null : v)).join(",")}]`;
  }
  const keys = Object.keys(value as Record<string, unknown>).filter((k) =>
    (value as Record<string, unknown>)[k] !== undefined
  ).sort();
  return `{${
    keys.map((k) => `${JSON.stringify(k)}:${canonicalJson((value as Record<string, unknown>)[k])}`).join(",")
  }}`;
}

/** The content that a row's hash covers (everything but the hashes). */
export function rowContent(r: Omit<AuditRow, "prev_hash" | "hash">): string {
  return canonicalJson({
    seq: Number(r.seq),
    at: new Date(r.at).toISOString(),
    actor: r.actor,
    actor_name: r.actor_name ?? null,
    action: r.action,
    target: r.target ?? null,
    request_id: r.request_id === null || r.request_id === undefined ? null : Number(r.request_id),
    outcome: r.outcome,
    details: r.details ?? {},
  });
}

/** sha256 hex of `prev + "\n" + content`. */
export function chainHash(prevHash: string, content: string): string {
  // Synchronous on purpose: a batch of 200 rows hashed with crypto.subtle awaited 200 times, each wait
  // queued behind the acks of a command burst, and the audit backlog (holding every request's context)
  // grew faster than it drained.
  return createHash("sha256").update(`${prevHash}\n${content}`, "utf8").digest("hex");
}

/**
 * Text as PostgreSQL stores it and hands it back unchanged: NUL (which text and jsonb refuse) and lone
 * surrogate halves (which jsonb refuses) become U+FFFD. Without this a hostile string in a command would
 * keep its row out of the log, or make a stored row hash differently from the one written.
 * @example
 * storableText("a\u0000b"); // "a\uFFFDb"
 */
export function storableText(s: string): string {
  return s.toWellFormed().replaceAll("\u0000", "\uFFFD");
}

/** Deep-copies `value` with every string (keys too) scrubbed of registered secrets and made storable. */
function scrubDeep(value: unknown, secrets: Secrets): unknown {
  if (typeof value === "string") return storableText(secrets.scrub(value));
  if (Array.isArray(value)) return value.map((v) => scrubDeep(v, secrets));
  if (value && typeof value === "object") {
    if (value instanceof Date) return value.toISOString();
    return Object.fromEntries(
      Object.entries(value).map(([k, v]) => [storableText(secrets.scrub(k)), scrubDeep(v, secrets)]),
    );
  }
  if (typeof value === "bigint") return Number(value);
  return value;
}

/** Appends to and verifies the audit log in the state database. */
export class AuditLog {
  constructor(
    private readonly sql: Sql,
    private readonly secrets: Secrets,
    private readonly now: () => Date = () => new Date(),
    /** The key that makes each new row's hash a MAC; without it rows are hashed with plain SHA-256. */
    readonly keys?: IntegrityKeys,
    /** How many first rows predate the key (config `audit_log.unkeyed_rows`); later MAC-less rows fail. */
    private readonly unkeyedRows = 0,
  ) {}

  /**
   * Called with each entry the database did not take, before its caller hears of it. The bot logs the whole
   * entry there (bot.ts): most callers have already answered (a command's entry is written after its ack)
   * and can only log, so with the state database down the log line is the one record of what happened.
   */
  onLost?: (entry: AuditEntry & { details: Record<string, unknown> }, error: unknown) => void;

  /** Entries waiting for the next batch, in arrival order. */
  #queue: PendingAppend[] = [];
  /** Entries of the batch being written now (taken off the queue, not yet committed). */
  #writing = 0;
  #draining?: Promise<void>;

  /**
   * Appends one entry and returns its sequence number and hash, once its row is committed.
   *
   * Appends are grouped: entries that arrive while a batch is being written go into the next one, which
   * takes the advisory lock once, reads the head once and inserts all its rows in one statement. Under a
   * burst of commands (each audited after its ack) one transaction per entry queued up behind the lock,
   * holding connections and memory; a batch keeps the log in step with the commands. Entries keep their
   * arrival order in the chain; an entry the database refuses fails alone (its batch is retried one by one).
   * @throws whatever the database throws; callers that must not fail on audit trouble log and continue
   */
  append(entry: AuditEntry): Promise<{ seq: number; hash: string }> {
    // Scrubbed now: the entry is recorded as it was when appended.
    const details = scrubDeep(entry.details ?? {}, this.secrets) as Record<string, unknown>;
    return new Promise((resolve, reject) => {
      this.#queue.push({ entry, details, resolve, reject });
      this.#kick();
    });
  }

  /**
   * Resolves once every entry appended so far is written (or has failed), or after `timeoutMs`; returns how
   * many entries were still waiting then. Shutdown calls it before closing the pool: a listener that queued
   * its entry does not wait for the row (holding a request's objects for as long as a batch takes).
   */
  async settled(timeoutMs = 10_000): Promise<number> {
    const deadline = Date.now() + timeoutMs;
    while (this.#draining && Date.now() < deadline) await within(this.#draining, deadline - Date.now());
    return this.#draining ? this.#queue.length + this.#writing : 0;
  }

  #kick(): void {
    if (this.#draining) return;
    this.#draining = this.#drain().finally(() => {
      this.#draining = undefined;
      // An entry that arrived after the last batch was taken, but before this callback, still gets written.
      if (this.#queue.length) this.#kick();
    });
  }

  async #drain(): Promise<void> {
    while (this.#queue.length) {
      const batch = this.#queue.splice(0, MAX_BATCH);
      this.#writing = batch.length;
      try {
        const written = await this.#write(batch);
        batch.forEach((p, i) => p.resolve(written[i]));
      } catch (err) {
        if (batch.length === 1) {
          this.#lost(batch[0], err);
          continue;
        }
        for (const p of batch) {
          try {
            p.resolve((await this.#write([p]))[0]);
          } catch (e) {
            this.#lost(p, e);
          }
        }
      } finally {
        this.#writing = 0;
      }
    }
  }

  #lost(p: PendingAppend, err: unknown): void {
    try {
      this.onLost?.({ ...p.entry, details: p.details }, err);
    } catch { /* a failing log line must not keep the caller from hearing of the failure */ }
    p.reject(err);
  }

  /** Writes `batch` as consecutive rows in one transaction under the append lock. */
  async #write(batch: PendingAppend[]): Promise<{ seq: number; hash: string }[]> {
    const text = (v: unknown) =>
      storableText(this.secrets.scrub(typeof v === "string" ? v : String(v ?? "")));
    return await transaction(this.sql, async (tx) => {
      await tx`select pg_advisory_xact_lock(${AUDIT_LOCK})`;
      const [last] = await tx<{ seq: string; hash: string }[]>`
        select seq, hash from bisman_ops.audit_log order by seq desc limit 1`;
      let seq = last ? Number(last.seq) : 0;
      let prev = last?.hash ?? GENESIS_HASH;
      const rows: Record<string, unknown>[] = [];
      const written: { seq: number; hash: string }[] = [];
      for (const { entry, details } of batch) {
        seq++;
        // Millisecond precision: what JavaScript's Date can represent, so a re-read row hashes the same.
        const at = new Date(Math.floor(this.now().getTime())).toISOString();
        const row = {
          seq,
          at,
          // Every column is a string as the hash saw it, whatever a malformed request put in the entry.
          actor: text(entry.actor) || "unknown",
          actor_name: typeof entry.actorName === "string" && entry.actorName ? text(entry.actorName) : null,
          action: text(entry.action),
          target: entry.target === undefined || entry.target === null ? null : text(entry.target),
          request_id: entry.requestId === undefined ? null : Number(entry.requestId),
          outcome: text(entry.outcome),
          details,
        };
        const hash = chainHash(prev, rowContent(row));
        const mac = this.keys ? this.keys.mac("audit", hash) : null;
        rows.push({ ...row, prev_hash: prev, hash, mac, key_id: this.keys?.currentId ?? null });
        written.push({ seq, hash });
        prev = hash;
      }
      // The batch travels as one JSON parameter: one statement text whatever the batch's size (a VALUES
      // list of 13 parameters a row made each size a statement of its own to parse and plan), and one value
      // for the driver to serialise instead of thirteen a row. The column lists are AUDIT_COLUMNS.
      await tx`
        insert into bisman_ops.audit_log
               (seq, at, actor, actor_name, action, target, request_id, outcome, details, prev_hash, hash, mac, key_id)
        select seq, at, actor, actor_name, action, target, request_id, outcome, details, prev_hash, hash, mac, key_id
          from jsonb_to_recordset(${tx.json(rows as never)}::jsonb) as r(
                 seq bigint, at timestamptz, actor text, actor_name text, action text, target text,
                 request_id bigint, outcome text, details jsonb, prev_hash text, hash text, mac text, key_id text)`;
      return written;
    });
  }

  /** Rows in chain order, optionally filtered to one request. */
  async rows(filter: { requestId?: number; sinceSeq?: number; limit?: number } = {}): Promise<AuditRow[]> {
    const rows = await this.sql<AuditRow[]>`
      select seq::int as seq, at, actor, actor_name, action, target, request_id::int as request_id, outcome,
             details, prev_hash, hash, mac, key_id
        from bisman_ops.audit_log
       where (${filter.requestId ?? null}::bigint is null or request_id = ${filter.requestId ?? null})
         and seq >= ${filter.sinceSeq ?? 1}
       order by seq
       limit ${filter.limit ?? 1_000_000}`;
    return rows.map((r) => ({ ...r, at: new Date(r.at).toISOString() }));
  }

  /** Walks the whole chain in batches; see {@link verifyChain}. */
  async verify(): Promise<ChainVerdict> {
    let prev = GENESIS_HASH;
    let expectedSeq = 1;
    let checked = 0;
    let unkeyed = 0;
    let keyedSeen = false;
    for (;;) {
      const batch = await this.rows({ sinceSeq: expectedSeq, limit: 5000 });
      if (!batch.length) break;
      const verdict = verifyChain(batch, {
        prevHash: prev,
        firstSeq: expectedSeq,
        keys: this.keys,
        keyedSeen,
        unkeyedRows: this.unkeyedRows,
      });
      if (!verdict.ok) return { ...verdict, checked: checked + verdict.checked };
      checked += batch.length;
      unkeyed += verdict.unkeyed ?? 0;
      keyedSeen = keyedSeen || batch.some((r) => r.key_id);
      prev = batch.at(-1)!.hash;
      expectedSeq = batch.at(-1)!.seq + 1;
    }
    return {
      ok: true,
      checked,
      unkeyed,
      keyed: !!this.keys,
      head: checked ? { seq: expectedSeq - 1, hash: prev } : undefined,
    };
  }
}

/** The outcome of walking the chain. */
export type ChainVerdict =
  | {
    ok: true;
    checked: number;
    head?: { seq: number; hash: string };
    /** Rows hashed without a key (written before one was set): a database owner could have rewritten them. */
    unkeyed?: number;
    /** Whether the keyed rows' MACs were checked (false: verified without the key, structure only). */
    keyed?: boolean;
  }
  | { ok: false; checked: number; seq: number; problem: string };

/** Where a verification starts and what it may check with. */
export interface ChainStart {
  /** The hash the first row must point at: the genesis hash, or an anchor's. */
  prevHash?: string;
  firstSeq?: number;
  /** The keys to check MACs with; without them keyed rows are checked for linkage only. */
  keys?: IntegrityKeys;
  /** Whether a keyed row came before these rows (then an unkeyed one is refused). */
  keyedSeen?: boolean;
  /**
   * With `keys`: how many first rows may carry no MAC (written before the key was set; default 0). Without
   * this bound, a writer without the key could strip every MAC and recompute the plain chain from row 1.
   */
  unkeyedRows?: number;
}

/**
 * Checks that rows form an unbroken chain starting after `start.prevHash` at `start.firstSeq`: consecutive,
 * each pointing at its predecessor's hash and matching its own. With `start.keys`, each row's MAC is
 * checked too (a row sealed with a key not held fails); without keys only the hashes are (then a rewrite
 * that recomputed every hash after the edit passes, and only an anchor or the key can tell). A row without
 * a MAC after one with a MAC fails either way: only a writer without the key would write one.
 * Pure: also used offline on an exported file.
 */
export function verifyChain(rows: AuditRow[], start: ChainStart = {}): ChainVerdict & { unkeyed?: number } {
  let prev = start.prevHash ?? GENESIS_HASH;
  let expected = start.firstSeq ?? 1;
  let keyedSeen = start.keyedSeen ?? false;
  let checked = 0;
  let unkeyed = 0;
  for (const r of rows) {
    const bad = (problem: string) => ({ ok: false as const, checked, seq: r.seq, problem });
    if (r.seq !== expected) {
      return {
        ok: false,
        checked,
        seq: expected,
        problem: `row ${expected} is missing (next row is ${r.seq})`,
      };
    }
    if (r.prev_hash !== prev) return bad(`row ${r.seq} does not point at the hash of row ${r.seq - 1}`);
    if (chainHash(prev, rowContent(r)) !== r.hash) {
      return bad(`row ${r.seq} was altered: its content no longer matches its hash`);
    }
    if (r.key_id) {
      keyedSeen = true;
      if (start.keys) {
        if (!start.keys.holds(r.key_id)) {
          return bad(
            `row ${r.seq} was sealed with key ${r.key_id}, which this bot does not hold (add it to BISMAN_SIGNING_KEYS_RETIRED)`,
          );
        }
        if (!start.keys.verify(r.key_id, "audit", r.hash, r.mac ?? "")) {
          return bad(
            `row ${r.seq} was altered and the chain recomputed after it: its MAC, which needs the bot's key, no longer matches`,
          );
        }
      }
    } else {
      if (keyedSeen) {
        return bad(
          `row ${r.seq} carries no MAC although earlier rows do: it was written by someone without the bot's key`,
        );
      }
      if (start.keys && r.seq > (start.unkeyedRows ?? 0)) {
        return bad(
          `row ${r.seq} carries no MAC, yet only the first ${
            start.unkeyedRows ?? 0
          } row(s) predate the key (audit_log.unkeyed_rows): the log was rewritten by someone without the bot's key`,
        );
      }
      unkeyed++;
    }
    prev = r.hash;
    expected++;
    checked++;
  }
  return {
    ok: true,
    checked,
    unkeyed,
    keyed: !!start.keys,
    head: rows.length ? { seq: rows.at(-1)!.seq, hash: prev } : undefined,
  };
}

// --- everyday use (issue 11): search, export, anchors ---

/** What `/bisman audit-log` searches for; every field narrows. */
export interface AuditSearch {
  actor?: string;
  /** An exact action, or a prefix when it ends with `*` (`request.*`). */
  action?: string;
  target?: string;
  requestId?: number;
  since?: Date;
  until?: Date;
  limit: number;
}

/** A row the chain holds at a known position: posted to the ops channel so later deletions show. */
export interface Anchor {
  seq: number;
  hash: string;
}

/**
 * Parses `<row>:<hash>` (the form the anchor job posts).
 * @example
 * parseAnchor("12:" + "ab".repeat(32)); // { seq: 12, hash: "abab..." }
 */
export function parseAnchor(text: string): Anchor | undefined {
  const m = /^#?([1-9][0-9]{0,15}):([0-9a-f]{64})$/.exec(text.trim().toLowerCase());
  return m ? { seq: Number(m[1]), hash: m[2] } : undefined;
}

/** The outcome of checking an anchor against the chain. */
export type AnchorVerdict =
  | { ok: true; seq: number; head: Anchor; checked: number }
  | { ok: false; seq: number; problem: string; head?: Anchor; checked: number };

/**
 * Checks an anchor against the row the chain holds at its position (`row` undefined: no such row). Pure.
 * A chain that verifies but no longer reaches the anchor's row lost its newest rows: the chain alone cannot
 * see that, the anchor can.
 */
export function checkAnchor(anchor: Anchor, row: Pick<AuditRow, "seq" | "hash"> | undefined, head?: Anchor) {
  if (!row) {
    return {
      ok: false as const,
      problem: head
        ? `row ${anchor.seq} is gone: the log now ends at row ${head.seq}, so rows ${
          head.seq + 1
        }\u2026${anchor.seq} (at least) were deleted`
        : `row ${anchor.seq} is gone: the log is empty`,
    };
  }
  if (row.hash !== anchor.hash) {
    return {
      ok: false as const,
      problem: `row ${anchor.seq}'s hash is now ${row.hash.slice(0, 16)}\u2026, the anchor says ${
        anchor.hash.slice(0, 16)
      }\u2026: the log was rewritten from that row back`,
    };
  }
  return { ok: true as const };
}

/** Searches the bot's own audit log, newest first. */
export async function searchAuditLog(sql: Sql, q: AuditSearch): Promise<AuditRow[]> {
  const prefix = q.action?.endsWith("*") ? q.action.slice(0, -1) : undefined;
  const exact = q.action && !prefix ? q.action : undefined;
  const rows = await sql<AuditRow[]>`
    select seq::int as seq, at, actor, actor_name, action, target, request_id::int as request_id, outcome,
           details, prev_hash, hash, mac, key_id
      from bisman_ops.audit_log
     where (${q.actor ?? null}::text is null or actor = ${q.actor ?? null})
       and (${exact ?? null}::text is null or action = ${exact ?? null})
       and (${prefix ?? null}::text is null or starts_with(action, ${prefix ?? null}))
       and (${q.target ?? null}::text is null or target = ${q.target ?? null})
       and (${q.requestId ?? null}::bigint is null or request_id = ${q.requestId ?? null})
       and (${q.since ?? null}::timestamptz is null or at >= ${q.since ?? null})
       and (${q.until ?? null}::timestamptz is null or at < ${q.until ?? null})
     order by seq desc
     limit ${q.limit}`;
  return rows.map((r) => ({ ...r, at: new Date(r.at).toISOString() }));
}

/** The newest row's position and hash (what an anchor records), or undefined for an empty log. */
export async function auditHead(sql: Sql): Promise<Anchor | undefined> {
  const [r] = await sql<{ seq: number; hash: string }[]>`
    select seq::int as seq, hash from bisman_ops.audit_log order by seq desc limit 1`;
  return r ? { seq: r.seq, hash: r.hash } : undefined;
}

/** One row by position. */
export async function auditRowAt(sql: Sql, seq: number): Promise<AuditRow | undefined> {
  const [r] = await sql<AuditRow[]>`
    select seq::int as seq, at, actor, actor_name, action, target, request_id::int as request_id, outcome,
           details, prev_hash, hash, mac, key_id
      from bisman_ops.audit_log where seq = ${seq}`;
  return r ? { ...r, at: new Date(r.at).toISOString() } : undefined;
}

/**
 * Proves the log still holds the anchor's row with the anchor's hash, and that the chain up to the head is
 * unbroken. Names what is wrong otherwise.
 */
export async function verifyAnchor(log: AuditLog, sql: Sql, anchor: Anchor): Promise<AnchorVerdict> {
  const chain = await log.verify();
  if (!chain.ok) {
    return { ok: false, seq: chain.seq, problem: chain.problem, checked: chain.checked };
  }
  const head = chain.head;
  const row = await auditRowAt(sql, anchor.seq);
  const c = checkAnchor(anchor, row, head);
  if (!c.ok) return { ok: false, seq: anchor.seq, problem: c.problem, head, checked: chain.checked };
  return { ok: true, seq: anchor.seq, head: head!, checked: chain.checked };
}

/** Rows in chain order from `sinceSeq` (or from the first row at or after `since`), in batches. */
export async function* exportAuditRows(
  sql: Sql,
  opts: { since?: Date; batch?: number } = {},
): AsyncGenerator<AuditRow[]> {
  let from = 1;
  if (opts.since) {
    const [r] = await sql<{ seq: number | null }[]>`
      select min(seq)::int as seq from bisman_ops.audit_log where at >= ${opts.since}`;
    if (r.seq === null) return;
    from = r.seq;
  }
  const batch = opts.batch ?? 5000;
  for (;;) {
    const rows = await sql<AuditRow[]>`
      select seq::int as seq, at, actor, actor_name, action, target, request_id::int as request_id, outcome,
             details, prev_hash, hash, mac, key_id
        from bisman_ops.audit_log where seq >= ${from} order by seq limit ${batch}`;
    if (!rows.length) return;
    yield rows.map((r) => ({ ...r, at: new Date(r.at).toISOString() }));
    from = rows.at(-1)!.seq + 1;
  }
}

/** One exported row as a JSON line: its content, its hash and its predecessor's. */
export function exportLine(r: AuditRow): string {
  return JSON.stringify({
    seq: r.seq,
    at: r.at,
    actor: r.actor,
    actor_name: r.actor_name,
    action: r.action,
    target: r.target,
    request_id: r.request_id,
    outcome: r.outcome,
    details: r.details,
    prev_hash: r.prev_hash,
    hash: r.hash,
    mac: r.mac ?? null,
    key_id: r.key_id ?? null,
  });
}

/** The outcome of verifying an exported file offline. */
export type ExportVerdict =
  | {
    ok: true;
    rows: number;
    first?: number;
    head?: Anchor;
    anchor?: "held";
    /** Whether the keyed rows' MACs were checked (a key was given). */
    keyed?: boolean;
    /** Rows hashed without a key. */
    unkeyed?: number;
  }
  | { ok: false; rows: number; seq?: number; line?: number; problem: string };

/**
 * Verifies an export (JSON lines from {@link exportLine}) without the database: every line parses, rows are
 * consecutive, each points at its predecessor's hash and matches its own (keyed rows checked with `keys`
 * when given), and the start is proven: an export from row 1 starts at the genesis hash; one that starts
 * later must hold the `anchor`'s row (an anchor pins every row up to it, since each hash covers its
 * predecessor's). The file's own first `prev_hash` is never trusted as a starting point. Names the row (and
 * line) that fails. Pure.
 */
export function verifyExport(
  text: string,
  anchor?: Anchor,
  keys?: IntegrityKeys,
  unkeyedRows = 0,
): ExportVerdict {
  const lines = text.split("\n");
  const rows: AuditRow[] = [];
  let lineNo = 0;
  for (const raw of lines) {
    lineNo++;
    if (!raw.trim()) continue;
    const expected = rows.length ? rows.at(-1)!.seq + 1 : undefined;
    let parsed: unknown;
    try {
      parsed = JSON.parse(raw);
    } catch {
      return {
        ok: false,
        rows: rows.length,
        line: lineNo,
        seq: expected,
        problem: `line ${lineNo}${
          expected ? ` (row ${expected})` : ""
        } is not valid JSON: the file was altered`,
      };
    }
    const r = parsed as AuditRow;
    if (
      typeof r !== "object" || r === null || typeof r.seq !== "number" || typeof r.hash !== "string" ||
      typeof r.prev_hash !== "string"
    ) {
      return {
        ok: false,
        rows: rows.length,
        line: lineNo,
        seq: expected,
        problem: `line ${lineNo}${expected ? ` (row ${expected})` : ""} is not an audit row`,
      };
    }
    rows.push(r);
  }
  if (!rows.length) {
    return anchor
      ? { ok: false, rows: 0, seq: anchor.seq, problem: `the file holds no rows, so not row ${anchor.seq}` }
      : { ok: true, rows: 0 };
  }
  const first = rows[0];
  if (first.seq === 1 && first.prev_hash !== GENESIS_HASH) {
    return { ok: false, rows: 0, seq: 1, line: 1, problem: "row 1 does not start at the genesis hash" };
  }
  if (first.seq !== 1 && !anchor) {
    return {
      ok: false,
      rows: 0,
      seq: first.seq,
      problem:
        `the file starts at row ${first.seq}, not row 1: only an anchor (--anchor <row>:<hash>) at or ` +
        `after that row can prove its start; its own first prev_hash proves nothing`,
    };
  }
  const v = verifyChain(rows, { prevHash: first.prev_hash, firstSeq: first.seq, keys, unkeyedRows });
  if (!v.ok) {
    const line = lines.findIndex((l) => l.includes(`"seq":${v.seq},`)) + 1;
    return { ok: false, rows: v.checked, seq: v.seq, line: line || undefined, problem: v.problem };
  }
  if (anchor) {
    if (anchor.seq < first.seq) {
      return {
        ok: false,
        rows: rows.length,
        seq: anchor.seq,
        problem:
          `the file starts at row ${first.seq}, after the anchor's row ${anchor.seq}: export from an earlier time`,
      };
    }
    const row = rows.find((r) => r.seq === anchor.seq);
    const c = checkAnchor(anchor, row, v.head);
    if (!c.ok) return { ok: false, rows: rows.length, seq: anchor.seq, problem: c.problem };
    return {
      ok: true,
      rows: rows.length,
      first: first.seq,
      head: v.head,
      anchor: "held",
      keyed: !!keys,
      unkeyed: v.unkeyed,
    };
  }
  return { ok: true, rows: rows.length, first: first.seq, head: v.head, keyed: !!keys, unkeyed: v.unkeyed };
}
