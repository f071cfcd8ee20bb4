/**
 * The tamper-evident audit log.
 *
 * Rows are appended under a transaction-scoped advisory lock, so concurrent writers (several bot replicas)
 * take turns and never fork the chain. Each row stores `prev_hash` and
 * `hash = sha256(prev_hash + "\n" + canonical(row))`; {@link verifyChain} recomputes them and names the
 * first row that does not match. Values are scrubbed of registered secrets before they are written.
 *
 * @module
 */

import type { Sql } from "postgres";
import type { Secrets } from "./log.ts";

/** Advisory lock key for appends: constant across replicas. */
const AUDIT_LOCK = 0x61756469; // "audi"
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
  /** `ok`, `refused`, `failed`, `succeeded`, … */
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
}

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
export async function chainHash(prevHash: string, content: string): Promise<string> {
  const bytes = new TextEncoder().encode(`${prevHash}\n${content}`);
  const digest = await crypto.subtle.digest("SHA-256", bytes);
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

/** Deep-copies `value` with every string scrubbed of registered secrets. */
function scrubDeep(value: unknown, secrets: Secrets): unknown {
  if (typeof value === "string") return secrets.scrub(value);
  if (Array.isArray(value)) return value.map((v) => scrubDeep(v, secrets));
  if (value && typeof value === "object") {
    if (value instanceof Date) return value.toISOString();
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, scrubDeep(v, secrets)]));
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
  ) {}

  /**
   * Appends one entry and returns its sequence number and hash.
   * @throws whatever the database throws; callers that must not fail on audit trouble log and continue
   */
  async append(entry: AuditEntry): Promise<{ seq: number; hash: string }> {
    const details = scrubDeep(entry.details ?? {}, this.secrets) as Record<string, unknown>;
    return await this.sql.begin(async (tx) => {
      await tx`select pg_advisory_xact_lock(${AUDIT_LOCK})`;
      const [last] = await tx<{ seq: string; hash: string }[]>`
        select seq, hash from bisman_ops.audit_log order by seq desc limit 1`;
      const seq = last ? Number(last.seq) + 1 : 1;
      const prev = last?.hash ?? GENESIS_HASH;
      // Millisecond precision: what JavaScript's Date can represent, so a re-read row hashes the same.
      const at = new Date(Math.floor(this.now().getTime())).toISOString();
      const row = {
        seq,
        at,
        actor: this.secrets.scrub(entry.actor),
        actor_name: entry.actorName ? this.secrets.scrub(entry.actorName) : null,
        action: entry.action,
        target: entry.target ?? null,
        request_id: entry.requestId === undefined ? null : Number(entry.requestId),
        outcome: entry.outcome,
        details,
      };
      const hash = await chainHash(prev, rowContent(row));
      await tx`
        insert into bisman_ops.audit_log
          (seq, at, actor, actor_name, action, target, request_id, outcome, details, prev_hash, hash)
        values (${seq}, ${at}, ${row.actor}, ${row.actor_name}, ${row.action}, ${row.target},
                ${row.request_id}, ${row.outcome}, ${tx.json(details as never)}, ${prev}, ${hash})`;
      return { seq, hash };
    });
  }

  /** Rows in chain order, optionally filtered to one request. */
  async rows(filter: { requestId?: number; sinceSeq?: number; limit?: number } = {}): Promise<AuditRow[]> {
    const rows = await this.sql<AuditRow[]>`
      select seq::int as seq, at, actor, actor_name, action, target, request_id::int as request_id, outcome,
             details, prev_hash, hash
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
    for (;;) {
      const batch = await this.rows({ sinceSeq: expectedSeq, limit: 5000 });
      if (!batch.length) break;
      const verdict = await verifyChain(batch, prev, expectedSeq);
      if (!verdict.ok) return { ...verdict, checked: checked + verdict.checked };
      checked += batch.length;
      prev = batch.at(-1)!.hash;
      expectedSeq = batch.at(-1)!.seq + 1;
    }
    return { ok: true, checked, head: checked ? { seq: expectedSeq - 1, hash: prev } : undefined };
  }
}

/** The outcome of walking the chain. */
export type ChainVerdict =
  | { ok: true; checked: number; head?: { seq: number; hash: string } }
  | { ok: false; checked: number; seq: number; problem: string };

/**
 * Checks that rows form an unbroken chain starting after `prevHash` at `firstSeq`.
 * Pure: also used offline on an exported file.
 */
export async function verifyChain(
  rows: AuditRow[],
  prevHash = GENESIS_HASH,
  firstSeq = 1,
): Promise<ChainVerdict> {
  let prev = prevHash;
  let expected = firstSeq;
  let checked = 0;
  for (const r of rows) {
    if (r.seq !== expected) {
      return {
        ok: false,
        checked,
        seq: expected,
        problem: `row ${expected} is missing (next row is ${r.seq})`,
      };
    }
    if (r.prev_hash !== prev) {
      return {
        ok: false,
        checked,
        seq: r.seq,
        problem: `row ${r.seq} does not point at the hash of row ${r.seq - 1}`,
      };
    }
    const hash = await chainHash(prev, rowContent(r));
    if (hash !== r.hash) {
      return {
        ok: false,
        checked,
        seq: r.seq,
        problem: `row ${r.seq} was altered: its content no longer matches its hash`,
      };
    }
    prev = r.hash;
    expected++;
    checked++;
  }
  return { ok: true, checked, head: rows.length ? { seq: rows.at(-1)!.seq, hash: prev } : undefined };
}
