import assert from "node:assert/strict";
import postgres from "postgres";
import { startCluster } from "../../standins/cluster.ts";
import { createScratch, dropChecked, dropScratch, markerText, scratchName } from "../../ops/_scratch.ts";

Deno.test("dropScratch drops only the marked database it checked, whatever happens to the name in between", async (t) => {
  await using cluster = await startCluster({ name: "scratch-drop" });
  const admin = cluster.primary.sql();
  const exists = async (name: string) =>
    (await admin<{ n: number }[]>`select count(*)::int as n from pg_database where datname = ${name}`)[0]
      .n === 1;
  const byComment = async (comment: string) =>
    (await admin<{ datname: string }[]>`
      select datname from pg_database where shobj_description(oid, 'pg_database') = ${comment}`).map((r) =>
      r.datname
    );
  const oidOf = async (name: string) =>
    (await admin<{ oid: string }[]>`select oid::text as oid from pg_database where datname = ${name}`)[0].oid;
  let run = 0;
  const marked = async () => {
    const name = scratchName("main", new Date());
    const marker = { target: "main", runId: ++run, created: new Date().toISOString() };
    await createScratch(admin, name, marker);
    return { name, marker, comment: markerText(marker) };
  };

  await t.step("a marked database with a session open on it is dropped; the session is ended", async () => {
    const { name, marker } = await marked();
    const session = postgres(cluster.primary.url({ database: name }), { max: 1, onnotice: () => {} });
    await session`select 1`;
    assert.deepEqual(await dropScratch(admin, name, { target: "main", runId: marker.runId }), {
      dropped: true,
    });
    assert.equal(await exists(name), false);
    await assert.rejects(session`select 1`);
    await session.end({ timeout: 1 }).catch(() => undefined);
  });

  await t.step("an unmarked database with a scratch name is refused and kept", async () => {
    const name = scratchName("main", new Date());
    await admin`create database ${admin(name)}`;
    const r = await dropScratch(admin, name);
    assert.equal(r.dropped, false);
    assert.match((r as { refusal: string }).refusal, /no bisman-ops scratch marker/);
    assert.equal(await exists(name), true);
    await admin`drop database ${admin(name)}`;
  });

  await t.step(
    "checked, then the name changes hands before the drop: the new database is refused, keeps its name and its data",
    async () => {
      const { name, comment } = await marked();
      const checkedOid = await oidOf(name);
      // Another session drops the checked database and creates an unmarked one under the same name.
      await admin`drop database ${admin(name)} with (force)`;
      await admin`create database ${admin(name)}`;
      await admin.unsafe(`comment on database "${name}" is 'someone else''s database'`);
      const r = await dropChecked(admin, name, checkedOid, comment);
      assert.equal(r.dropped, false);
      assert.match((r as { refusal: string }).refusal, /changed between the check and the drop/);
      assert.equal(await exists(name), true, "under its own name");
      assert.deepEqual(await byComment("someone else's database"), [name]);
      await admin`drop database ${admin(name)}`;
    },
  );

  await t.step(
    "the same with another marked database under the name (another run's): refused too",
    async () => {
      const first = await marked();
      const checkedOid = await oidOf(first.name);
      await admin`drop database ${admin(first.name)} with (force)`;
      await createScratch(admin, first.name, {
        target: "main",
        runId: 999,
        created: new Date().toISOString(),
      });
      const r = await dropChecked(admin, first.name, checkedOid, first.comment);
      assert.equal(r.dropped, false);
      assert.equal(await exists(first.name), true);
      await admin`drop database ${admin(first.name)}`;
    },
  );

  await t.step(
    "racing a session that swaps the name for its own database, round after round: its database always survives",
    async () => {
      // Real concurrency around the rename and the rename back (this interleaving rarely lands inside the
      // old check-then-drop window; the step above pins that window down deterministically).
      const swapper = cluster.primary.sql();
      // The swapper's databases are told apart by their owner, set in the same statement that creates them.
      await admin`create role scratch_swapper nologin`;
      const theirs = async () =>
        (await admin<{ datname: string }[]>`
        select datname from pg_database where datdba = 'scratch_swapper'::regrole`).map((r) => r.datname);
      for (let round = 0; round < 8; round++) {
        const { name } = await marked();
        const [outcome, made] = await Promise.all([
          dropScratch(admin, name).catch((err) => ({ error: String(err) })),
          (async () => {
            await swapper`drop database if exists ${swapper(name)} with (force)`.catch(() => undefined);
            return await swapper`create database ${swapper(name)} owner scratch_swapper`.then(
              () => true,
              () => false,
            );
          })(),
        ]);
        const survivors = await theirs();
        // Whoever won, a database the swapper created is never dropped.
        if (made) assert.equal(survivors.length, 1, `round ${round}: ${JSON.stringify(outcome)}`);
        for (const n of survivors) await admin`drop database ${admin(n)} with (force)`;
        if (await exists(name)) await admin`drop database ${admin(name)} with (force)`;
      }
    },
  );
});
