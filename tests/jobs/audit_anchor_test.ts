import assert from "node:assert/strict";
import { startCluster } from "../../standins/cluster.ts";
import { OPS_CHANNEL, startTestBot, testConfig, USERS } from "../support/bot.ts";
import { parsePolicyHcl, VaultStandIn } from "../../standins/vault.ts";
import { anchorKey } from "../../core/witness.ts";
import { ask } from "../support/gate.ts";
import { waitFor } from "../../standins/wait.ts";
import { checkAnchor, parseAnchor } from "../../core/audit.ts";

Deno.test("checkAnchor() and parseAnchor(): a missing anchor row and a rewritten one are named", () => {
  const hash = "a".repeat(64);
  assert.deepEqual(parseAnchor(`12:${hash}`), { seq: 12, hash });
  assert.deepEqual(parseAnchor(` #12:${hash.toUpperCase()} `), { seq: 12, hash });
  assert.equal(parseAnchor(`12:${hash.slice(1)}`), undefined);
  assert.equal(parseAnchor(`0:${hash}`), undefined);
  assert.deepEqual(checkAnchor({ seq: 12, hash }, { seq: 12, hash }), { ok: true });
  const gone = checkAnchor({ seq: 12, hash }, undefined, { seq: 9, hash: "b".repeat(64) });
  assert.equal(gone.ok, false);
  assert.match(!gone.ok ? gone.problem : "", /row 12 is gone: the log now ends at row 9, so rows 10…12/);
  const rewritten = checkAnchor({ seq: 12, hash }, { seq: 12, hash: "c".repeat(64) });
  assert.match(
    !rewritten.ok ? rewritten.problem : "",
    /row 12's hash is now cccccccccccccccc…, the anchor says aaaaaaaaaaaaaaaa…/,
  );
});

Deno.test("audit_anchor posts the chain's head; verify anchor=… finds newest rows a superuser deleted, which the chain alone cannot", async (t) => {
  await using cluster = await startCluster({ name: "anchor" });
  const stateDb = await cluster.createDatabase("anchorstate");
  const superuser = cluster.primary.sql(stateDb);
  const tb = await startTestBot(cluster, { stateDb });
  try {
    for (let i = 0; i < 4; i++) await ask(tb, "help");
    // Commands are audited after their ack: wait for their rows, so the chain has a head.
    await waitFor(
      async () => (await tb.bot.deps.audit.rows()).filter((r) => r.action === "command.received").length >= 4,
      {
        what: "the 4 commands' audit rows",
      },
    );
    let anchor = "";
    await t.step(
      "the job posts the head's row number and full hash to the ops channel, and records it",
      async () => {
        const before = (await tb.bot.deps.audit.verify()) as { head: { seq: number; hash: string } };
        const run = await tb.bot.scheduler.runNow("audit_anchor", {
          userId: USERS.bob,
          via: "slack",
          teamId: "T0TEST",
        });
        assert.equal(run.outcome, "ok");
        const msg = tb.slack.messages.findLast((m) =>
          m.channel === OPS_CHANNEL && /Audit log anchor/.test(m.text ?? "")
        )!;
        const m = /row (\d+), hash ([0-9a-f]{64})/.exec(msg.text!)!;
        // The head when the job ran (other jobs of the bot may append rows at any moment): the log holds
        // that row with that hash, and it is no older than the head seen before the run.
        assert.ok(Number(m[1]) >= before.head.seq);
        const [row] = await superuser<{ hash: string }[]>`
          select hash from bisman_ops.audit_log where seq = ${Number(m[1])}`;
        assert.equal(row.hash, m[2]);
        anchor = `${m[1]}:${m[2]}`;
        assert.match(msg.text!, new RegExp(`/bisman audit-log verify anchor=${anchor}`));
        const rows = (await tb.bot.deps.audit.rows()).filter((r) => r.action === "audit.anchored");
        assert.equal(rows[0].details.hash, m[2]);
      },
    );

    await t.step("while the rows are there, the anchor holds", async () => {
      for (let i = 0; i < 3; i++) await ask(tb, "help");
      const r = await ask(tb, `audit-log verify anchor=${anchor}`, USERS.bob);
      assert.match(r.text, new RegExp(`Audit log holds the anchor: row ${anchor.split(":")[0]} has hash`));
    });

    await t.step(
      "a superuser deletes the newest rows: the anchor check names the gap, plain verify cannot",
      async () => {
        const seq = Number(anchor.split(":")[0]);
        await superuser.begin(async (tx) => {
          await tx`alter table bisman_ops.audit_log disable trigger audit_log_no_update_delete`;
          await tx`delete from bisman_ops.audit_log where seq >= ${seq - 1}`;
          await tx`alter table bisman_ops.audit_log enable trigger audit_log_no_update_delete`;
        });
        const r = await ask(tb, `audit-log verify anchor=${anchor}`, USERS.bob);
        assert.match(
          r.text,
          // Usually "gone"; a row another job appended meanwhile can already sit at that position.
          new RegExp(
            `does not hold the anchor row ${seq}: row ${seq} (is gone: the log now ends at row \\d+|'s hash is now)`,
          ),
        );
        assert.equal(r.visibility, "in_channel", "a broken log is said in the channel");
        const plain = await ask(tb, "audit-log verify", USERS.bob);
        assert.match(plain.text, /Audit log intact/, "a shortened chain is still a valid chain");
        const again = await ask(tb, `audit-log verify anchor=${anchor}`, USERS.bob);
        assert.match(again.text, /does not hold the anchor row/, "rows written since do not bring it back");
      },
    );

    await t.step("the digest posts the head too, in its thread", async () => {
      const run = await tb.bot.scheduler.runNow("digest", {
        userId: USERS.bob,
        via: "slack",
        teamId: "T0TEST",
      });
      const digest = tb.slack.messages.find((m) =>
        m.ts === (run.details as { message?: { ts: string } }).message?.ts
      ) ??
        tb.slack.messages.findLast((m) => /^Daily digest/.test(m.text ?? ""))!;
      const reply = tb.slack.messages.find((m) =>
        m.thread_ts === digest.ts && /Audit log anchor/.test(m.text ?? "")
      );
      assert.ok(reply, "an anchor reply in the digest's thread");
      assert.match(reply.text!, /row \d+, hash [0-9a-f]{64}/);
    });
  } finally {
    await tb.stop();
  }
});

