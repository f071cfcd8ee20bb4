import assert from "node:assert/strict";
import { parse as parseYaml } from "yaml";
import { freePort, startCluster } from "../../standins/cluster.ts";
import { setupStanza } from "../../standins/pgbackrest.ts";
import { startTestBot, type TestBot, USERS } from "../support/bot.ts";
import { ask } from "../support/gate.ts";
import { waitFor } from "../../standins/wait.ts";
import { parseConfig } from "../../core/config.ts";
import { ACTIONS, INPUTS, VIEWS } from "../../views/actions.ts";

/**
 * bisman.example.yaml as shipped, with only what names this machine changed: target prod's primary and replica
 * are the test cluster, its pgBackRest stanza and dump folder are the test's. Policies (promote: 2 approvals,
 * typed confirmation) and the backup defaults (on-demand source: pgBackRest) stay the example's.
 */
async function exampleConfig(
  conn: (port: number) => Record<string, unknown>,
  ports: { primary: number; replica: number; replica2: number },
  backups: { stanza: string; configFile: string; dumps: string },
) {
  const doc = parseYaml(
    await Deno.readTextFile(new URL("../../bisman.example.yaml", import.meta.url)),
  ) as any;
  const prod = doc.targets.prod;
  prod.primary = conn(ports.primary);
  prod.replicas = [{ name: "replica1", ...conn(ports.replica) }, {
    name: "replica2",
    ...conn(ports.replica2),
  }];
  prod.backups.pgbackrest = {
    ...prod.backups.pgbackrest,
    stanza: backups.stanza,
    config_file: backups.configFile,
    run_as: "postgres",
  };
  prod.backups.dump_folder = { ...prod.backups.dump_folder, path: backups.dumps };
  return parseConfig(doc, "bisman.example.yaml (test cluster)");
}

/** Approves request `id` as `user` through the typed-confirmation modal the example's promote policy asks for. */
async function approveTyped(tb: TestBot, id: number, user: string, typed: string): Promise<void> {
  const opened = tb.slack.views.length;
  assert.equal(await tb.click(ACTIONS.approve, id, user), 200);
  await waitFor(
    () => tb.slack.views.slice(opened).some((v) => (v.view as any).callback_id === VIEWS.typedConfirmation),
    { what: `the typed-confirmation modal for ${user}` },
  );
  const r = await tb.submitView(VIEWS.typedConfirmation, user, {
    [INPUTS.typed.block]: { [INPUTS.typed.action]: typed },
  });
  assert.equal(r.status, 200);
}

