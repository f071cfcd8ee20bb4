import assert from "node:assert/strict";
import { parseArgs } from "../../commands/args.ts";
import { slowQueriesCommand } from "../../commands/slow_queries.ts";
import { testConfig } from "../support/bot.ts";
import type { AppDeps } from "../../core/deps.ts";
import type { OpsError } from "../../core/errors.ts";

const config = testConfig({ primary: { port: 5432 } } as never, (doc) => {
  doc.targets.staging = { primary: { host: "127.0.0.1", port: 5433, user: "postgres" } };
  doc.default_target = "main";
});
const deps = { config } as AppDeps;

Deno.test("slow-queries parse() takes a target (default_target otherwise) and limit= from 1 to 50", () => {
  const s = (text: string) => slowQueriesCommand.parse(parseArgs(text), deps);
  assert.deepEqual(s("slow-queries"), { target: "main", limit: 10 });
  assert.deepEqual(s("slow-queries staging limit=20"), { target: "staging", limit: 20 });
  assert.throws(() => s("slow-queries limit=0"), (e: OpsError) => e.code === "invalid_input");
  assert.throws(() => s("slow-queries limit=51"), (e: OpsError) => e.code === "invalid_input");
  assert.throws(
    () => s("slow-queries nosuch"),
    (e: OpsError) => /Unknown target "nosuch"/.test(e.userMessage),
  );
  assert.equal(slowQueriesCommand.access, "operator", "query texts are for operators");
});
