import assert from "node:assert/strict";
import { parseConfig } from "../../core/config.ts";
import { createLogger, Secrets } from "../../core/log.ts";
import { Targets } from "../../core/targets.ts";
import { VaultClient } from "../../core/vault.ts";
import { type CredentialAge, readCredentialAges } from "../../ops/credential_ages.ts";
import type { OpDeps } from "../../ops/types.ts";
import { renderCredentialAges } from "../../views/rotate.ts";
import { VaultStandIn } from "../../standins/vault.ts";

const NOW = new Date("2025-06-01T12:00:00Z");
const daysAgo = (d: number) => new Date(NOW.getTime() - d * 86_400_000).toISOString();

/** Only config, Vault, the clock and logging: reading ages touches no database. */
function depsFor(vault: VaultClient | undefined, secrets: Secrets): OpDeps {
  const config = parseConfig({
    workspace: { team_id: "T0TEST" },
    slack: { ops_channel: "C0OPS" },
    access: { operators: { users: ["U0ALICE"] }, approvers: { users: ["U0BOB"] } },
    targets: {
      main: {
        primary: { host: "127.0.0.1", port: 1, user: "nobody" },
        roles: {
          ra: { path: "bisman/db", key: "a" },
          rb: { path: "bisman/db", key: "b" },
          rc: { path: "bisman/db", key: "c" },
          rd: { path: "svc/pay", key: "d" },
          re: { path: "bisman/db", key: "missing" },
          rf: { path: "not/there", key: "x" },
        },
      },
    },
  });
  return {
    config,
    targets: new Targets(config, secrets),
    log: createLogger(secrets, { sink: () => {} }),
    now: () => NOW,
    secrets,
    vault,
  } as OpDeps;
}

function byRole(ages: CredentialAge[]): Record<string, CredentialAge> {
  return Object.fromEntries(ages.map((a) => [a.role, a]));
}

Deno.test("readCredentialAges() dates each key by the version where its value last changed", async (t) => {
  const v = await VaultStandIn.start();
  const secrets = new Secrets();
  const deps = depsFor(new VaultClient({ addr: v.addr, token: v.rootToken, secrets }), secrets);
  try {
    // One shared secret, as the seed keeps it: every rotation writes the whole secret.
    v.kvPut("bisman/db", { a: "A1-secret", b: "B1-secret", c: "C1-secret" });
    v.kvPut("bisman/db", { a: "A2-secret", b: "B1-secret", c: "C1-secret" });
    v.kvPut("bisman/db", { a: "A2-secret", b: "B2-secret", c: "C1-secret" });
    v.kvPut("bisman/db", { a: "A2-secret", b: "B3-secret", c: "C1-secret" });
    // A failed rotation's write-back: b returns to B2, which is as old as version 3.
    v.kvPut("bisman/db", { a: "A2-secret", b: "B2-secret", c: "C1-secret" });
    [200, 100, 10, 5, 4].forEach((d, i) => v.setCreatedTime("bisman/db", i + 1, daysAgo(d)));
    // Twelve versions where d never changes: only ten are kept, so its age is a lower bound.
    for (let i = 1; i <= 12; i++) v.kvPut("svc/pay", { d: "D-secret", n: String(i) });
    v.setCreatedTime("svc/pay", 3, daysAgo(95));

    const ages = byRole(await readCredentialAges("main", deps));
    await t.step("each role sharing a secret gets its own age", () => {
      assert.deepEqual(
        [ages.ra.sinceVersion, ages.ra.ageDays, ages.ra.overdue, ages.ra.atLeast],
        [2, 100, true, false],
      );
      assert.equal(ages.ra.ref, "secret/bisman/db#a");
      assert.equal(ages.ra.currentVersion, 5);
      assert.equal(ages.rc.sinceVersion, 1);
      assert.equal(ages.rc.ageDays, 200);
      assert.equal(ages.rc.atLeast, false, "version 1 is the whole history");
      assert.equal(ages.rc.maxAgeDays, 90);
    });
    await t.step("a value written back keeps the age of its first appearance", () => {
      assert.equal(ages.rb.sinceVersion, 3);
      assert.equal(ages.rb.ageDays, 10);
      assert.equal(ages.rb.overdue, false);
    });
    await t.step(
      "when pruned history still holds the value, the age is at least the oldest kept version's",
      () => {
        assert.equal(ages.rd.sinceVersion, 3);
        assert.equal(ages.rd.atLeast, true);
        assert.equal(ages.rd.overdue, true);
      },
    );
    await t.step("a missing key or secret is reported per role, without throwing", () => {
      assert.equal(ages.re.error, "no such key in the current version");
      assert.match(ages.rf.error ?? "", /does not exist in Vault/);
      assert.equal(ages.rf.overdue, false);
    });
    await t.step("/bisman creds renders them without any password", () => {
      const reply = renderCredentialAges("main", Object.values(ages));
      assert.match(reply.text, /3 of 6 credentials on main are past their maximum age: ra, rc, rd/);
      assert.match(reply.text, /rd secret\/svc\/pay#d: >=/);
      const all = JSON.stringify(reply);
      for (const s of ["A2-secret", "B2-secret", "C1-secret", "D-secret"]) assert.ok(!all.includes(s));
      assert.ok(all.includes("past the 90-day maximum"));
    });
  } finally {
    await v.stop();
  }
});

Deno.test("readCredentialAges() reports a sealed Vault per role and refuses without Vault", async () => {
  const v = await VaultStandIn.start();
  const secrets = new Secrets();
  try {
    v.kvPut("bisman/db", { a: "x-secret" });
    v.seal();
    const ages = await readCredentialAges(
      "main",
      depsFor(new VaultClient({ addr: v.addr, token: v.rootToken, secrets }), secrets),
    );
    assert.equal(ages.length, 6);
    assert.ok(ages.every((a) => /is sealed/.test(a.error ?? "") && !a.overdue));
    await assert.rejects(
      readCredentialAges("main", depsFor(undefined, secrets)),
      (e: { code?: string; userMessage?: string }) =>
        e.code === "not_configured" && /Vault is not configured/.test(e.userMessage ?? ""),
    );
    await assert.rejects(
      readCredentialAges(
        "nope",
        depsFor(new VaultClient({ addr: v.addr, token: v.rootToken, secrets }), secrets),
      ),
      /Unknown target "nope"/,
    );
  } finally {
    await v.stop();
  }
});
