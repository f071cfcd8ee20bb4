import assert from "node:assert/strict";
import { parseConfig } from "../../core/config.ts";
import { loginOfUid, resolveOperator } from "../../commands/cli_identity.ts";
import { actorOf } from "../../core/access.ts";

const PASSWD = [
  "root:x:0:0:root:/root:/bin/bash",
  "alice:x:1000:1000:Alice:/home/alice:/bin/bash",
  "mallory:x:1002:1002::/home/mallory:/bin/bash",
].join("\n");

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

Deno.test("cli_identity resolveOperator() maps the login of the real user ID, never $USER", () => {
  assert.equal(loginOfUid(1000, PASSWD), "alice");
  assert.equal(loginOfUid(4242, PASSWD), undefined);
  const inv = resolveOperator(config, { uid: 1000, passwd: PASSWD });
  assert.deepEqual(inv, { via: "cli", userId: "U0ALICE", userName: "alice" });
  assert.equal(actorOf(inv), "cli:alice");
});

Deno.test("cli_identity resolveOperator() refuses logins that are not in access.cli_operators", () => {
  assert.throws(
    () => resolveOperator(config, { uid: 1002, passwd: PASSWD }),
    /mallory may not use the break-glass CLI: an admin adds "mallory: <Slack user ID>" to access.cli_operators/,
  );
  assert.throws(() => resolveOperator(config, { uid: 4242, passwd: PASSWD }), /Cannot tell who you are/);
});

Deno.test("cli_identity --as and SUDO_USER pick the operator only for root", () => {
  assert.throws(
    () => resolveOperator(config, { uid: 1000, as: "bob", passwd: PASSWD }),
    (e: Error & { code?: string }) => e.code === "not_permitted" && /--as is for root only/.test(e.message),
  );
  assert.equal(resolveOperator(config, { uid: 0, as: "bob", passwd: PASSWD }).userId, "U0BOB");
  assert.equal(resolveOperator(config, { uid: 0, sudoUser: "alice", passwd: PASSWD }).userName, "alice");
  // A non-root user's SUDO_USER means nothing: the process runs as that user.
  assert.equal(resolveOperator(config, { uid: 1000, sudoUser: "bob", passwd: PASSWD }).userName, "alice");
  assert.throws(
    () => resolveOperator(config, { uid: 0, passwd: PASSWD }),
    /root may not use the break-glass CLI \(as root, say who you are with --as <login>\)/,
  );
  assert.throws(() => resolveOperator(config, { uid: 0, as: "../etc", passwd: PASSWD }), /not a login name/);
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
