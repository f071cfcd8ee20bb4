import assert from "node:assert/strict";
import { waitFor } from "../../standins/wait.ts";
import { stopLeftoverAlertmanager } from "../../sandbox/alerts.ts";

const root = new URL("../../", import.meta.url).pathname;

/** `deno run -A sandbox/dev.ts` (what `deno task dev` runs after its prerequisite check) on `dataDir`. */
function startDev(dataDir: string) {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "sandbox/dev.ts", "--data-dir", dataDir, "--port", "0"],
    cwd: root,
    env: { NO_COLOR: "1" },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let out = "";
  const sink = () => new WritableStream<string>({ write: (chunk) => void (out += chunk) });
  const reading = Promise.all([
    child.stdout.pipeThrough(new TextDecoderStream()).pipeTo(sink()),
    child.stderr.pipeThrough(new TextDecoderStream()).pipeTo(sink()),
  ]);
  const port = (pattern: RegExp) => Number(pattern.exec(out)?.[1]);
  return {
    child,
    output: () => out,
    /** Resolves with the console's URL once the sandbox printed it. */
    ready: () =>
      waitFor(() => {
        if (/could not start/.test(out)) throw new Error(out);
        return /Open (http:\/\/127\.0\.0\.1:\d+\/)/.exec(out)?.[1];
      }, { timeoutMs: 90_000, intervalMs: 100, what: `the sandbox's URL; output so far:\n${out}` }),
    /** Every port the sandbox printed: console, bot, Alertmanager, PostgreSQL primary and replica. */
    ports: () => ({
      console: port(/Open http:\/\/127\.0\.0\.1:(\d+)\//),
      bot: port(/bisman-ops bot at http:\/\/127\.0\.0\.1:(\d+)/),
      alertmanager: port(/Alertmanager at http:\/\/127\.0\.0\.1:(\d+)/),
      primary: port(/primary on port (\d+)/),
      replica: port(/replica on port (\d+)/),
    }),
    exited: async () => {
      const status = await child.status;
      await reading;
      return status;
    },
  };
}

async function listening(port: number): Promise<boolean> {
  try {
    (await Deno.connect({ hostname: "127.0.0.1", port })).close();
    return true;
  } catch {
    return false;
  }
}

/** PIDs of processes whose command line mentions `dir` (postgres -D <dir>/pg/…, pgbackrest, …). */
function processesUsing(dir: string): number[] {
  const pids: number[] = [];
  for (const e of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(e.name) || Number(e.name) === Deno.pid) continue;
    try {
      if (Deno.readTextFileSync(`/proc/${e.name}/cmdline`).includes(dir)) pids.push(Number(e.name));
    } catch {
      // gone meanwhile
    }
  }
  return pids;
}

async function exists(path: string): Promise<boolean> {
  return await Deno.stat(path).then(() => true, () => false);
}

/** After a clean stop: nothing listens on any of its ports and no process of its data folder is left. */
async function assertNothingLeft(dataDir: string, ports: Record<string, number>) {
  for (const [what, port] of Object.entries(ports)) {
    assert.ok(port > 0, `${what} port was printed`);
    assert.equal(await listening(port), false, `nothing listens on the ${what} port ${port}`);
  }
  assert.deepEqual(processesUsing(dataDir), [], "no process of the sandbox's data folder is left");
  for (const person of ["alice", "bob", "carol", "dave"]) {
    assert.equal(await exists(`${dataDir}/cli-${person}.env`), false, `${person}'s CLI env file is removed`);
  }
  assert.equal(await exists(`${dataDir}/sandbox.pid`), false, "the pid file is removed");
}

