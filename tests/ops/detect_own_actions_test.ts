import assert from "node:assert/strict";
import postgres from "postgres";
import { startCluster } from "../../standins/cluster.ts";
import { createBismanDatabase } from "../support/bisman_schema.ts";
import { startTestBot, testConfig, USERS } from "../support/bot.ts";
import { ask } from "../support/gate.ts";
import { VaultStandIn } from "../../standins/vault.ts";
import { waitFor } from "../../standins/wait.ts";
import { ACTIONS } from "../../views/actions.ts";
import { detectBypass } from "../../ops/detect_bypass.ts";
import { selfPasswordChange } from "../../ops/_own_actions.ts";

Deno.test("selfPasswordChange() matches a role changing its own password, and nothing else", () => {
  assert.equal(selfPasswordChange(`ALTER ROLE "vault_root" WITH PASSWORD 'x'`, "vault_root"), "vault_root");
  assert.equal(selfPasswordChange(`alter user vault_root password 'x'`, "vault_root"), "vault_root");
  assert.equal(selfPasswordChange(`ALTER ROLE "bisman_app" WITH PASSWORD 'x'`, "vault_root"), undefined);
  assert.equal(selfPasswordChange(`ALTER ROLE vault_root SUPERUSER`, "vault_root"), undefined);
  assert.equal(selfPasswordChange(`CREATE ROLE vault_root PASSWORD 'x'`, "vault_root"), undefined);
});

Deno.test("detect and the digest report the bot's own approved rotate root as such, with its request, not as an intrusion", async (t) => {
  await using cluster = await startCluster({
    name: "own-actions",
    preload: ["pgaudit", "pg_stat_statements"],
  });
  const { db, sql } = await createBismanDatabase(cluster);
  await sql.unsafe(`create role vault_root login createrole password 'root-initial-pw'`);
  const vault = await VaultStandIn.start();
  vault.configureDatabase("bisman", {
    connectionUrl: `postgres://127.0.0.1:${cluster.primary.port}/${db}`,
    username: "vault_root",
    password: "root-initial-pw",
  });
  const config = testConfig(cluster, (doc) => {
    doc.targets.main.primary.database = db;
    doc.targets.main.vault = { kv_mount: "secret", database_connection: "bisman" };
    doc.targets.main.security = { other_roles: ["postgres", "vault_root"] };
  });
  const tb = await startTestBot(cluster, {
    config,
    env: { VAULT_ADDR: vault.addr, VAULT_TOKEN: vault.rootToken },
  });
  try {
    await sql`select pg_stat_statements_reset()`;
    let id = 0;
    await t.step("an approved /bisman rotate root runs (Vault changes vault_root's password)", async () => {
      const a = await ask(tb, "rotate root");
      assert.ok(a.id, a.text);
      id = a.id!;
      assert.equal(await tb.click(ACTIONS.approve, id, USERS.bob), 200);
      await tb.waitForState(id, "succeeded");
    });

    await t.step(
      "detect lists it as the bot's own approved action, linked to its request; no finding",
      async () => {
        const r = await detectBypass({ target: "main" }, tb.bot.deps);
        assert.deepEqual(r.findings.filter((f) => f.kind === "role_change_outside_bot"), []);
        assert.equal(r.ownActions.length, 1, JSON.stringify(r));
        assert.match(
          r.ownActions[0],
          new RegExp(
            `vault_root changed its own password 1 time\\(s\\): .*approved \`rotate root\` on main \\(request #${id}`,
          ),
        );
        const answer = await ask(tb, "detect");
        assert.match(answer.text, /own approved action: vault_root changed its own password/);
        assert.doesNotMatch(answer.text, /role_change_outside_bot/);
        assert.ok(!answer.text.includes(vault.databasePassword("bisman")!), "the new password never shows");
      },
    );

    await t.step("the digest shows it as ok with its request, not as a critical anomaly", async () => {
      const before = tb.slack.responses.length;
      assert.equal((await tb.command("digest preview main")).status, 200);
      const reply = await waitFor(
        () =>
          tb.slack.responses.slice(before).map((r) => r.body).find((b) =>
            /Daily digest/.test(String(b.text))
          ),
        { timeoutMs: 20_000, what: "the digest preview" },
      );
      const text = JSON.stringify(reply.blocks).replace(/\\n/g, "\n");
      assert.match(
        text,
        new RegExp(
          `:large_green_circle: ok \\*Audit anomalies and security events\\*: the bot's own: vault_root changed its own password .*#${id}`,
        ),
      );
      assert.doesNotMatch(text, /red_circle: critical \*Audit anomalies/);
    });

    await t.step("a change nobody approved is still a finding", async () => {
      const c = postgres({
        host: "127.0.0.1",
        port: cluster.primary.port,
        database: db,
        username: "vault_root",
        password: vault.databasePassword("bisman")!,
        max: 1,
        onnotice: () => {},
      });
      try {
        await c.unsafe(`alter role vault_root password 'set-by-hand-pw'`);
      } finally {
        await c.end({ timeout: 2 });
      }
      const r = await detectBypass({ target: "main" }, tb.bot.deps);
      const [f] = r.findings.filter((x) => x.kind === "role_change_outside_bot");
      assert.equal(f?.subject.role, "vault_root", JSON.stringify(r.findings));
      assert.deepEqual(r.ownActions, [], "two changes, one approved run: nothing is explained away");
    });
  } finally {
    await tb.stop();
    await vault.stop();
  }
});
