/**
 * `restore_test_gated`: the same restore test as ops/restore_test.ts, as a destructive operation, for
 * targets whose restore tests need approval (`restore_test.requires_approval`, true by default when they
 * restore on the production primary). `/bisman restore-test` asks the approval gate for it there; its
 * policy may be written as `policies.restore_test`.
 *
 * @module
 */

import type { Operation } from "./types.ts";
import {
  restoreTest,
  type RestoreTestArgs,
  type RestoreTestPlan,
  type RestoreTestResult,
  runRestoreTest,
} from "./restore_test.ts";
import { cleanupRestoreScratch } from "./restore_cleanup.ts";

/** The gated restore test. Its reconcile() never reruns: it cleans up what the interrupted run left. */
export const restoreTestGated: Operation<RestoreTestArgs, RestoreTestPlan, RestoreTestResult> = {
  ...restoreTest,
  name: "restore_test_gated",
  destructive: true,
  run: (plan, deps) => runRestoreTest(plan, deps, { trigger: "approval" }),
  reconcile: async (plan, deps) => {
    // The run's history row is still 'running' and its scratch database may exist: the cleanup (under the
    // target's restore lock, so never while a test runs) drops marked scratch databases and marks the row.
    const r = await cleanupRestoreScratch(deps, { targets: [plan.target] });
    if (r.busy.length) {
      return {
        status: "needs_human",
        note: `A restore test of ${plan.target} is running now: check it when it ends`,
      };
    }
    const dropped = r.dropped.map((d) => d.database).join(", ") || "none";
    return {
      status: "not_done",
      note: `The restore test was interrupted and did not finish; scratch databases dropped: ${dropped}. ` +
        `Request it again for a result`,
    };
  },
};
