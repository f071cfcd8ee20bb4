/**
 * Credential ages: for each role mapped in a target's config, its Vault key and how old its current
 * password is, from Vault's version history, against `credential_max_age_days` (the seed's 90 days).
 * Read-only; the scheduler's daily check, the digest and `/bisman creds` call {@link readCredentialAges}.
 *
 * A role's age is the time of the version in which its key got its current value. Where several roles
 * share one secret, each rotation writes a new version of the whole secret, so the newest version's time
 * says nothing about the others: the versions' data are walked back to find where each key's value first
 * appeared. The earliest kept version holding the current value wins, so a value that was written back
 * after a failed rotation keeps its true age. When even the oldest kept version holds it, the age is a
 * lower bound (`atLeast`).
 *
 * @module
 */

import { NotConfigured, OpsError } from "../core/errors.ts";
import { requireVault } from "../core/vault.ts";
import type { OpDeps } from "./types.ts";
import { CREDENTIAL_HELP, RUNBOOK_SERIES } from "./_runbook_metrics.ts";
import type { Metrics } from "../core/metrics.ts";
import { own } from "../core/lookup.ts";

/** One role's credential age. */
export interface CredentialAge {
  target: string;
  role: string;
  /** `<mount>/<path>#<key>` */
  ref: string;
  /** The secret's current version (0 when absent). */
  currentVersion: number;
  /** The version whose time is the password's birth. */
  sinceVersion?: number;
  /** ISO time the current password was written to Vault. */
  changedAt?: string;
  ageDays?: number;
  /** True when the history does not reach back to the change (older versions were pruned or deleted). */
  atLeast: boolean;
  maxAgeDays: number;
  /** Older than `credential_max_age_days`. */
  overdue: boolean;
  /** Why the age is unknown (no such key, Vault unreachable, ...); never a secret. */
  error?: string;
}

const DAY_MS = 86_400_000;

/**
 * Reads every mapped role's credential age for `target`. One Vault failure marks the roles of that
 * secret with `error`; it never hides the others.
 * @throws {NotConfigured} when Vault is not configured or the target is unknown
 */
export async function readCredentialAges(target: string, deps: OpDeps): Promise<CredentialAge[]> {
  const vault = requireVault(deps);
  const t = own(deps.config.targets, target);
  if (!t) {
    throw new NotConfigured(
      `Unknown target "${target}": configured targets are ${Object.keys(deps.config.targets).join(", ")}`,
    );
  }
  const mount = t.vault.kv_mount;
  const maxAgeDays = t.credential_max_age_days;
  const now = deps.now().getTime();
  const byPath = new Map<string, [string, string][]>();
  for (const [role, m] of Object.entries(t.roles)) {
    byPath.set(m.path, [...(byPath.get(m.path) ?? []), [role, m.key]]);
  }
  const out: CredentialAge[] = [];
  for (const [path, roles] of byPath) {
    const base = (role: string, key: string) => ({
      target,
      role,
      ref: `${mount}/${path}#${key}`,
      maxAgeDays,
      atLeast: false,
      currentVersion: 0,
    });
    try {
      const meta = await vault.metadata(path, { mount });
      // Versions that can still be read, newest first.
      const live = meta.versions.filter((v) => !v.destroyed && !v.deletionTime).map((v) => v.version)
        .sort((a, b) => b - a);
      if (!live.length || live[0] !== meta.currentVersion) {
        for (const [role, key] of roles) {
          out.push({
            ...base(role, key),
            currentVersion: meta.currentVersion,
            overdue: false,
            error: "the current version is deleted",
          });
        }
        continue;
      }
      const data = new Map<number, { data: Record<string, string>; createdTime: string }>();
      const read = async (v: number) => {
        if (!data.has(v)) data.set(v, await vault.readVersion(path, v, { mount }));
        return data.get(v)!;
      };
      const current = await read(meta.currentVersion);
      for (const [role, key] of roles) {
        const value = own(current.data, key);
        if (value === undefined) {
          out.push({
            ...base(role, key),
            currentVersion: meta.currentVersion,
            overdue: false,
            error: "no such key in the current version",
          });
          continue;
        }
        // Walk back while the history is unbroken (a deleted version ends it) and note the earliest hit.
        let since = meta.currentVersion;
        let oldest = meta.currentVersion;
        for (const v of live.slice(1)) {
          if (v !== oldest - 1) break;
          oldest = v;
          if (own((await read(v)).data, key) === value) since = v;
        }
        // The value may be older than the oldest readable version, unless that is version 1.
        const atLeast = since === oldest && since > 1;
        const changedAt = (await read(since)).createdTime;
        const ageDays = (now - new Date(changedAt).getTime()) / DAY_MS;
        out.push({
          ...base(role, key),
          currentVersion: meta.currentVersion,
          sinceVersion: since,
          changedAt,
          ageDays: Math.max(0, Math.floor(ageDays * 10) / 10),
          atLeast,
          overdue: ageDays > maxAgeDays,
        });
      }
    } catch (err) {
      const why = err instanceof OpsError ? err.userMessage : "Vault read failed";
      if (!(err instanceof OpsError)) {
        deps.log.warn("credential age read failed", { target, path, error: err });
      }
      for (const [role, key] of roles) out.push({ ...base(role, key), overdue: false, error: why });
    }
  }
  out.sort((a, b) => a.role.localeCompare(b.role));
  recordCredentialAges(deps.metrics, out);
  return out;
}

/** After a credential-age check: when each role's password was set; a role whose age is unknown has none. */
export function recordCredentialAges(metrics: Metrics | undefined, ages: CredentialAge[]): void {
  if (!metrics) return;
  for (const a of ages) {
    const labels = { target: a.target, role: a.role };
    if (a.changedAt && !a.error) {
      metrics.set(RUNBOOK_SERIES.credentialChanged, labels, Date.parse(a.changedAt) / 1000, CREDENTIAL_HELP);
    } else metrics.remove(RUNBOOK_SERIES.credentialChanged, labels);
  }
}
