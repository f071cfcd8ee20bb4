/**
 * A harmless destructive operation for approval-gate tests, registered from the test files themselves
 * (never by the bot): `gate_test` appends a row to `gate_test_runs` on the test cluster's primary, so a
 * test can count how often it really ran. Its plan is fingerprinted on `gate_test_state.version`, which
 * a test changes to make the plan stale. `/bisman gate-test <key> [fail=yes]` requests it.
 */

import { z } from "zod";
import type { Sql } from "postgres";
import type { Operation, PlanBase } from "../../ops/types.ts";
import { getOperation, registerOperations } from "../../ops/registry.ts";
import { registerSubcommands } from "../../commands/registry.ts";
import { defineSubcommand } from "../../commands/types.ts";
import { validateArgs } from "../../commands/args.ts";
import { StepFailed } from "../../core/errors.ts";
import { withAuditContext } from "../../core/target_audit.ts";
import { renderRequestCreated } from "../../views/approval.ts";

const key = z.string().regex(/^[a-z0-9_]{1,40}$/, "a key of lower-case letters, digits and _");
const args = z.strictObject({
  key,
  fail: z.boolean().default(false),
  /** Milliseconds the run holds (pg_sleep on the target), to widen race windows. */
  hold_ms: z.number().int().min(0).max(10_000).default(0),
  target: z.literal("main").default("main"),
});
type Args = z.infer<typeof args>;

interface Plan extends PlanBase {
  key: string;
  target: string;
  fail: boolean;
  holdMs: number;
  fingerprint: { version: number };
}

/** Creates the tables the test operation reads and writes (in the target's `postgres` database). */
export async function prepareGateTables(sql: Sql): Promise<void> {
  await sql`create table if not exists gate_test_state (key text primary key, version int not null)`;
  await sql`create table if not exists gate_test_runs (key text not null, at timestamptz not null default now(),
                                                       app_user text, service text)`;
}

/** How many times the operation ran for `k`. */
export async function runsOf(sql: Sql, k: string): Promise<number> {
  const [r] = await sql<{ n: number }[]>`select count(*)::int as n from gate_test_runs where key = ${k}`;
  return r.n;
}

async function versionOf(sql: Sql, k: string): Promise<number> {
  const [r] = await sql<{ version: number }[]>`select version from gate_test_state where key = ${k}`;
  return r?.version ?? 0;
}

export const gateTestOp: Operation<Args, Plan, { key: string; runs: number }> = {
  name: "gate_test",
  destructive: true,
  args,
  async plan(a, deps) {
    const sql = await deps.targets.pool(a.target);
    return {
      summary: `Append one row for ${a.key} to gate_test_runs`,
      target: a.target,
      key: a.key,
      fail: a.fail,
      holdMs: a.hold_ms,
      steps: [`insert into gate_test_runs (key) values ('${a.key}')`],
      fingerprint: { version: await versionOf(sql, a.key) },
    };
  },
  async revalidate(plan, deps) {
    const now = await versionOf(await deps.targets.pool(plan.target), plan.key);
    return now === plan.fingerprint.version
      ? undefined
      : `gate_test_state.version of ${plan.key} is ${now}, the plan saw ${plan.fingerprint.version}`;
  },
  async run(plan, deps) {
    if (plan.fail) throw new StepFailed("insert", `Test failure for ${plan.key}: nothing was written`);
    const sql = await deps.targets.pool(plan.target);
    if (plan.holdMs) await sql`select pg_sleep(${plan.holdMs / 1000})`;
    await withAuditContext(sql, deps.actor, async (tx) => {
      await tx`insert into gate_test_runs (key, app_user, service)
               values (${plan.key}, current_setting('app.user_id', true), current_setting('app.service_name', true))`;
    });
    return { key: plan.key, runs: await runsOf(sql, plan.key) };
  },
  describeResult: (r) => `row appended for ${r.key} (${r.runs} in all)`,
};

export const gateTestCommand = defineSubcommand({
  name: "gate-test",
  summary: "Test-only destructive request",
  usage: "/bisman gate-test <key> [fail=yes] [hold=<ms>]",
  examples: ["/bisman gate-test k1"],
  access: "operator",
  destructive: true,
  parse: (a) => {
    const v = validateArgs(
      z.object({
        positional: z.tuple([key]),
        named: z.strictObject({
          fail: z.literal("yes").optional(),
          hold: z.string().regex(/^\d{1,5}$/).optional(),
        }),
      }),
      a,
      "/bisman gate-test <key> [fail=yes] [hold=<ms>]",
    );
    return { key: v.positional[0], fail: v.named.fail === "yes", hold_ms: Number(v.named.hold ?? 0) };
  },
  run: async (ctx, a) =>
    renderRequestCreated(
      await ctx.deps.gate!.request({ action: "gate_test", args: a, invoker: ctx.invoker }),
    ),
});

/** Registers the operation and its subcommand once per process. */
export function registerGateTest(): void {
  if (getOperation("gate_test")) return;
  registerOperations(gateTestOp);
  registerSubcommands(gateTestCommand);
}
