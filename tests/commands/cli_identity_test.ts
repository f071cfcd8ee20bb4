import assert from "node:assert/strict";
import { parseConfig } from "../../core/config.ts";
import { operatorOfLogin, unmappedInvoker } from "../../commands/cli_identity.ts";
import { actorOf } from "../../core/access.ts";

const config = parseConfig({
  workspace: { team_id: "T0TEST" },
  slack: { ops_channel: "C0OPS" },
  access: {
    operators: { users: ["U0ALICE", "U0BOB"] },
    approvers: { users: ["U0BOB"] },
    cli_operators: { alice: "U0ALICE", bob: "U0BOB" },
  },
  targets: { main: { primary: { host: "127.0.0.1", user: "postgres" } } },
});

Deno.test("cli_identity operatorOfLogin() maps a PostgreSQL login to its Slack user, audited as cli:<login>", () => {
  const inv = operatorOfLogin(config, "alice");
  assert.deepEqual(inv, { via: "cli", userId: "U0ALICE", userName: "alice" });
  assert.equal(actorOf(inv), "cli:alice");
});

Deno.test("cli_identity operatorOfLogin() refuses logins that are not in access.cli_operators", () => {
  assert.throws(
    () => operatorOfLogin(config, "mallory"),
    (e: Error & { code?: string }) =>
      e.code === "not_permitted" &&
      /mallory may not use the break-glass CLI: an admin adds "mallory: <Slack user ID>" to access\.cli_operators$/
        .test(e.message),
  );
  // Role names PostgreSQL allows but the config cannot hold, and names of Object.prototype's members.
  for (const login of ["constructor", "__proto__", "toString", "hasOwnProperty", "Alice", "bob\nalice", ""]) {
    assert.throws(
      () => operatorOfLogin(config, login),
      /may not use the break-glass CLI/,
      JSON.stringify(login),
    );
  }
  assert.throws(
    () => operatorOfLogin(config, "bob\nalice"),
    /"bob\\nalice" may not use .* needs a role with such a name/,
  );
});

Deno.test("cli_identity unmappedInvoker() audits a refused login as cli:<login> and matches no Slack user", () => {
  const inv = unmappedInvoker("dave");
  assert.equal(actorOf(inv), "cli:dave");
  assert.ok(!inv.userId.startsWith("U"));
});

Deno.test("config access.cli_operators names the key of a bad entry", () => {
  assert.throws(
    () =>
      parseConfig({
        workspace: { team_id: "T0TEST" },
        slack: { ops_channel: "C0OPS" },
        access: {
          operators: { users: [] },
          approvers: { users: [] },
          cli_operators: { alice: "alice" },
        },
        targets: { main: { primary: { host: "h", user: "u" } } },
      }),
    /access\.cli_operators\.alice: a Slack user ID/,
  );
});
