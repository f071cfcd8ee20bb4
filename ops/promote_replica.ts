/**
 * Promotes a streaming replica to primary (`SELECT pg_promote(true, 60)`): the seed's answer to a
 * replication failure. Destructive, approval policy `promote_replica` (2 approvals unless config says
 * otherwise).
 *
 * The plan shows the replica's lag and replay position and whether the old primary still answers. If it does,
 * promoting makes two primaries that both accept writes (split brain): the plan warns loudly and says to fence
 * the old primary first. The bot does not fence it itself: how (stop the server, block the port, change the
 * load balancer) depends on the deployment and must be a human's decision. Right before `pg_promote()` the run
 * probes the old primary again over a fresh connection and refuses, promoting nothing, when it answers as a
 * writable primary (or answers and its role cannot be read), unless the request said `fenced=true`: the
 * requester's statement, shown on the plan, that no client can write to it any more even though the bot still
 * reaches it.
 *
 * After promotion the run verifies what it reports: the replica left recovery (its new timeline), a read-write
 * transaction commits on it (writes are accepted), and each other replica's state as it answers now; the result
 * lists the runbook's next steps.
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
import {
  formatBytes,
  formatSeconds,
  readReplicationLag,
  readReplicaView,
  type Severity,
} from "./replication_lag.ts";
import { describeProbe, type MemberProbe, probeMember } from "./_member_probe.ts";

const identifier = z.string().regex(/^[a-z_][a-z0-9_]{0,62}$/, "a lower-case name");

export const promoteReplicaArgs = z.strictObject({
  replica: identifier,
  target: identifier,
  /** The requester states the old primary is fenced from every client (`fenced=true`); shown on the plan. */
  fenced: z.boolean().optional(),
});
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
  /** The requester stated the old primary is fenced: a writable answer just before promoting does not refuse. */
  fenced: boolean;
  /** The target's other replicas (their state is reported after the promotion). */
  otherReplicas: string[];
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
  /** The old primary as probed right before pg_promote() (absent in a result found by reconcile). */
  oldPrimary?: { state: MemberProbe["state"]; described: string; fenced: boolean };
  /** Whether a read-write transaction committed on the promoted server after promotion. */
  writes: { verified: true; xid: string } | { verified: false; why: string };
  /** Every other replica of the target as it answered after the promotion. */
  otherReplicas: { name: string; address: string; state: string }[];
  /** What a human does next (config, application, old primary, other replicas), from the runbook. */
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
    const probe = await probeMember(deps.targets.member(args.target, "primary"), deps);
    const fenced = args.fenced === true;
    const oldPrimary = {
      address: probe.address,
      answers: probe.state !== "down",
      acceptsWrites: probe.state === "writable",
      ...(probe.state === "down" || probe.state === "unknown" ? { error: probe.detail } : {}),
    };
    const warnings: string[] = [];
    if (probe.state === "writable" || probe.state === "unknown") {
      warnings.push(
        `:rotating_light: SPLIT BRAIN: the old primary ${describeProbe(probe)}: it STILL ANSWERS. ` +
          `Promoting now leaves two primaries that both take writes, and their data diverges for good. ` +
          (fenced
            ? `The requester states it is fenced (fenced=true): the run will promote even if it still answers ` +
              `then. Make sure no client can write to it (load balancer, the application's connection strings, ` +
              `its port).`
            : `Fence the old primary first (stop it, block its port, take it out of the load balancer and the ` +
              `application's connection strings). Right before promoting, the run probes it again and refuses ` +
              `if it still answers this way; if it is fenced from every client in a way the bot cannot see, ` +
              `request again with fenced=true.`),
      );
    } else if (probe.state === "standby") {
      warnings.push(`The old primary ${describeProbe(probe)} (already demoted?).`);
    } else {
      warnings.push(
        `The old primary ${
          describeProbe(probe)
        }. The bot sees only what it can reach: if clients can still ` +
          `reach it, fence it before approving. Right before promoting, the run probes it again and ` +
          `${
            fenced ? "records what it finds (fenced=true)" : "refuses if it answers as a writable primary"
          }.`,
      );
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
    const others = deps.targets.members(args.target).filter((x) =>
      x.role === "replica" && x.name !== args.replica
    );
    return {
      summary: `Promote ${args.target}/${args.replica} (${address}) to primary${
        fenced ? " (old primary stated fenced: fenced=true)" : ""
      }`,
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
      fenced,
      otherReplicas: others.map((o) => o.name),
      steps: [
        `Check ${args.replica} is still a standby on timeline ${s.timeline}, replayed up to at least ${replayLsn}`,
        fenced
          ? `Probe the old primary ${probe.address} again and record what it answers (fenced=true: the ` +
            `requester states it is fenced, so a writable answer does not stop the run)`
          : `Probe the old primary ${probe.address} again: refuse, promoting nothing, if it answers as a ` +
            `writable primary or its role cannot be read (not fenced)`,
        `SELECT pg_promote(true, 60) on ${args.replica} (${address})`,
        "Wait until pg_is_in_recovery() is false",
        `Verify writes are accepted: a read-write transaction on ${args.replica} is given a transaction ID and commits`,
        `Report the new timeline, ${
          others.length ? `the state of ${others.map((o) => o.name).join(", ")}` : "the other replicas (none)"
        } and the runbook's next steps`,
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
    // Right before promoting: the old primary, over a fresh connection. It may have come back (or never gone)
    // since the plan; two writable primaries are the one outcome worse than no promotion.
    const old = await probeMember(deps.targets.member(plan.target, "primary"), deps);
    const fenced = plan.fenced === true;
    if ((old.state === "writable" || old.state === "unknown") && !fenced) {
      throw new StepFailed(
        "fence",
        `Refused to promote ${plan.replica}, nothing was changed: the old primary ${
          describeProbe(old)
        }, and the approved plan did not say it is fenced. Promoting now would make two primaries (split ` +
          `brain). Fence it (stop it, block its port, take it out of the load balancer and the application's ` +
          `connection strings) and request again, or, if no client can reach it, request with fenced=true`,
      );
    }
    deps.log.info("old primary probed before promotion", {
      target: plan.target,
      state: old.state,
      fenced,
    });
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
    // pg_promote(true, ...) has waited already; this re-check is the verification step of the plan.
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
    return {
      ...resultOf(plan, after),
      oldPrimary: { state: old.state, described: describeProbe(old), fenced },
      writes: await verifyWrites(m, deps),
      otherReplicas: await otherReplicasState(plan, deps),
    };
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
      result: { ...resultOf(plan, s), otherReplicas: await otherReplicasState(plan, deps) },
      note: `${plan.replica} is a primary on timeline ${s.timeline}`,
    };
  },

  describeResult: (r) => {
    const writes = r.writes.verified
      ? `writes accepted (a read-write transaction, xid ${r.writes.xid}, committed)`
      : `writes NOT verified: ${r.writes.why}`;
    const others = r.otherReplicas.length
      ? `Other replicas: ${r.otherReplicas.map((o) => `${o.name} ${o.state}`).join("; ")}`
      : "No other replicas";
    const old = r.oldPrimary
      ? ` Old primary just before promoting: ${r.oldPrimary.described}${
        r.oldPrimary.fenced ? " (stated fenced: fenced=true)" : ""
      }.`
      : "";
    return `${r.target}/${r.replica} promoted: timeline ${r.previousTimeline} \u2192 ${r.timeline}, at ${r.lsn}; ` +
      `${writes}.${old} ${others}. Next: ${r.next.map((n, i) => `(${i + 1}) ${n}`).join(" ")}`;
  },
};

