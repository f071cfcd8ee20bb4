/**
 * Seals: what a request row and an approval row said when the bot wrote them, authenticated with a key
 * that is not in the state database (core/keys.ts). Whoever can write `bisman_ops.requests` can change a
 * pending request's plan, target, arguments, approvals needed or policy, or insert approvals; without the
 * key they cannot make a matching seal, so the gate refuses the request instead of running what it was
 * changed into (`plan_tampered`).
 *
 * A request's seal holds a digest of each field that decides what runs or what the approver is shown, and
 * a MAC over the row's ID and those digests, so a broken seal names the fields that changed. An approval's
 * seal binds the approver, the time and the plan hash their click carried to the request's seal.
 *
 * @module
 */

import { createHash } from "node:crypto";
import { canonicalJson } from "../core/audit.ts";
import type { IntegrityKeys } from "../core/keys.ts";
import type { ApprovalRow, RequestRow } from "./store.ts";

/** The fields of a request that a seal covers: everything that changes what runs or what is shown. */
export const SEALED_FIELDS = [
  "action",
  "target",
  "args",
  "plan",
  "plan_hash",
  "notes",
  "approvals_needed",
  "policy",
  "requester_id",
  "via",
  "created_at",
  "expires_at",
  "pre_backup",
] as const;

/** One sealed field's name. */
export type SealedField = typeof SEALED_FIELDS[number];

/** A request's seal as stored in `requests.seal`. */
export interface RequestSeal {
  v: 1;
  /** The key that made `mac` (core/keys.ts key ID). */
  key: string;
  /** Short SHA-256 of each sealed field's canonical JSON. */
  fields: Record<SealedField, string>;
  mac: string;
}

/** The sealed content of a request, as the row holds it or as it is about to be inserted. */
export type Sealable = Pick<RequestRow, "id" | SealedField>;

function digest(value: unknown): string {
  return createHash("sha256").update(canonicalJson(value ?? null), "utf8").digest("hex").slice(0, 32);
}

function normal(field: SealedField, row: Sealable): unknown {
  const v = row[field] as unknown;
  if (v instanceof Date) return v.toISOString();
  if (field === "pre_backup") return v ?? null;
  return v ?? null;
}

function fieldDigests(row: Sealable): Record<SealedField, string> {
  return Object.fromEntries(SEALED_FIELDS.map((f) => [f, digest(normal(f, row))])) as Record<
    SealedField,
    string
  >;
}

function macInput(id: number, fields: Record<string, string>): string {
  return canonicalJson({ v: 1, id: Number(id), fields });
}

/** Seals a request row with the current key. */
export function sealRequest(keys: IntegrityKeys, row: Sealable): RequestSeal {
  const fields = fieldDigests(row);
  return { v: 1, key: keys.currentId, fields, mac: keys.mac("request", macInput(row.id, fields)) };
}

/** What checking a seal found. */
export type SealCheck = { ok: true } | { ok: false; fields: string[]; problem: string; retired?: true };

/**
 * Checks a request row against its seal: the seal's MAC, then each field's digest.
 * @returns ok, or the fields that no longer match and a sentence naming them
 */
export function checkRequestSeal(keys: IntegrityKeys, row: Sealable & { seal?: unknown }): SealCheck {
  const seal = row.seal as Partial<RequestSeal> | null | undefined;
  if (!seal || typeof seal !== "object" || seal.v !== 1 || typeof seal.key !== "string" || !seal.fields) {
    return { ok: false, fields: ["seal"], problem: "it carries no seal made by the bot" };
  }
  if (!keys.holds(seal.key)) {
    return {
      ok: false,
      fields: ["seal"],
      problem: `it was sealed with key ${seal.key}, which this bot does not hold`,
    };
  }
  // A key is retired because it may have leaked: it still proves history (the audit chain), never a
  // decision still to be made, or its holder could re-seal a pending request (one approval fewer).
  if (seal.key !== keys.currentId) {
    return {
      ok: false,
      fields: ["seal"],
      retired: true,
      problem: `it was sealed with key ${seal.key}, which is retired (BISMAN_SIGNING_KEYS_RETIRED): ` +
        "a retired key proves past rows, not a pending request",
    };
  }
  if (
    typeof seal.mac !== "string" || !keys.verify(seal.key, "request", macInput(row.id, seal.fields), seal.mac)
  ) {
    return { ok: false, fields: ["seal"], problem: "its seal was altered or moved from another request" };
  }
  const now = fieldDigests(row);
  const changed = SEALED_FIELDS.filter((f) => seal.fields![f] !== now[f]);
  if (changed.length) {
    return {
      ok: false,
      fields: changed,
      problem: `${changed.join(", ")} ${
        changed.length === 1 ? "was" : "were"
      } changed after the bot sealed it`,
    };
  }
  return { ok: true };
}

/** An approval as sealed: who, when, which plan they saw, bound to the request's seal. */
export interface SealableApproval {
  requestId: number;
  approver: string;
  at: Date;
  planHash: string;
  requestMac: string;
}

function approvalInput(a: SealableApproval): string {
  return canonicalJson({
    v: 1,
    request: Number(a.requestId),
    approver: a.approver,
    at: a.at.toISOString(),
    plan_hash: a.planHash,
    request_mac: a.requestMac,
  });
}

/** Seals one approval with the current key: `<key id>:<hex mac>`. */
export function sealApproval(keys: IntegrityKeys, a: SealableApproval): string {
  return `${keys.currentId}:${keys.mac("approval", approvalInput(a))}`;
}

/** Whether an approval row's seal is the bot's, under its current key, for this request and this plan hash. */
export function checkApprovalSeal(
  keys: IntegrityKeys,
  row: ApprovalRow,
  request: { id: number; seal: RequestSeal },
): boolean {
  const [key, mac] = (row.seal ?? "").split(":");
  // The current key only: a retired key may have leaked (see checkRequestSeal).
  if (!key || !mac || !row.plan_hash || key !== keys.currentId) return false;
  return keys.verify(
    key,
    "approval",
    approvalInput({
      requestId: request.id,
      approver: row.approver,
      at: row.at,
      planHash: row.plan_hash,
      requestMac: request.seal.mac,
    }),
    mac,
  );
}
