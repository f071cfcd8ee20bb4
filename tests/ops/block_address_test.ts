import assert from "node:assert/strict";
import postgres from "postgres";
import { startCluster } from "../../standins/cluster.ts";
import {
  connectAs,
  createBismanDatabase,
  setTestPassword,
  TEST_PASSWORDS,
} from "../support/bisman_schema.ts";
import { testOpDeps } from "../support/op_deps.ts";
import { testConfig, USERS } from "../support/bot.ts";
import { waitFor } from "../../standins/wait.ts";
import { blockAddress } from "../../ops/block_address.ts";
import { unblockAddress } from "../../ops/unblock_address.ts";
import { applyHbaChange, contentHash } from "../../ops/_hba.ts";

Deno.test("block_address rejects new connections from one loopback address and not the other; unblock restores them; a bad edit never stays", async (t) => {
  await using cluster = await startCluster({ name: "block", listenAddresses: ["127.0.0.1", "127.0.0.2"] });
  const { db, sql } = await createBismanDatabase(cluster);
  const hbaPath = `${cluster.primary.dataDir}/pg_hba.conf`;
  const original = await Deno.readTextFile(hbaPath);
  const managed = testConfig(cluster, (doc) => {
    doc.targets.main.primary.database = db;
    doc.targets.main.security = { other_roles: ["postgres", "bisman_ops"], manage_hba: { path: hbaPath } };
  });
  const deps = { ...(await testOpDeps(cluster, { config: managed })), actor: USERS.alice };
  await setTestPassword(cluster, "bisman_app");

  /** Opens a session as bisman_app whose socket really comes from `from`; resolves to the client or the error. */
  const connectFrom = async (
    from: string,
  ): Promise<{ ok: true; sql: postgres.Sql } | { ok: false; error: string }> => {
    const c = await connectAs(cluster, db, "bisman_app", {
      localAddress: from,
      password: TEST_PASSWORDS.bisman_app,
      setPassword: false,
    });
    try {
      const [{ addr }] = await c<{ addr: string }[]>`select host(inet_client_addr()) as addr`;
      assert.equal(addr, from, "the server sees the client's real address");
      return { ok: true, sql: c };
    } catch (err) {
      await c.end({ timeout: 1 });
      return { ok: false, error: err instanceof Error ? err.message : String(err) };
    }
  };
  const accepted = async (from: string) => {
    const r = await connectFrom(from);
    if (r.ok) await r.sql.end({ timeout: 1 });
    return r.ok ? "accepted" : r.error;
  };

  try {
    let victim: postgres.Sql | undefined;

    await t.step("before: both addresses connect, and a session from 127.0.0.2 stays open", async () => {
      assert.equal(await accepted("127.0.0.1"), "accepted");
      const r = await connectFrom("127.0.0.2");
      assert.ok(r.ok);
      victim = r.sql;
    });

    await t.step("plan() refuses the bot's own address and overly wide ranges", async () => {
      await assert.rejects(
        blockAddress.plan({ target: "main", address: "127.0.0.1" }, deps),
        /Cannot block 127\.0\.0\.1\/32: the bot itself connects to main from 127\.0\.0\.1/,
      );
      await assert.rejects(
        blockAddress.plan({ target: "main", address: "127.0.0.0/8" }, deps),
        /the bot itself connects/,
      );
      await assert.rejects(
        blockAddress.plan({ target: "main", address: "0.0.0.0/0" }, deps),
        /wider than \/8/,
      );
    });

    await t.step(
      "block 127.0.0.2: the plan shows the exact line; the run inserts it first, reloads, cuts the open session",
      async () => {
        const plan = await blockAddress.plan({ target: "main", address: "127.0.0.2" }, deps);
        assert.equal(plan.hbaPath, hbaPath);
        assert.equal(plan.hbaLine, "host    all    all    127.0.0.2/32    reject");
        assert.ok(plan.steps[0].endsWith("host    all    all    127.0.0.2/32    reject"));
        assert.equal(plan.sessions.length, 1);
        assert.equal(plan.fingerprint.hbaSha256, await contentHash(original));
        assert.equal(await blockAddress.revalidate!(plan, deps), undefined);

        const result = await blockAddress.run(plan, deps);
        assert.equal(result.managed, true);
        assert.equal(result.outcome, "blocked", "applied and seen in pg_hba_file_rules");
        assert.equal(result.terminated.terminated.length, 1);
        const lines = (await Deno.readTextFile(hbaPath)).split("\n");
        assert.match(lines[result.ruleLine! - 2], /^# bisman-ops block 127\.0\.0\.2\/32 by=U0ALICE at=\S+Z$/);
        assert.equal(lines[result.ruleLine! - 1], plan.hbaLine);
        assert.ok(
          lines.slice(0, result.ruleLine! - 2).every((l) => l.trim() === "" || l.startsWith("#")),
          "above every other rule",
        );

        assert.match(await accepted("127.0.0.2"), /pg_hba\.conf rejects connection for host "127\.0\.0\.2"/);
        assert.equal(await accepted("127.0.0.1"), "accepted");
        await assert.rejects(victim!`select 1`, "the open session from 127.0.0.2 was terminated");
        const [ev] =
          await sql`select actor, host(target_address) as addr, details from security_events where event_type = 'address_blocked'`;
        assert.deepEqual([ev.actor, ev.addr, ev.details.rule_line], [
          USERS.alice,
          "127.0.0.2",
          result.ruleLine,
        ]);
        await assert.rejects(
          blockAddress.plan({ target: "main", address: "127.0.0.2" }, deps),
          /already blocked/,
        );
      },
    );

    await t.step(
      "a pg_hba.conf edit that would not parse is put back at once, and nothing is reloaded",
      async () => {
        const before = await Deno.readTextFile(hbaPath);
        // A new backend shows when the postmaster last loaded its configuration.
        const loadTime = async () => (await cluster.primary.psql("select pg_conf_load_time()")).trim();
        const t0 = await loadTime();
        await assert.rejects(
          applyHbaChange(sql, hbaPath, (c) => `host all all 10.0.0.1/33 reject\n${c}`),
          (err: Error & { step?: string }) =>
            err.step === "hba.parse" &&
            /would not parse .*the previous file was put back and nothing was reloaded/.test(err.message),
        );
        assert.equal(await Deno.readTextFile(hbaPath), before, "byte for byte the file before the edit");
        assert.equal(await loadTime(), t0, "no reload happened");
        assert.equal(await accepted("127.0.0.1"), "accepted");
        await assert.rejects(
          applyHbaChange(sql, hbaPath, (c) => c, { expectedHash: "0".repeat(64) }),
          (err: Error & { step?: string }) => err.step === "hba.changed",
        );
      },
    );

    await t.step(
      "unblock removes exactly the bot's lines: 127.0.0.2 connects again and the file is as it was",
      async () => {
        const plan = await unblockAddress.plan({ target: "main", address: "127.0.0.2" }, deps);
        assert.equal(plan.blocks.length, 1);
        const result = await unblockAddress.run(plan, deps);
        assert.equal(result.removed, 1);
        assert.equal(await Deno.readTextFile(hbaPath), original);
        await waitFor(async () => (await accepted("127.0.0.2")) === "accepted", {
          what: "127.0.0.2 accepted again",
        });
        await assert.rejects(
          unblockAddress.plan({ target: "main", address: "127.0.0.2" }, deps),
          /not blocked by the bot/,
        );
        const events =
          await sql`select event_type from security_events where event_type like 'address_%' order by id`;
        assert.deepEqual(events.map((e) => e.event_type), ["address_blocked", "address_unblocked"]);
      },
    );

    await t.step(
      "without manage_hba the plan hands a person the pg_hba.conf line and the Kong deny entry; the file is untouched",
      async () => {
        const unmanaged = testConfig(cluster, (doc) => {
          doc.targets.main.primary.database = db;
          doc.targets.main.security = { other_roles: ["postgres", "bisman_ops"] };
        });
        const d2 = { ...(await testOpDeps(cluster, { config: unmanaged })), actor: USERS.bob };
        try {
          const plan = await blockAddress.plan({ target: "main", address: "127.0.0.2" }, d2);
          assert.equal(plan.hbaPath, undefined);
          assert.ok(plan.steps.some((s) => s.includes("host    all    all    127.0.0.2/32    reject")));
          assert.ok(
            plan.steps.some((s) =>
              s.includes("name: ip-restriction") && s.includes("deny:\n        - 127.0.0.2/32")
            ),
          );
          const result = await blockAddress.run(plan, d2);
          assert.equal(result.managed, false);
          assert.equal(result.outcome, "handed_to_person");
          assert.equal(result.manualSteps.length, 2);
          assert.equal(await Deno.readTextFile(hbaPath), original);
          assert.equal(await accepted("127.0.0.2"), "accepted");
          // Nothing was blocked: the record and the answer say it was handed over, not blocked.
          assert.match(
            blockAddress.describeResult!(result),
            /127\.0\.0\.2\/32 is NOT blocked yet: handed to a person/,
          );
          const [ev] = await sql`
            select event_type, severity from security_events where event_type like 'address_%' order by id desc limit 1`;
          assert.deepEqual({ ...ev }, { event_type: "address_block_handed_over", severity: "warning" });
        } finally {
          await d2.close();
        }
      },
    );
  } finally {
    await Deno.writeTextFile(hbaPath, original).catch(() => undefined);
    await deps.close();
  }
});
