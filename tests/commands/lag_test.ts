import assert from "node:assert/strict";
import { parseArgs } from "../../commands/args.ts";
import { lagCommand, targetsOrAll } from "../../commands/lag.ts";
import { testConfig } from "../support/bot.ts";
import type { AppDeps } from "../../core/deps.ts";
import type { OpsError } from "../../core/errors.ts";

const config = testConfig({ primary: { port: 5432 } } as never, (doc) => {
  doc.targets.staging = { primary: { host: "127.0.0.1", port: 5433, user: "postgres" } };
  doc.default_target = "main";
});
const deps = { config } as AppDeps;

Deno.test("lag parse() means every target unless one is named", () => {
  assert.deepEqual(targetsOrAll(config, undefined), ["main", "staging"]);
  assert.deepEqual(lagCommand.parse(parseArgs("lag"), deps), { targets: ["main", "staging"] });
  assert.deepEqual(lagCommand.parse(parseArgs("lag staging"), deps), { targets: ["staging"] });
  assert.throws(
    () => lagCommand.parse(parseArgs("lag nosuch"), deps),
    (e: OpsError) => /Unknown target "nosuch"/.test(e.userMessage),
  );
  assert.throws(
    () => lagCommand.parse(parseArgs("lag a b"), deps),
    (e: OpsError) => e.code === "invalid_input",
  );
  assert.equal(lagCommand.access, "anyone");
});
