/**
 * Whether each server of a target answers, its version and whether it is a primary or a standby.
 *
 * @module
 */

import { z } from "zod";
import type { OpDeps } from "./types.ts";
import { type TargetMember, unreachable } from "../core/targets.ts";

/** One server's state. */
export interface MemberStatus {
  target: string;
  member: string;
  configuredRole: "primary" | "replica";
  address: string;
  reachable: boolean;
  /** What the server says it is: `primary` when not in recovery, else `standby`. */
  actualRole?: "primary" | "standby";
  serverVersion?: string;
  latencyMs?: number;
  error?: string;
}

export const serverStatusArgs = z.object({ targets: z.array(z.string()) });

/** Asks one server; never throws (an unreachable server is a finding). */
export async function readMemberStatus(m: TargetMember, deps: OpDeps): Promise<MemberStatus> {
  const base = {
    target: m.target,
    member: m.name,
    configuredRole: m.role,
    address: `${m.conn.host}:${m.conn.port}`,
  };
  const started = performance.now();
  try {
    const sql = await deps.targets.pool(m.target, m.name);
    const [row] = await sql<{ server_version: string; in_recovery: boolean }[]>`
      select current_setting('server_version') as server_version, pg_is_in_recovery() as in_recovery`;
    return {
      ...base,
      reachable: true,
      actualRole: row.in_recovery ? "standby" : "primary",
      serverVersion: row.server_version,
      latencyMs: Math.round(performance.now() - started),
    };
  } catch (err) {
    deps.log.warn("target member does not answer", { target: m.target, member: m.name, error: err });
    return { ...base, reachable: false, error: deps.secrets.scrub(unreachable(m, err).userMessage) };
  }
}

/** Status of every member of the given targets, asked concurrently. */
export async function readServerStatus(targets: string[], deps: OpDeps): Promise<MemberStatus[]> {
  const members = targets.flatMap((t) => deps.targets.members(t));
  return await Promise.all(members.map((m) => readMemberStatus(m, deps)));
}
