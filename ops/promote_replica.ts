/**
 * Promotes a streaming replica to primary (`SELECT pg_promote(true, 60)`): the seed's answer to a
 * replication failure. Destructive, approval policy `promote_replica` (2 approvals unless config says
 * otherwise).
 *
 * The plan shows the replica's lag and replay position and whether the old primary still answers. If it does,
 * promoting makes two primaries that both accept writes (split brain): the plan warns loudly and says to fence
 * the old primary first. The bot does not fence it itself: how (stop the server, block the port, change the
 * load balancer) depends on the deployment and must be a human's decision.
 *
 * Fingerprint: the replica's role (standby), its timeline and replay LSN. revalidate() refuses when the replica
 * is no longer a standby, changed timeline, or replayed less than at plan time (not the same standby); a replay
 * position that moved forward still holds, because the replica then has more of the primary's data, never less.
 *
 * @module
 */

import { z } from "zod";
import type { OpDeps, Operation, PlanBase, Reconciled } from "./types.ts";
import { InvalidInput, OpsError, StepFailed } from "../core/errors.ts";
import type { TargetMember } from "../core/targets.ts";
import { targetFailure } from "./_pg_errors.ts";
import { failpoint } from "../core/failpoint.ts";
import { formatBytes, formatSeconds, readReplicationLag, type Severity } from "./replication_lag.ts";

const identifier = z.string().regex(/^[a-z_][a-z0-9_]{0,62}$/, "a lower-case name");

export const promoteReplicaArgs = z.strictObject({ replica: identifier, target: identifier });
export type PromoteReplicaArgs = z.infer<typeof promoteReplicaArgs>;

/** What the approvers see. */
export interface PromotePlan extends PlanBase {
  target: string;
  replica: string;
  address: string;
  replayLsn: string;
  receiveLsn: string | null;
  timeline: number;
  lag: { bytes: number | null; seconds: number | null; severity: Severity; reasons: string[] };
  oldPrimary: { address: string; answers: boolean; acceptsWrites: boolean; error?: string };
  fingerprint: { replica: string; role: "standby"; timeline: number; replayLsn: string };
}

/** What happened. */
export interface PromoteResult {
  target: string;
  replica: string;
  promoted: boolean;
  previousTimeline: number;
  timeline: number;
  lsn: string;
  /** What a human does next (config, application, old primary). */
  next: string[];
}

interface StandbyState {
  inRecovery: boolean;
  replayLsn: string | null;
  receiveLsn: string | null;
  timeline: number;
}

function replicaMember(args: PromoteReplicaArgs, deps: OpDeps): TargetMember {
  const m = deps.targets.member(args.target, args.replica);
  if (m.role !== "replica") {
    throw new InvalidInput(
      `Cannot promote ${args.target}/${args.replica}: it is the target's primary, not a standby; name a replica (${
        deps.targets.members(args.target).slice(1).map((r) => r.name).join(", ") || "none configured"
      })`,
    );
  }
  return m;
}

async function readStandby(m: TargetMember, deps: OpDeps): Promise<StandbyState> {
  let sql;
  try {
    sql = await deps.targets.pool(m.target, m.name);
    const [r] = await sql<
      { in_recovery: boolean; replay_lsn: string | null; receive_lsn: string | null; timeline: number }[]
    >`
      select pg_is_in_recovery() as in_recovery,
             (case when pg_is_in_recovery() then pg_last_wal_replay_lsn() else pg_current_wal_lsn() end)::text
               as replay_lsn,
             pg_last_wal_receive_lsn()::text as receive_lsn,
             case when pg_is_in_recovery() then (select timeline_id from pg_control_checkpoint())
                  else ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int end as timeline`;
    return {
      inRecovery: r.in_recovery,
      replayLsn: r.replay_lsn,
      receiveLsn: r.receive_lsn,
      timeline: r.timeline,
    };
  } catch (err) {
    throw targetFailure(m, err, "read its recovery state");
  }
}