Deno.test({
  name:
    "deno task dev: one URL, data kept across restarts, Ctrl-C leaves nothing running, a kill is recovered",
  sanitizeResources: false,
  fn: async (t) => {
    const dataDir = await Deno.makeTempDir({ prefix: "bisman-sandbox-dev-" });
    await Deno.chmod(dataDir, 0o755);
    let current: ReturnType<typeof startDev> | undefined;
    try {
      await t.step(
        "the first start creates everything and prints one URL; the console and the CLI work",
        async () => {
          current = startDev(dataDir);
          const url = await current.ready();
          const out = current.output();
          assert.match(out, /created in .*\/pg\)/);
          assert.match(out, /BISMAN sample schema loaded with generated data \(\d+ clients/);
          assert.match(out, /pg_dump: made .*bisman_\d{8}\.dump/);
          assert.match(out, /pgBackRest: stanza bisman, WAL archiving on, full backup taken/);
          assert.equal(out.match(/Open http/g)?.length, 1, "one URL");
          const page = await fetch(url);
          assert.equal(page.status, 200);
          assert.match(await page.text(), /<title>bisman-ops sandbox/);
          const meta = await (await fetch(`${url}api/meta`)).json();
          assert.deepEqual(meta.users.map((u: { name: string }) => u.name), [
            "alice",
            "bob",
            "carol",
            "dave",
          ]);
          assert.ok(meta.subcommands.some((s: { name: string }) => s.name === "rotate"));
          const cli = await new Deno.Command(Deno.execPath(), {
            args: ["run", "-A", "cli.ts", "--env-file", `${dataDir}/cli-alice.env`, "status"],
            cwd: root,
            stdout: "piped",
            stderr: "piped",
          }).output();
          const cliOut = new TextDecoder().decode(cli.stdout);
          assert.equal(cli.code, 0, new TextDecoder().decode(cli.stderr));
          assert.match(cliOut, /replica1 127\.0\.0\.1:\d+ standby PostgreSQL 15/);
          assert.match(
            out,
            /deno task ops --env-file \S*cli-alice\.env status/,
            "the hint names alice's file",
          );
          // dave logs in as himself too, and the bot refuses him: he is in no list.
          const dave = await new Deno.Command(Deno.execPath(), {
            args: ["run", "-A", "cli.ts", "--env-file", `${dataDir}/cli-dave.env`, "status"],
            cwd: root,
            stdout: "piped",
            stderr: "piped",
          }).output();
          assert.equal(dave.code, 3);
          assert.match(new TextDecoder().decode(dave.stderr), /dave may not use the break-glass CLI/);
          // The checklist reads the items of issue 19 from the sandbox's own sources, each named.
          const checklist = await new Deno.Command(Deno.execPath(), {
            args: ["run", "-A", "cli.ts", "--env-file", `${dataDir}/cli-alice.env`, "--json", "checklist"],
            cwd: root,
            stdout: "piped",
            stderr: "piped",
          }).output();
          const items = new TextDecoder().decode(checklist.stdout);
          assert.equal(checklist.code, 0, new TextDecoder().decode(checklist.stderr));
          for (
            const source of [
              /Kubernetes API https:\/\/127\.0\.0\.1:\d+: NetworkPolicies in bisman-db:\\n\s*postgres-access: admits port 5432/,
              /AWS WAF web ACL bisman-sandbox \(REGIONAL, eu-central-1\), read with WAFV2 GetWebACL:\\n\s*SQL injection rule/,
              /the primary's pg_stat_replication and pg_replication_slots, and [^\n]*wal-archive:/,
              /server settings \(pg_settings\) and http:\/\/127\.0\.0\.1:\d+ \(_count in postgres-logs\):/,
              /PostgreSQL versions feed: /,
            ]
          ) assert.match(items, source);
        },
      );

      await t.step("Ctrl-C stops every process it started and frees every port", async () => {
        const ports = current!.ports();
        current!.child.kill("SIGINT");
        const status = await current!.exited();
        assert.equal(status.code, 0, current!.output());
        assert.match(current!.output(), /Stopped\. The data stays in the data folder/);
        await assertNothingLeft(dataDir, ports);
      });

      await t.step("a second start reuses the data folder; a SIGKILL leaves servers behind", async () => {
        current = startDev(dataDir);
        await current.ready();
        const out = current.output();
        assert.match(out, /started again from .*\/pg\)/);
        assert.match(out, /BISMAN sample schema already loaded/);
        assert.match(out, /pg_dump: 1 dump\(s\)/);
        assert.match(out, /pgBackRest: stanza bisman, WAL archiving on, 1 backup\(s\) kept/);
        current.child.kill("SIGKILL");
        await current.exited();
        assert.ok(processesUsing(dataDir).length > 0, "PostgreSQL outlives a SIGKILLed sandbox");
      });

      await t.step(
        "the next start takes over what the killed one left, and its Ctrl-C cleans up",
        async () => {
          current = startDev(dataDir);
          await current.ready();
          assert.match(current.output(), /started again from/);
          assert.match(current.output(), /Stopped the Alertmanager a killed sandbox left running/);
          const ports = current.ports();
          current.child.kill("SIGINT");
          assert.equal((await current.exited()).code, 0, current.output());
          await assertNothingLeft(dataDir, ports);
        },
      );
    } finally {
      // Whatever a failed step left: the sandbox, its servers (immediate stop), its Alertmanager.
      try {
        current?.child.kill("SIGKILL");
      } catch {
        // already exited
      }
      for (const node of ["primary", "replica"]) {
        const pid = Number(
          (await Deno.readTextFile(`${dataDir}/pg/${node}/data/postmaster.pid`).catch(() => ""))
            .split("\n")[0],
        );
        if (pid) {
          try {
            Deno.kill(pid, "SIGQUIT");
          } catch {
            // not running
          }
        }
      }
      const saved = JSON.parse(await Deno.readTextFile(`${dataDir}/sandbox.json`).catch(() => "{}"));
      await stopLeftoverAlertmanager(saved.alertmanagerDir);
      await waitFor(() => processesUsing(dataDir).length === 0, {
        timeoutMs: 10_000,
        what: "leftovers to exit",
      })
        .catch(() => {});
      await Deno.remove(dataDir, { recursive: true }).catch(() => {});
    }
  },
});
