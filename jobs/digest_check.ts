/**
 * The shape of one digest check (jobs/digest_sections.ts defines them, jobs/digest.ts runs them).
 *
 * @module
 */

import type { AppDeps } from "../core/deps.ts";
import type { JobServices } from "../core/job_service.ts";
import type { DigestLine } from "../views/digest_model.ts";

/** What a check receives. */
export interface CheckContext {
  deps: AppDeps;
  now: Date;
  since: Date;
  /** What this check remembered for the same target in the previous digest. */
  previous?: unknown;
  /** Process services (the alert threads), when the digest runs inside the bot. */
  services: JobServices;
  /** Stores state (JSON) for the next digest. */
  remember(value: unknown): void;
}

/** One check of the digest. */
export interface DigestCheck {
  key: string;
  title: string;
  /** `target`: run once per target; `global`: once for the deployment (approvals, alert threads, freeze). */
  scope: "target" | "global";
  /** Why it cannot run in this build or config, or undefined when it can. */
  unavailable?(deps: AppDeps, target: string | undefined, services: JobServices): string | undefined;
  /** The lines of the section, worst first or in any order (they are sorted). */
  run(ctx: CheckContext, target: string | undefined): Promise<DigestLine[]>;
}