/** Bytes from `a` to `b` (b - a), computed by PostgreSQL. */
async function lsnDiff(m: TargetMember, deps: OpDeps, b: string, a: string): Promise<number> {
  const sql = await deps.targets.pool(m.target, m.name);
  const [r] = await sql<{ d: number }[]>`select pg_wal_lsn_diff(${b}::pg_lsn, ${a}::pg_lsn)::float8 as d`;
  return r.d;
}

/**
 * `promote_replica`: destructive.
 * @throws {InvalidInput} (plan) when the member is the primary or is not a standby
 * @throws {OpsError} `unreachable` when the replica does not answer
 * @throws {StepFailed} (run) when pg_promote() does not finish within 60 s
 */
export const promoteReplica: Operation<PromoteReplicaArgs, PromotePlan, PromoteResult> = {
  name: "promote_replica",
  destructive: true,
  args: promoteReplicaArgs,

  async plan(args, deps) {
    const m = replicaMember(args, deps);
    const address = `${m.conn.host}:${m.conn.port}`;
    const s = await readStandby(m, deps);
    if (!s.inRecovery) {
      throw new InvalidInput(
        `Cannot promote ${args.target}/${args.replica}: it is not a standby (pg_is_in_recovery() is false), ` +
          `so it is a primary already; \`/bisman status ${args.target}\` shows every member's role`,
      );
    }
    const report = await readReplicationLag(args.target, deps);
    const lag = report.replicas.find((r) => r.replica === args.replica);
    const p = report.primary;
    const oldPrimary = {
      address: p.address,
      answers: p.reachable,
      acceptsWrites: p.reachable && p.inRecovery === false,
      ...(p.error ? { error: p.error } : {}),
    };
    const warnings: string[] = [];
    if (oldPrimary.acceptsWrites) {
      warnings.push(
        `:rotating_light: SPLIT BRAIN: the old primary ${p.address} STILL ANSWERS and accepts writes. ` +
          `Promoting now leaves two primaries that both take writes, and their data diverges for good. ` +
          `Fence the old primary first (stop it, block its port, take it out of the load balancer and the ` +
          `application's connection strings), then plan again.`,
      );
    } else if (oldPrimary.answers) {
      warnings.push(`The old primary ${p.address} answers but is in recovery itself (already demoted?).`);
    } else {
      warnings.push(`The old primary ${p.address} does not answer: ${p.error ?? "no detail"}.`);
    }
    if (lag?.lagBytes) {
      warnings.push(
        `The replica is ${
          formatBytes(lag.lagBytes)
        } behind the primary: WAL it received is replayed before ` +
          `promotion finishes; WAL it never received is lost.`,
      );
    }
    if (lag?.view.replayPaused) {
      warnings.push("WAL replay is paused on the replica; promotion ends the pause.");
    }
    const replayLsn = s.replayLsn ?? "0/0";
    return {
      summary: `Promote ${args.target}/${args.replica} (${address}) to primary`,
      target: args.target,
      replica: args.replica,
      address,
      replayLsn,
      receiveLsn: s.receiveLsn,
      timeline: s.timeline,
      lag: {
        bytes: lag?.lagBytes ?? null,
        seconds: lag?.lagSeconds ?? null,
        severity: lag?.severity ?? "unknown",
        reasons: lag?.reasons ?? [],
      },
      oldPrimary,
      steps: [
        `Check ${args.replica} is still a standby on timeline ${s.timeline}, replayed up to at least ${replayLsn}`,
        `SELECT pg_promote(true, 60) on ${args.replica} (${address})`,
        "Wait until pg_is_in_recovery() is false",
        "Report the new timeline",
      ],
      fingerprint: { replica: args.replica, role: "standby", timeline: s.timeline, replayLsn },
      warnings,
    };
  },

  async revalidate(plan, deps) {
    const m = replicaMember({ target: plan.target, replica: plan.replica }, deps);
    let s: StandbyState;
    try {
      s = await readStandby(m, deps);
    } catch (err) {
      return err instanceof OpsError ? err.userMessage : "the replica could not be read";
    }
    if (!s.inRecovery) return `${plan.replica} is no longer a standby: it is a primary now`;
    if (s.timeline !== plan.fingerprint.timeline) {
      return `${plan.replica} moved from timeline ${plan.fingerprint.timeline} to ${s.timeline}`;
    }
    const moved = await lsnDiff(m, deps, s.replayLsn ?? "0/0", plan.fingerprint.replayLsn);
    if (moved < 0) {
      return `${plan.replica} has replayed less than at plan time (${s.replayLsn} < ${plan.fingerprint.replayLsn}): it is not the same standby`;
    }
    return undefined;
  },

  async run(plan, deps) {
    const m = replicaMember({ target: plan.target, replica: plan.replica }, deps);
    const before = await readStandby(m, deps);
    if (!before.inRecovery) {
      throw new StepFailed(
        "check",
        `Cannot promote ${plan.replica}: it is no longer a standby; nothing was changed`,
      );
    }
    const sql = await deps.targets.pool(m.target, m.name);
    let promoted: boolean;
    try {
      const [r] = await sql<{ promoted: boolean }[]>`select pg_promote(true, 60) as promoted`;
      promoted = r.promoted;
    } catch (err) {
      throw new StepFailed(
        "promote",
        `pg_promote() failed on ${plan.replica}: ${(err as { code?: string }).code ?? "error"} ` +
          `(the bot's role needs superuser or EXECUTE on pg_promote); reconcile shows whether it was promoted`,
        { cause: err },
      );
    }
    await failpoint("promote_replica.after_promote");
    if (!promoted) {
      throw new StepFailed(
        "wait",
        `pg_promote() on ${plan.replica} did not finish within 60 s: check its server log; reconcile shows whether it was promoted`,
      );
    }
    // pg_promote(true, …) has waited already; this re-check is the verification step of the plan.
    const after = await readStandby(m, deps);
    if (after.inRecovery) {
      throw new StepFailed(
        "verify",
        `${plan.replica} still reports pg_is_in_recovery() = true after pg_promote()`,
      );
    }
    deps.log.info("replica promoted", {
      target: plan.target,
      replica: plan.replica,
      timeline: after.timeline,
    });
    return resultOf(plan, after);
  },

  async reconcile(plan, deps): Promise<Reconciled<PromoteResult>> {
    const m = replicaMember({ target: plan.target, replica: plan.replica }, deps);
    let s: StandbyState;
    try {
      s = await readStandby(m, deps);
    } catch (err) {
      return {
        status: "needs_human",
        note: `${plan.replica} does not answer, so whether it was promoted is unknown: ${
          err instanceof OpsError ? err.userMessage : "no detail"
        }`,
      };
    }
    if (s.inRecovery) {
      return { status: "not_done", note: `${plan.replica} is still a standby: it was not promoted` };
    }
    return {
      status: "done",
      result: resultOf(plan, s),
      note: `${plan.replica} is a primary on timeline ${s.timeline}`,
    };
  },

  describeResult: (r) =>
    `${r.target}/${r.replica} promoted: timeline ${r.previousTimeline} → ${r.timeline}, at ${r.lsn}`,
};

function resultOf(plan: PromotePlan, s: StandbyState): PromoteResult {
  return {
    target: plan.target,
    replica: plan.replica,
    promoted: true,
    previousTimeline: plan.timeline,
    timeline: s.timeline,
    lsn: s.replayLsn ?? "?",
    next: [
      `Point the application and bisman-ops' config (targets.${plan.target}.primary) at ${plan.address}`,
      `Keep the old primary ${plan.oldPrimary.address} fenced; rebuild it as a standby of ${plan.replica} (pg_rewind or a new base backup)`,
      "Investigate why replication failed (the seed: promote replica, investigate)",
    ],
  };
}

/** For renderers: the lag line of a plan. */
export function describePromoteLag(p: PromotePlan): string {
  return `${formatBytes(p.lag.bytes)} / ${formatSeconds(p.lag.seconds)} behind (${p.lag.severity})`;
}