function resultOf(plan: PromotePlan, s: StandbyState): PromoteResult {
  const others = plan.otherReplicas ?? [];
  return {
    target: plan.target,
    replica: plan.replica,
    promoted: true,
    previousTimeline: plan.timeline,
    timeline: s.timeline,
    lsn: s.replayLsn ?? "?",
    writes: { verified: false, why: "not checked (found by reconcile after a crash)" },
    otherReplicas: [],
    next: [
      `Point the application and bisman-ops' config (targets.${plan.target}.primary) at ${plan.address}; ` +
      `until then the bot's commands on ${plan.target} still go to the old primary`,
      `Keep the old primary ${plan.oldPrimary.address} fenced; rebuild it as a standby of ${plan.replica} ` +
      `(pg_rewind or a new base backup)`,
      ...(others.length
        ? [
          `Point ${others.join(", ")} at ${plan.address} (primary_conninfo, then reload); with ` +
          `recovery_target_timeline = 'latest' (the default) they follow timeline ${s.timeline}`,
        ]
        : []),
      `Take a fresh backup from the new primary once the config points at it (\`/bisman backup now ${plan.target}\`)`,
      "Investigate why replication failed (the seed: replication failure \u2192 promote replica, investigate)",
    ],
  };
}

/**
 * Verifies the promoted server accepts writes: a read-write transaction that is given a transaction ID
 * (`pg_current_xact_id()`, refused during recovery) and commits, which writes a commit record to its WAL. It
 * needs no table privilege, so it works for the bot's least-privilege role. Never throws.
 */
async function verifyWrites(m: TargetMember, deps: OpDeps): Promise<PromoteResult["writes"]> {
  try {
    const sql = await deps.targets.pool(m.target, m.name);
    const xid = await sql.begin("read write", async (tx) => {
      const [r] = await tx<{ xid: string }[]>`select pg_current_xact_id()::text as xid`;
      return r.xid;
    });
    return { verified: true, xid };
  } catch (err) {
    return { verified: false, why: targetFailure(m, err, "commit a read-write transaction").userMessage };
  }
}

/** Each other replica of the target, as it answers now (a standby following whom, or not at all). */
async function otherReplicasState(plan: PromotePlan, deps: OpDeps): Promise<PromoteResult["otherReplicas"]> {
  const others = deps.targets.members(plan.target).filter((x) =>
    x.role === "replica" && x.name !== plan.replica
  );
  return await Promise.all(others.map(async (o) => {
    const address = `${o.conn.host}:${o.conn.port}`;
    const v = await readReplicaView(o, deps);
    let state: string;
    if (!v.reachable) state = `does not answer (${v.error ?? "no detail"})`;
    else if (!v.inRecovery) state = "answers as a primary itself (not in recovery): check it at once";
    else if (v.receiver) {
      const from = v.receiver.senderHost ? ` from ${v.receiver.senderHost}:${v.receiver.senderPort}` : "";
      state = `is a standby, WAL receiver ${v.receiver.status}${from} on timeline ${
        v.receiver.receivedTli ?? "?"
      }, replayed up to ${v.replayLsn ?? "?"}`;
    } else {
      state = `is a standby with no WAL receiver running (replayed up to ${
        v.replayLsn ?? "?"
      }): it follows no primary until it is pointed at ${plan.address}`;
    }
    return { name: o.name, address, state };
  }));
}

/** For renderers: the lag line of a plan. */
export function describePromoteLag(p: PromotePlan): string {
  return `${formatBytes(p.lag.bytes)} / ${formatSeconds(p.lag.seconds)} behind (${p.lag.severity})`;
}
