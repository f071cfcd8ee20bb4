import assert from "node:assert/strict";
import { startCluster } from "../../standins/cluster.ts";
import { startTestBot, testConfig } from "../support/bot.ts";
import { createBismanDatabase } from "../support/bisman_schema.ts";
import { archiveAuditRows } from "../../jobs/audit_archive.ts";
import { ConfigError } from "../../core/config.ts";
import { StepFailed } from "../../core/errors.ts";
import type { Config } from "../../core/config.ts";
import type { OpDeps } from "../../ops/types.ts";

/** Writes an executable shell script. */
async function script(path: string, body: string): Promise<string> {
  await Deno.writeTextFile(path, `#!/bin/sh\n${body}\n`);
  await Deno.chmod(path, 0o755);
  return path;
}

Deno.test("audit rows are deleted only after the archive read back from its durable destination holds exactly them", async (t) => {
  await using cluster = await startCluster({ name: "audit-archive" });
  const { db, sql } = await createBismanDatabase(cluster, { rows: { clients: 5 } });
  const dir = await Deno.makeTempDir({ prefix: "bisman-archive-" });
  const store = await Deno.makeTempDir({ prefix: "bisman-archive-store-" });
  const bin = await Deno.makeTempDir({ prefix: "bisman-archive-bin-" });
  // The destination: a folder standing in for an object store, written and read only through two commands.
  const fetch = await script(`${bin}/fetch`, `cat "${store}/$1"`);
  const stores = {
    good: await script(`${bin}/store-good`, `cp "$1" "${store}/$2"`),
    // Says it stored the file, stores nothing.
    loses: await script(`${bin}/store-loses`, `exit 0`),
    // Stores the file with one row's content changed.
    corrupts: await script(`${bin}/store-corrupts`, `sed '1s/clients/clientz/' "$1" > "${store}/$2"`),
    // Stores the first ten rows only.
    truncates: await script(`${bin}/store-truncates`, `head -n 10 "$1" > "${store}/$2"`),
    // Fails loudly.
    fails: await script(`${bin}/store-fails`, `echo "bucket not found" >&2; exit 3`),
  };
  const config = (storeCommand?: string): Config =>
    testConfig(cluster, (doc) => {
      doc.targets.main.primary.database = db;
      doc.retention = {
        audit_archive: {
          older_than_days: 30,
          dir,
          batch_rows: 100,
          ...(storeCommand
            ? { store_command: [storeCommand, "{file}", "{name}"], fetch_command: [fetch, "{name}"] }
            : {}),
        },
      };
      doc.schedules = { cleanup: { enabled: false } };
    });
  const tb = await startTestBot(cluster, { config: config() });
  const deps = (c: Config): OpDeps => ({ ...tb.bot.deps, config: c });
  const count = async () =>
    (await sql<{ n: number }[]>`select count(*)::int as n from public.audit_logs_dml`)[0].n;
  const stored = () => [...Deno.readDirSync(store)].map((e) => e.name);
  try {
    await sql`truncate public.audit_logs_dml`;
    await sql`
      insert into public.audit_logs_dml (occurred_at, table_name, action, row_id, new_data)
      select now() - interval '40 days' + g * interval '1 second', 'clients', 'UPDATE', g::text,
             jsonb_build_object('n', g, 'note', 'quote " backslash \\ unicode ü')
        from generate_series(1, 250) g`;

    for (
      const [kind, why] of [
        ["loses", /fetch_command could not read .* back \(exit 1\)/],
        ["corrupts", /checksum of the stored copy .* differs/],
        ["truncates", /holds 10 rows, expected 100/],
        ["fails", /store_command failed \(exit 3\): bucket not found/],
      ] as const
    ) {
      await t.step(`a destination that ${kind} the file: the batch stops, nothing is deleted`, async () => {
        await assert.rejects(
          archiveAuditRows(deps(config(stores[kind])), "main"),
          (err) =>
            err instanceof StepFailed && /stopped before deleting anything/.test(err.message) &&
            why.test(err.message),
        );
        assert.equal(await count(), 250);
        for (const f of stored()) await Deno.remove(`${store}/${f}`);
      });
    }

    await t.step("a destination that keeps it whole: 250 rows in 3 stored files, then deleted", async () => {
      const r = await archiveAuditRows(deps(config(stores.good)), "main");
      assert.equal(r.rows, 250);
      assert.equal(await count(), 0);
      const names = stored().filter((n) => n.endsWith(".jsonl")).sort();
      assert.equal(names.length, 3);
      const ids = names.flatMap((n) =>
        Deno.readTextFileSync(`${store}/${n}`).trim().split("\n").map((l) => Number(JSON.parse(l).id))
      );
      assert.equal(new Set(ids).size, 250);
      for (const n of names) {
        assert.equal(Deno.readTextFileSync(`${store}/${n}`), Deno.readTextFileSync(`${dir}/${n}`), n);
      }
    });

    await t.step(
      "the config takes the two commands together only, and never hands them the bot's secrets",
      () => {
        const bad = (patch: Record<string, unknown>) => () =>
          testConfig(cluster, (doc) => {
            doc.retention = { audit_archive: { dir, ...patch } };
          });
        assert.throws(
          bad({ store_command: ["cp", "{file}", "/x/{name}"] }),
          (e) =>
            e instanceof ConfigError &&
            e.problems.some((p) => /store_command and fetch_command together/.test(p)),
        );
        assert.throws(
          bad({ command_env: ["SLACK_BOT_TOKEN"] }),
          (e) =>
            e instanceof ConfigError &&
            e.problems.some((p) => /command_env\.0: the bot's own secrets/.test(p)),
        );
      },
    );
  } finally {
    await tb.stop();
  }
});
