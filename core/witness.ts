/**
 * The audit log's witness: somewhere outside the state database that the bot can add anchors to (its chain's
 * head: row and hash) but cannot change or remove afterwards. A hash chain cannot notice that its newest rows
 * were deleted; the newest anchor in the witness can. Vault is the witness here: each anchor is a new KV v2
 * entry `<path>/<row, 16 digits>` written with check-and-set 0 (create only), under a policy that grants the
 * bot `create`, `read` and `list` there and nothing else, so neither the bot's token nor a copy of it can
 * overwrite, delete or destroy an anchor once written (https://developer.hashicorp.com/vault/docs/secrets/kv/kv-v2:
 * "honors the distinction between the create and update capabilities").
 *
 * @module
 */

import type { Anchor } from "./audit.ts";
import { type VaultClient, VaultError } from "./vault.ts";

/** An anchor as the witness holds it. */
export interface WitnessedAnchor extends Anchor {
  /** When it was written (ISO). */
  at: string;
}

/** Where anchors go and come back from. */
export interface AuditWitness {
  /** Where it is, in words (`Vault secret/bisman/audit-anchors`). */
  readonly where: string;
  /** Adds an anchor. @throws when the witness refuses or cannot be reached */
  record(anchor: WitnessedAnchor): Promise<void>;
  /** The anchor of the highest row it holds, or undefined when it holds none. */
  newest(): Promise<WitnessedAnchor | undefined>;
  /**
   * Records that approval request `requestId` started its run at audit row `a` (its `op.started`), once.
   * The gate refuses to start a request the witness holds a run of: in the state database the request's
   * state and its newest audit rows can be set back, here nothing can.
   * @throws when the witness refuses or cannot be reached
   */
  recordRun(requestId: number, a: WitnessedAnchor): Promise<void>;
  /** The run record of request `requestId`, or undefined when the witness holds none. @throws when unreachable */
  runOf(requestId: number): Promise<WitnessedAnchor | undefined>;
}

/** The entry name of a request's run record: `runs/<request ID, zero-padded>` (not an anchor: no 16-digit name). */
export function runKey(requestId: number): string {
  return `runs/${String(requestId).padStart(16, "0")}`;
}

/** The entry name of an anchor: its row number, zero-padded so names sort as numbers. */
export function anchorKey(seq: number): string {
  return String(seq).padStart(16, "0");
}

/** The Vault KV v2 witness. */
export class VaultWitness implements AuditWitness {
  readonly where: string;

  constructor(private readonly vault: VaultClient, private readonly opts: { path: string; mount: string }) {
    this.where = `Vault ${opts.mount}/${opts.path}`;
  }

  async record(a: WitnessedAnchor): Promise<void> {
    await this.vault.createRecord(
      `${this.opts.path}/${anchorKey(a.seq)}`,
      { seq: String(a.seq), hash: a.hash, at: a.at },
      { mount: this.opts.mount },
    );
  }

  async recordRun(requestId: number, a: WitnessedAnchor): Promise<void> {
    await this.vault.createRecord(
      `${this.opts.path}/${runKey(requestId)}`,
      { request: String(requestId), seq: String(a.seq), hash: a.hash, at: a.at },
      { mount: this.opts.mount },
    );
  }

  async runOf(requestId: number): Promise<WitnessedAnchor | undefined> {
    let s;
    try {
      s = await this.vault.readRecord(`${this.opts.path}/${runKey(requestId)}`, { mount: this.opts.mount });
    } catch (err) {
      if (err instanceof VaultError && err.reason === "not_found") return undefined;
      throw err;
    }
    return { seq: Number(s.data.seq), hash: String(s.data.hash ?? ""), at: String(s.data.at ?? "") };
  }

  async newest(): Promise<WitnessedAnchor | undefined> {
    const keys = (await this.vault.list(this.opts.path, { mount: this.opts.mount }))
      .filter((k) => /^\d{16}$/.test(k)).sort();
    const last = keys.at(-1);
    if (!last) return undefined;
    const s = await this.vault.readRecord(`${this.opts.path}/${last}`, { mount: this.opts.mount });
    const seq = Number(s.data.seq);
    const hash = String(s.data.hash ?? "");
    if (!Number.isSafeInteger(seq) || seq !== Number(last) || !/^[0-9a-f]{64}$/.test(hash)) {
      throw new Error(`The witness entry ${this.where}/${last} is not an anchor`);
    }
    return { seq, hash, at: String(s.data.at ?? "") };
  }
}
