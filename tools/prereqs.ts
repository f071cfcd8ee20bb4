/**
 * Checks the programs bisman-ops needs beside Deno (PostgreSQL server, pgbackrest, pgaudit, Alertmanager,
 * Prometheus's promtool, chromium) and installs the missing ones from Debian's packages when run as root
 * where apt-get exists; otherwise prints the exact install command and exits non-zero.
 *
 * Used by `deno task dev` and `deno task test` before anything else.
 *
 * @module
 */

import { existsSync } from "node:fs";

interface Prereq {
  what: string;
  pkg: string;
  present: () => boolean;
}

function pgBinDirs(): string[] {
  try {
    return [...Deno.readDirSync("/usr/lib/postgresql")].map((e) => `/usr/lib/postgresql/${e.name}`).sort()
      .reverse();
  } catch {
    return [];
  }
}

const prereqs: Prereq[] = [
  {
    what: "PostgreSQL 15 server (initdb, pg_ctl)",
    pkg: "postgresql-15",
    present: () => existsSync("/usr/lib/postgresql/15/bin/initdb"),
  },
  { what: "pgBackRest", pkg: "pgbackrest", present: () => existsSync("/usr/bin/pgbackrest") },
  {
    what: "pgaudit extension",
    pkg: "postgresql-15-pgaudit",
    present: () => pgBinDirs().some((d) => existsSync(`${d}/lib/pgaudit.so`)),
  },
  {
    what: "Alertmanager (alertmanager, amtool)",
    pkg: "prometheus-alertmanager",
    present: () => existsSync("/usr/bin/prometheus-alertmanager"),
  },
  { what: "Prometheus (promtool)", pkg: "prometheus", present: () => existsSync("/usr/bin/promtool") },
  {
    what: "Chromium (browser tests, sandbox screenshots)",
    pkg: "chromium",
    present: () => existsSync("/usr/bin/chromium"),
  },
];

async function run(cmd: string[]): Promise<number> {
  const p = new Deno.Command(cmd[0], {
    args: cmd.slice(1),
    stdout: "inherit",
    stderr: "inherit",
    env: { DEBIAN_FRONTEND: "noninteractive" },
  });
  return (await p.output()).code;
}

if (import.meta.main) {
  const missing = prereqs.filter((p) => !p.present());
  if (!missing.length) Deno.exit(0);
  const pkgs = missing.map((m) => m.pkg);
  const command = `apt-get update && apt-get install -y ${pkgs.join(" ")}`;
  console.error(`bisman-ops needs: ${missing.map((m) => m.what).join("; ")}`);
  const canInstall = Deno.uid() === 0 && existsSync("/usr/bin/apt-get");
  if (!canInstall) {
    console.error(`Install them as root, then run this again:\n  sudo sh -c '${command}'`);
    Deno.exit(1);
  }
  console.error(`Installing: ${pkgs.join(" ")}`);
  if (
    await run(["apt-get", "update", "-q"]) !== 0 ||
    await run(["apt-get", "install", "-y", "-q", ...pkgs]) !== 0
  ) {
    console.error(`Installing failed. Run it yourself:\n  ${command}`);
    Deno.exit(1);
  }
  const still = prereqs.filter((p) => !p.present());
  if (still.length) {
    console.error(`Still missing after install: ${still.map((m) => m.what).join("; ")}`);
    Deno.exit(1);
  }
}
