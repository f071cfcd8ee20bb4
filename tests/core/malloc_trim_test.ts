import assert from "node:assert/strict";
import { mallocTrim } from "../../core/malloc_trim.ts";

const MODULE = new URL("../../core/malloc_trim.ts", import.meta.url).href;

/** Runs mallocTrim() in a fresh process with `flags`; returns what it printed. */
async function trimIn(flags: string[]): Promise<string> {
  const code = `const { mallocTrim } = await import(${JSON.stringify(MODULE)});
    const first = mallocTrim();
    // A few MiB allocated and freed by the runtime's native side, so a trim has something to give back.
    for (let i = 0; i < 50; i++) await crypto.subtle.digest("SHA-256", new Uint8Array(256 * 1024));
    console.log(JSON.stringify({ first: first ?? null, second: mallocTrim() ?? null }));`;
  // `deno run` of a file: `deno eval` would grant every permission.
  const file = await Deno.makeTempFile({ suffix: ".ts" });
  await Deno.writeTextFile(file, code);
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--no-lock", ...flags, file],
    stdout: "piped",
    stderr: "piped",
  }).output();
  await Deno.remove(file);
  assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
  return new TextDecoder().decode(out.stdout).trim();
}

const glibc = (() => {
  try {
    Deno.statSync("/lib/x86_64-linux-gnu/libc.so.6");
    return true;
  } catch {
    return false;
  }
})();

Deno.test("mallocTrim: runs glibc's malloc_trim with FFI permission for libc alone", {
  ignore: !glibc,
}, async () => {
  const got = JSON.parse(await trimIn(["--allow-read", "--allow-ffi=/lib/x86_64-linux-gnu/libc.so.6"]));
  assert.equal(typeof got.first, "boolean", "it ran");
  assert.equal(typeof got.second, "boolean");
});

Deno.test("mallocTrim: without FFI permission it does nothing and throws nothing", async () => {
  assert.deepEqual(JSON.parse(await trimIn(["--allow-read"])), { first: null, second: null });
});

Deno.test("mallocTrim in this process (tests run with every permission) ran or is unavailable, never throws", () => {
  const r = mallocTrim();
  assert.ok(r === undefined || typeof r === "boolean");
  if (glibc) assert.equal(typeof r, "boolean");
});
