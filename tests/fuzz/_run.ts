/**
 * Runs fuzz cases against a running bot and checks what must hold afterwards: every answer a 4xx or a
 * clean 200, the process alive and answering, and nothing run (no request approved or running, the freeze,
 * the target's roles and pg_hba rules as they were, the audit chain intact). Used by tests/fuzz/ and
 * bench/fuzz.ts.
 */

import type { Sql } from "postgres";
import { OPS_CHANNEL, startTestBot, TEAM, type TestBot, USERS } from "../support/bot.ts";
import type { TestCluster } from "../../standins/cluster.ts";
import type { SlackStandIn } from "../../standins/slack.ts";
import { type HttpCase, rng, send, type SlackIds, socketEnvelope } from "./_cases.ts";

export interface FuzzReport {
  sent: number;
  /** Answers by kind of case and status. */
  byKind: Record<string, Record<string, number>>;
  /** Cases whose answer was not one of the expected (a 5xx or a transport error always is not). */
  wrong: { i: number; kind: string; got: number | string; expected: number[] }[];
  seconds: number;
}

/** Sends `n` cases made by `make` from `seed`, `concurrency` at a time. */
export async function fuzzHttp(
  baseUrl: string,
  n: number,
  seed: number,
  make: (r: () => number) => HttpCase,
  concurrency = 8,
): Promise<FuzzReport> {
  const r = rng(seed);
  // Cases are made up front, in order, so a seed always gives the same sequence whatever the timing.
  const cases = Array.from({ length: n }, () => make(r));
  const report: FuzzReport = { sent: 0, byKind: {}, wrong: [], seconds: 0 };
  const started = performance.now();
  let next = 0;
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next < cases.length) {
      const i = next++;
      const c = cases[i];
      const got = await send(baseUrl, c);
      report.sent++;
      const k = (report.byKind[c.kind] ??= {});
      k[String(got)] = (k[String(got)] ?? 0) + 1;
      if (typeof got !== "number" || !c.expect.includes(got)) {
        report.wrong.push({ i, kind: c.kind, got, expected: c.expect });
      }
    }
  }));
  report.seconds = (performance.now() - started) / 1000;
  return report;
}

export interface SocketFuzzReport {
  sent: number;
  acked: number;
  failures: { i: number; type: string; error: string }[];
  seconds: number;
}

/** Sends `n` random envelopes over the bot's socket; each must be acknowledged. */
export async function fuzzSocket(
  slack: SlackStandIn,
  ids: SlackIds,
  n: number,
  seed: number,
  concurrency = 8,
): Promise<SocketFuzzReport> {
  const r = rng(seed);
  const envelopes = Array.from({ length: n }, () => socketEnvelope(r, ids));
  const report: SocketFuzzReport = { sent: 0, acked: 0, failures: [], seconds: 0 };
  const started = performance.now();
  let next = 0;
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next < envelopes.length) {
      const i = next++;
      const e = envelopes[i];
      report.sent++;
      try {
        await slack.sendEnvelope(e.type, e.payload, e.type === "slash_commands", { timeoutMs: 15_000 });
        report.acked++;
      } catch (err) {
        report.failures.push({ i, type: e.type, error: err instanceof Error ? err.message : String(err) });
      }
    }
  }));
  report.seconds = (performance.now() - started) / 1000;
  return report;
}

/** What must not change when nothing runs. */
export interface StateSnapshot {
  frozen: boolean;
  roles: string;
  hba: string;
}

/** Reads the freeze, the target's roles (login, password verifier) and its pg_hba rules. */
export async function snapshot(tb: TestBot, target: Sql): Promise<StateSnapshot> {
  const [f] = await tb.bot.deps.state<{ frozen: boolean }[]>`select frozen from bisman_ops.freeze`;
  const roles = await target<{ r: string }[]>`
    select string_agg(rolname || ':' || rolcanlogin || ':' || coalesce(rolpassword, ''), ',' order by rolname) as r
      from pg_authid`;
  const hba = await target<{ r: string }[]>`
    select string_agg(coalesce(type, '') || ' ' || coalesce(address, '') || ' ' || coalesce(auth_method, ''), ',' order by line_number) as r
      from pg_hba_file_rules`;
  return { frozen: f.frozen, roles: roles[0].r, hba: hba[0].r };
}

/** Requests that got further than pending (something was approved, ran, or was interrupted). */
export async function requestsPastPending(tb: TestBot): Promise<{ id: number; state: string }[]> {
  const rows = await tb.bot.deps.state<{ id: number; state: string }[]>`
    select id, state from bisman_ops.requests
     where state not in ('pending', 'denied', 'expired', 'cancelled', 'stale')`;
  return [...rows];
}

/** A one-line summary of a report for logs and the bench's output. */
export function describe(name: string, r: FuzzReport): string {
  const kinds = Object.entries(r.byKind).map(([k, v]) =>
    `${k} ${Object.entries(v).map(([s, n]) => `${s}×${n}`).join(" ")}`
  );
  return `${name}: ${r.sent} sent in ${r.seconds.toFixed(1)} s, ${r.wrong.length} wrong; ${kinds.join("; ")}`;
}

/**
 * The two bots a fuzz run attacks, on one state database's cluster: one over HTTP (with `/alerts`), one in
 * Socket Mode on the same Slack stand-in; and the Slack IDs the cases draw from.
 */
export async function startFuzzBots(
  cluster: TestCluster,
  env: Record<string, string>,
): Promise<{ tb: TestBot; socketBot: TestBot; ids: SlackIds }> {
  const tb = await startTestBot(cluster, { env });
  const socketBot = await startTestBot(cluster, {
    slack: tb.slack,
    env: { SLACK_APP_TOKEN: tb.slack.appToken },
    start: { socketMode: { clientPingTimeoutMs: 1500, retryBaseMs: 100 } },
  });
  const ids: SlackIds = {
    team: TEAM,
    channel: OPS_CHANNEL,
    users: [USERS.alice, USERS.bob, USERS.carol, USERS.dave],
    responseUrl: () => tb.slack.responseUrl({ user: USERS.alice, channel: OPS_CHANNEL }),
  };
  return { tb, socketBot, ids };
}
