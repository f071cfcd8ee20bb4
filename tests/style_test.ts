/**
 * The house style stays clean: `deno fmt --check` and `deno lint` over the whole tree, as `deno task check`
 * runs them, so a change that skips them fails the suite instead of drifting. (`deno check` of every test
 * file happens anyway: `deno test` type-checks each file it runs.)
 */

import assert from "node:assert/strict";

const ROOT = new URL("../", import.meta.url);

async function deno(args: string[]): Promise<{ code: number; out: string }> {
  const r = await new Deno.Command(Deno.execPath(), {
    args,
    cwd: ROOT,
    env: { NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return { code: r.code, out: dec.decode(r.stdout) + dec.decode(r.stderr) };
}

Deno.test("deno fmt --check finds every file formatted", async () => {
  const r = await deno(["fmt", "--check"]);
  assert.equal(r.code, 0, `deno fmt --check failed; run \`deno fmt\`:\n${r.out.slice(-3000)}`);
});

Deno.test("deno lint finds nothing", async () => {
  const r = await deno(["lint"]);
  assert.equal(r.code, 0, `deno lint failed:\n${r.out.slice(-3000)}`);
});
