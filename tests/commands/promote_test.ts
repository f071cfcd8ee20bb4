import assert from "node:assert/strict";
import { parseArgs } from "../../commands/args.ts";
import { promoteCommand } from "../../commands/promote.ts";
import { testConfig } from "../support/bot.ts";
import type { AppDeps } from "../../core/deps.ts";
import type { OpsError } from "../../core/errors.ts";

const deps = { config: testConfig({ primary: { port: 5432 }, replica: { port: 5433 } } as never) } as AppDeps;
const parse = (text: string) => promoteCommand.parse(parseArgs(text), deps);

Deno.test("promote parse() takes a configured replica and an optional target, and refuses anything else", () => {
  assert.deepEqual(parse("promote replica1"), { replica: "replica1", target: "main" });
  assert.deepEqual(parse("promote replica1 main"), { replica: "replica1", target: "main" });
  assert.deepEqual(parse("promote replica1 fenced=true"), {
    replica: "replica1",
    target: "main",
    fenced: true,
  });
  assert.deepEqual(parse("promote replica1 fenced=false"), { replica: "replica1", target: "main" });
  assert.throws(() => parse("promote replica1 fenced=yes"), (e: OpsError) => e.code === "invalid_input");
  assert.throws(
    () => parse("promote primary"),
    (e: OpsError) => /target main has replicas replica1/.test(e.userMessage),
  );
  assert.throws(
    () => parse("promote replica1 nosuch"),
    (e: OpsError) => /Unknown target "nosuch"/.test(e.userMessage),
  );
  assert.throws(
    () => parse("promote"),
    (e: OpsError) => e.code === "invalid_input" && /Usage/.test(e.userMessage),
  );
  assert.throws(() => parse("promote 'x; drop'"), (e: OpsError) => e.code === "invalid_input");
  assert.equal(promoteCommand.destructive, true);
  assert.equal(promoteCommand.access, "operator");
});
