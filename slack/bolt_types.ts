/**
 * The Bolt app's type and the hook by which feature modules (approval buttons, alert threads, jobs, the
 * share button) register their listeners on it.
 *
 * @module
 */

import type bolt from "@slack/bolt";
import type { AppDeps } from "../core/deps.ts";

/** The Bolt app of this process. */
export type BoltApp = InstanceType<typeof bolt.App>;

/** Hooks that feature modules register on the Bolt app (actions, views). */
export type BoltRegistration = (app: BoltApp, deps: AppDeps) => void;