// Promotion is one-shot for a cluster: this file has its own, and its steps run in order.
Deno.test("promote with the example's defaults: the primary stopped, the backup step is skipped with its reason, two approvals promote and writes are accepted", async (t) => {
  await using cluster = await startCluster({ name: "promote-incident", archive: true, replica: true });
  const stanza = await setupStanza(cluster);
  const dumps = `${cluster.dir}/dumps`;
  await Deno.mkdir(dumps);
  const conn = (port: number) => ({
    host: "127.0.0.1",
    port,
    database: "postgres",
    user: "postgres",
    sslmode: "disable",
    connect_timeout_seconds: 3,
  });
  // replica2 is configured but its server is gone: the result must say so, not call it a standby.
  const replica2 = await freePort();
  const config = await exampleConfig(
    conn,
    { primary: cluster.primary.port, replica: cluster.replica!.port, replica2 },
    {
      stanza: stanza.name,
      configFile: stanza.configFile,
      dumps,
    },
  );
  assert.equal(config.targets.prod.backups?.on_demand.source, undefined, "the example's default source");
  // The bot's own state lives on a cluster of its own: this test stops the target's primary.
  await using stateCluster = await startCluster({ name: "promote-incident-state" });
  const tb = await startTestBot(stateCluster, { config });
  const stanzaBackups = async () => ((await stanza.info())[0] as { backup?: unknown[] }).backup?.length ?? 0;
  const auditOf = async (id: number) =>
    (await tb.bot.deps.audit.rows({ requestId: id })).map((r) => ({
      at: `${r.action}:${r.outcome}`,
      details: r.details as Record<string, unknown>,
    }));
  try {
    const primary = cluster.primary.sql();
    await primary`create table promo_t (id int primary key)`;
    await primary`insert into promo_t values (1)`;
    await cluster.waitForReplay();
    let early = 0;

    await t.step("with the primary up, the plan keeps 'take a backup first'", async () => {
      const r = await ask(tb, "promote replica1");
      assert.ok(r.id, r.text);
      early = r.id!;
      const view = (await tb.bot.gate.view(early))!;
      assert.equal(view.request.pre_backup, true);
      assert.match(JSON.stringify(tb.approvalMessage(early)!.blocks), /Step 0, take a backup first\*: kept/);
    });

    await t.step("the primary stops (the seed's replication failure)", async () => {
      await cluster.primary.stop("fast");
    });

    let id = 0;
    await t.step(
      "a request now skips the backup step: the reason is on the plan and in the audit log",
      async () => {
        const r = await ask(tb, "promote replica1");
        assert.ok(r.id, r.text);
        id = r.id!;
        const view = (await tb.bot.gate.view(id))!;
        assert.equal(view.request.pre_backup, null, "no backup step to keep or drop");
        const note = view.request.notes.find((n) => /take a backup first: skipped/.test(n));
        assert.ok(note, view.request.notes.join("\n"));
        assert.match(note!, new RegExp(`primary 127\\.0\\.0\\.1:${cluster.primary.port} does not answer`));
        const shown = JSON.stringify(tb.approvalMessage(id)!.blocks);
        assert.match(shown, /take a backup first: skipped/);
        assert.match(shown, /does not answer/);
        assert.doesNotMatch(shown, /SPLIT BRAIN/);
        const skipped = (await auditOf(id)).find((e) => e.at === "request.backup_first_skipped:skipped");
        assert.ok(skipped, "request.backup_first_skipped is recorded");
        assert.match(String(skipped!.details.reason), /does not answer.*every backup source of prod/);
      },
    );

    await t.step(
      "two approvals with typed confirmation promote the replica, and it accepts writes",
      async () => {
        const before = await stanzaBackups();
        await approveTyped(tb, id, USERS.bob, "prod");
        await waitFor(async () => (await tb.bot.gate.view(id))!.approvals.length === 1, {
          what: "bob's approval",
        });
        assert.equal((await tb.bot.gate.view(id))!.request.state, "pending", "one approval is not enough");
        await approveTyped(tb, id, USERS.carol, "prod");
        await tb.waitForState(id, "succeeded", 90_000);
        const rsql = cluster.replica!.sql();
        const [r] = await rsql`select pg_is_in_recovery() as r`;
        assert.equal(r.r, false);
        await rsql`insert into promo_t values (2)`;
        const [{ n }] = await rsql`select count(*)::int as n from promo_t`;
        assert.equal(n, 2);
        assert.equal(await stanzaBackups(), before, "no backup was attempted from the dead primary");

        const row = (await tb.bot.gate.view(id))!.request;
        const result = row.result as any;
        assert.equal(result.timeline, 2);
        assert.equal(result.writes.verified, true);
        assert.match(result.writes.xid, /^\d+$/);
        assert.equal(result.oldPrimary.state, "down");
        assert.equal(result.otherReplicas.length, 1);
        assert.equal(result.otherReplicas[0].name, "replica2");
        assert.match(
          result.otherReplicas[0].state,
          new RegExp(`^does not answer \\(prod/replica2 \\(127\\.0\\.0\\.1:${replica2}\\)`),
        );
        assert.ok(
          result.next.some((s: string) => /^Point replica2 at 127\.0\.0\.1:\d+ \(primary_conninfo/.test(s)),
        );
        assert.match(row.summary!, /Other replicas: replica2 does not answer/);
        assert.ok(result.next.some((s: string) => /Point the application/.test(s)));
        assert.ok(result.next.some((s: string) => /Investigate why replication failed/.test(s)));
        assert.match(row.summary!, /timeline 1 → 2/);
        assert.match(row.summary!, /writes accepted/);
        assert.match(row.summary!, /Next: \(1\) Point the application/);
        assert.match(tb.approvalMessage(id)!.text!, /succeeded: prod\/replica1 promoted/);

        const audit = await auditOf(id);
        const order = audit.map((e) => e.at);
        assert.ok(order.includes("request.backup_first_skipped:skipped"), order.join(" "));
        assert.ok(!order.some((a) => a.startsWith("op.backup_first:started")), order.join(" "));
        assert.ok(order.indexOf("op.started:started") < order.indexOf("op.succeeded:succeeded"));
      },
    );

    await t.step(
      "the request made while the primary was up: at run time its backup step is skipped with the reason, and the plan no longer holds",
      async () => {
        const before = await stanzaBackups();
        await approveTyped(tb, early, USERS.bob, "prod");
        await waitFor(async () => (await tb.bot.gate.view(early))!.approvals.length === 1, {
          what: "bob's approval",
        });
        await approveTyped(tb, early, USERS.carol, "prod");
        await tb.waitForState(early, "stale", 60_000);
        const audit = await auditOf(early);
        const skipped = audit.find((e) => e.at === "op.backup_first:skipped");
        assert.ok(skipped, audit.map((e) => e.at).join(" "));
        assert.match(String(skipped!.details.reason), /does not answer/);
        assert.ok(!audit.some((e) => e.at === "op.backup_first:started"));
        assert.equal(await stanzaBackups(), before);
        assert.match((await tb.bot.gate.view(early))!.request.error!, /no longer a standby/);
      },
    );
  } finally {
    await tb.stop();
  }
});
