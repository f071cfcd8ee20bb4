// The image cannot be built on the development machines (no container runtime, no registry), so its riskiest
// step is checked where it can be: the Dockerfile's apt package list, installed as a dry run with apt-get on a
// machine of the base image's Debian release. Elsewhere the test is skipped, and its name says why.
import assert from "node:assert/strict";

const root = new URL("../../", import.meta.url).pathname;
const dockerfile = await Deno.readTextFile(`${root}Dockerfile`);

/** The default of `ARG name=value` in the Dockerfile. */
function argDefault(text: string, name: string): string | undefined {
  return new RegExp(`^ARG ${name}=(\\S+)$`, "m").exec(text)?.[1];
}

/** The Debian codename the final stage is built from (`FROM debian:<codename>-…`). */
function baseRelease(text: string): string | undefined {
  const from = text.split("\n").filter((l) => l.startsWith("FROM ")).at(-1) ?? "";
  return /^FROM debian:([a-z]+)[-:@]/.exec(from)?.[1];
}

/**
 * The packages of the image's `apt-get install` (the one that installs the PostgreSQL client), with the
 * build arguments at their defaults.
 */
function aptPackages(text: string): string[] {
  const line = text.split("\n").find((l) =>
    /apt-get install -y --no-install-recommends .*postgresql-client-/.test(l)
  );
  assert.ok(line, "the Dockerfile installs the PostgreSQL client with apt-get");
  const list = line.split("--no-install-recommends")[1].split(";")[0].split("&&")[0];
  const pgMajor = argDefault(text, "PG_MAJOR");
  assert.ok(pgMajor, "ARG PG_MAJOR has a default");
  return list.trim().split(/\s+/).map((p) => p.replace(/\$\{?PG_MAJOR\}?/, pgMajor));
}

/** /etc/os-release as key → value. */
async function osRelease(): Promise<Record<string, string>> {
  const text = await Deno.readTextFile("/etc/os-release").catch(() => "");
  return Object.fromEntries(
    text.split("\n").map((l) => /^([A-Z_]+)=("?)(.*)\2$/.exec(l)).filter((m) => m !== null).map((m) => [
      m![1],
      m![3],
    ]),
  );
}

/** True when apt has package lists to resolve names against (`apt-get update` has run). */
async function aptHasLists(): Promise<boolean> {
  try {
    for await (const e of Deno.readDir("/var/lib/apt/lists")) {
      if (/_Packages(\.\w+)?$/.test(e.name)) return true;
    }
  } catch {
    return false;
  }
  return false;
}

/** `apt-get install --dry-run` of `packages`: simulates, as any user, and changes nothing. */
async function aptDryRun(packages: string[]): Promise<{ code: number; out: string }> {
  const r = await new Deno.Command("apt-get", {
    args: ["install", "--dry-run", "-y", "--no-install-recommends", ...packages],
    env: { DEBIAN_FRONTEND: "noninteractive", LC_ALL: "C" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return { code: r.code, out: dec.decode(r.stdout) + dec.decode(r.stderr) };
}

const base = baseRelease(dockerfile);
const os = await osRelease();
const skip = os.ID !== "debian" || !base
  ? `this machine is ${os.PRETTY_NAME ?? "not Debian"}, the image's base is Debian ${base}`
  : os.VERSION_CODENAME !== base
  ? `this machine is Debian ${os.VERSION_CODENAME}, the image's base is Debian ${base}`
  : !(await aptHasLists())
  ? "apt has no package lists on this machine (apt-get update has not run)"
  : undefined;

Deno.test("Dockerfile: every base is pinned by version and digest, on a named Debian release, with PG_MAJOR as a build argument", () => {
  const froms = dockerfile.split("\n").filter((l) => l.startsWith("FROM "));
  assert.ok(froms.length >= 2, "the Deno binary image and the Debian base");
  for (const f of froms) {
    assert.match(
      f,
      /^FROM [a-z0-9./-]+:[A-Za-z0-9._-]+@sha256:[0-9a-f]{64}( AS \w+)?$/,
      `${f}: tag and digest`,
    );
    assert.doesNotMatch(f, /:(latest|stable|stable-slim|debian)[@ ]/, `${f}: a moving tag`);
  }
  assert.equal(base, "bookworm", "the final stage names its Debian release");
  assert.match(
    dockerfile,
    /^FROM denoland\/deno:bin-2\.9\.6@/m,
    "the Deno binary of the version the project uses",
  );
  assert.equal(argDefault(dockerfile, "PG_MAJOR"), "15", "the seed's targets run PostgreSQL 15");
  assert.ok(Number(argDefault(dockerfile, "MIN_PG_MAJOR")) <= Number(argDefault(dockerfile, "PG_MAJOR")));
  assert.deepEqual(aptPackages(dockerfile), [
    "postgresql-client-15",
    "pgbackrest",
    "ca-certificates",
    "tini",
  ]);
});

Deno.test({
  name: skip
    ? `Dockerfile apt packages: dry run SKIPPED: ${skip}`
    : `Dockerfile apt packages install on Debian ${base} (apt-get install --dry-run with the Dockerfile's list)`,
  ignore: skip !== undefined,
  fn: async (t) => {
    const packages = aptPackages(dockerfile);
    await t.step(`apt-get install --dry-run ${packages.join(" ")}`, async () => {
      const r = await aptDryRun(packages);
      assert.equal(r.code, 0, r.out);
      assert.doesNotMatch(r.out, /^E: /m, r.out);
      for (const p of packages) {
        const escaped = p.replace(/[.+]/g, "\\$&");
        assert.match(
          r.out,
          new RegExp(`^Inst ${escaped} |^${escaped} is already the newest version`, "m"),
          `${p} would be installed (or already is)`,
        );
      }
    });
    await t.step(
      "the same dry run refuses a package the release does not have (the check can fail)",
      async () => {
        const r = await aptDryRun([...packages.slice(1), "postgresql-client-99"]);
        assert.notEqual(r.code, 0);
        assert.match(r.out, /Unable to locate package postgresql-client-99/);
      },
    );
  },
});
