import assert from "node:assert/strict";
import { parseArgs } from "../../commands/args.ts";
import { connectionsCommand, terminateIdleCommand } from "../../commands/connections.ts";
import { testConfig } from "../support/bot.ts";
import type { AppDeps } from "../../core/deps.ts";
import type { OpsError } from "../../core/errors.ts";

const deps = {
  config: testConfig({ primary: { port: 5432 } } as never, (doc) => {
    doc.thresholds = { idle_in_transaction_minutes: 7 };
  }),
} as AppDeps;

Deno.test("connections and terminate-idle parse() take a target and minutes=, defaulting to the threshold", () => {
  assert.deepEqual(connectionsCommand.parse(parseArgs("connections"), deps), { target: "main" });
  assert.throws(
    () => connectionsCommand.parse(parseArgs("connections nosuch"), deps),
    (e: OpsError) => /Unknown target/.test(e.userMessage),
  );
  const t = (text: string) => terminateIdleCommand.parse(parseArgs(text), deps);
  assert.deepEqual(t("terminate-idle"), { target: "main", older_than_minutes: 7 });
  assert.deepEqual(t("terminate-idle main minutes=30"), { target: "main", older_than_minutes: 30 });
  assert.deepEqual(t("terminate-idle minutes=0.5"), { target: "main", older_than_minutes: 0.5 });
  for (
    const bad of [
      "terminate-idle minutes=0",
      "terminate-idle minutes=-1",
      "terminate-idle minutes=abc",
      "terminate-idle minutes=99999",
    ]
  ) {
    assert.throws(() => t(bad), (e: OpsError) => e.code === "invalid_input", bad);
  }
  assert.equal(terminateIdleCommand.destructive, true);
});
