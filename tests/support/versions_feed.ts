/**
 * PostgreSQL's versions feed for tests that are not about it: a copy of the recorded feed
 * (tests/fixtures/postgresql_versions.json) in which the installed server's major lists the installed minor
 * as its newest and an end of life two years from today, written once per process to a temp file. The test
 * config names it as `checklist.postgres_versions.offline_copy` behind a URL nothing listens on, so the
 * "security patches" item and digest section say "ok" whatever the date, and no test reaches postgresql.org.
 * tests/ops/patch_level_test.ts tests the check itself on the recorded copy as it is.
 */

const RECORDED = new URL("../fixtures/postgresql_versions.json", import.meta.url);
/** A URL that refuses at once: the feed "does not answer", so the offline copy is read. */
export const UNREACHABLE_FEED_URL = "http://127.0.0.1:1/versions.json";

let written: string | undefined;

/** The installed server's major and minor: from `binDir`, else the newest /usr/lib/postgresql/<n>/bin. */
function installedVersion(binDir: string | undefined): [string, string] | undefined {
  const dirs = binDir ? [binDir] : [];
  try {
    const majors = [...Deno.readDirSync("/usr/lib/postgresql")].map((e) => e.name).filter((n) =>
      /^\d+$/.test(n)
    );
    dirs.push(...majors.sort((a, b) => Number(b) - Number(a)).map((n) => `/usr/lib/postgresql/${n}/bin`));
  } catch {
    // not a Debian layout
  }
  for (const dir of dirs) {
    try {
      const out = new Deno.Command(`${dir}/postgres`, { args: ["--version"], stdout: "piped" }).outputSync();
      const m = /\(PostgreSQL\) (\d+)\.(\d+)/.exec(new TextDecoder().decode(out.stdout));
      if (m) return [m[1], m[2]];
    } catch {
      // not there
    }
  }
  return undefined;
}

/**
 * The path of the copy for the server in `binDir` (its `postgres --version`; tests that build a config
 * without a cluster give none, and the installed server is found instead).
 */
export function currentVersionsCopy(binDir: string | undefined): string {
  if (written) return written;
  const v = installedVersion(binDir);
  const eol = new Date(Date.now() + 730 * 86_400_000).toISOString().slice(0, 10);
  const feed = (JSON.parse(Deno.readTextFileSync(RECORDED)) as Record<string, unknown>[]).map((e) =>
    v && e.major === v[0] ? { ...e, latestMinor: v[1], eolDate: eol, supported: true } : e
  );
  const path = Deno.makeTempFileSync({ prefix: "bisman-versions-", suffix: ".json" });
  Deno.writeTextFileSync(path, JSON.stringify(feed));
  globalThis.addEventListener("unload", () => {
    try {
      Deno.removeSync(path);
    } catch { /* gone */ }
  });
  written = path;
  return path;
}