Deno.test("with a Vault witness, deleting the newest rows is caught by the anchor read back from it, and the bot's token cannot change the witness", async (t) => {
  await using cluster = await startCluster({ name: "witness" });
  const stateDb = await cluster.createDatabase("witnessstate");
  const superuser = cluster.primary.sql(stateDb);
  const vault = await VaultStandIn.start();
  // The policy the deployment ships (deploy/vault/bisman-ops.hcl): on the witness, create, read and list only.
  const botToken = vault.issueToken(
    parsePolicyHcl(await Deno.readTextFile(new URL("../../deploy/vault/bisman-ops.hcl", import.meta.url))),
  );
  const config = testConfig(cluster, (doc) => {
    doc.audit_log = { witness: { vault_path: "bisman/audit-anchors" } };
  });
  const tb = await startTestBot(cluster, {
    stateDb,
    config,
    env: { VAULT_ADDR: vault.addr, VAULT_TOKEN: botToken },
  });
  const asBot = vault.addr + "/v1/secret";
  const call = (method: string, path: string, body?: unknown) =>
    fetch(`${asBot}/${path}`, {
      method,
      headers: { "x-vault-token": botToken, "content-type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    }).then(async (r) => ({ status: r.status, body: await r.text() }));
  try {
    for (let i = 0; i < 4; i++) await ask(tb, "help");
    await waitFor(
      async () => (await tb.bot.deps.audit.rows()).filter((r) => r.action === "command.received").length >= 4,
      { what: "the 4 commands' audit rows" },
    );
    let seq = 0;
    await t.step("the anchor job writes the head to the witness as a new entry", async () => {
      const run = await tb.bot.scheduler.runNow("audit_anchor", {
        userId: USERS.bob,
        via: "slack",
        teamId: "T0TEST",
      });
      assert.equal(run.outcome, "ok", run.error ?? "");
      assert.match(run.summary ?? "", /witnessed in Vault secret\/bisman\/audit-anchors/);
      const anchored = (await tb.bot.deps.audit.rows()).findLast((r) => r.action === "audit.anchored")!;
      seq = Number(anchored.details.seq);
      const entry = vault.kvGet(`bisman/audit-anchors/${anchorKey(seq)}`)!;
      assert.equal(entry.data.hash, anchored.details.hash);
      assert.ok(tb.logs.some((l) => l.includes('"anchor_seq":' + seq)), "the anchor is a log line too");
      const r = await ask(tb, "audit-log verify", USERS.bob);
      assert.match(r.text, new RegExp(`holds the newest anchor in the witness .*: row ${seq}`));
    });

    await t.step("the bot's token cannot overwrite, delete or destroy the anchor", async () => {
      const key = `bisman/audit-anchors/${anchorKey(seq)}`;
      const overwrite = await call("POST", `data/${key}`, { data: { seq: "1", hash: "0".repeat(64) } });
      assert.equal(overwrite.status, 403, overwrite.body);
      assert.equal((await call("DELETE", `data/${key}`)).status, 403);
      assert.equal((await call("DELETE", `metadata/${key}`)).status, 403);
      assert.equal((await call("POST", `destroy/${key}`, { versions: [1] })).status, 403);
      assert.equal((await call("POST", `delete/${key}`, { versions: [1] })).status, 403);
      assert.equal(vault.kvGet(key)!.data.seq, String(seq), "unchanged");
    });

    await t.step("a superuser deletes the newest rows: plain verify names it from the witness", async () => {
      await superuser.begin(async (tx) => {
        await tx`alter table bisman_ops.audit_log disable trigger audit_log_no_update_delete`;
        await tx`delete from bisman_ops.audit_log where seq >= ${seq - 1}`;
        await tx`alter table bisman_ops.audit_log enable trigger audit_log_no_update_delete`;
      });
      const r = await ask(tb, "audit-log verify", USERS.bob);
      assert.match(
        r.text,
        /Audit log fails its witness: the newest anchor in Vault secret\/bisman\/audit-anchors/,
      );
      assert.match(r.text, new RegExp(`row ${seq} is gone: the log now ends at row ${seq - 2}`));
      assert.equal(r.visibility, "in_channel");
    });

    await t.step("a witness that cannot be read is said so, not counted as fine", async () => {
      vault.seal();
      const r = await ask(tb, "audit-log verify", USERS.bob);
      assert.match(r.text, /Could not check the witness \(Vault secret\/bisman\/audit-anchors\)/);
      vault.unseal();
    });
  } finally {
    await tb.stop();
    await vault.stop();
  }
});

Deno.test("rows deleted back past the witnessed anchor are not blessed by the next anchor", async (t) => {
  // The witness is read back by verify only at its newest anchor. Were the next day's anchor written over a
  // log a superuser cut back past the previous anchor (and the bot then appended past that row again),
  // the newest anchor would match and the deletion would never show.
  await using cluster = await startCluster({ name: "witness-next" });
  const stateDb = await cluster.createDatabase("witnessnext");
  const superuser = cluster.primary.sql(stateDb);
  const vault = await VaultStandIn.start();
  const botToken = vault.issueToken(
    parsePolicyHcl(await Deno.readTextFile(new URL("../../deploy/vault/bisman-ops.hcl", import.meta.url))),
  );
  const config = testConfig(cluster, (doc) => {
    doc.audit_log = { witness: { vault_path: "bisman/audit-anchors" } };
  });
  const tb = await startTestBot(cluster, {
    stateDb,
    config,
    env: { VAULT_ADDR: vault.addr, VAULT_TOKEN: botToken },
  });
  const bob = { userId: USERS.bob, via: "slack" as const, teamId: "T0TEST" };
  const newestAnchor = async () => (await tb.bot.deps.witness!.newest())!.seq;
  try {
    for (let i = 0; i < 4; i++) await ask(tb, "help");
    const first = await tb.bot.scheduler.runNow("audit_anchor", bob);
    assert.equal(first.outcome, "ok", first.error ?? "");
    const seq = Number(
      (await tb.bot.deps.audit.rows()).findLast((r) => r.action === "audit.anchored")!
        .details.seq,
    );

    await t.step("an untouched log gets its next anchor", async () => {
      await ask(tb, "help");
      const next = await tb.bot.scheduler.runNow("audit_anchor", bob);
      assert.equal(next.outcome, "ok", next.error ?? "");
      assert.ok(await newestAnchor() > seq);
    });

    await t.step(
      "cut back past the newest anchor, then grown past it: no new anchor, and said so",
      async () => {
        const newest = await newestAnchor();
        await superuser.begin(async (tx) => {
          await tx`alter table bisman_ops.audit_log disable trigger audit_log_no_update_delete`;
          await tx`delete from bisman_ops.audit_log where seq >= ${seq - 1}`;
          await tx`alter table bisman_ops.audit_log enable trigger audit_log_no_update_delete`;
        });
        for (let i = 0; i < 8; i++) await ask(tb, "help");
        const run = await tb.bot.scheduler.runNow("audit_anchor", bob);
        assert.equal(
          run.outcome,
          "failed",
          "the anchor job refuses to anchor a log that lost its witnessed row",
        );
        assert.match(run.error ?? "", /Not anchored: .*row \d+'s hash is now/);
        assert.equal(await newestAnchor(), newest, "the witness's newest anchor is still the old one");
        const r = await ask(tb, "audit-log verify", USERS.bob);
        assert.match(r.text, /Audit log fails its witness/);
      },
    );
  } finally {
    await tb.stop();
    await vault.stop();
  }
});
