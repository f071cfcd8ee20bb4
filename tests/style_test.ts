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

/** The folders of the bot's own runtime graph (main.ts and what it loads), and its entry points. */
const PRODUCT_DIRS = ["core", "ops", "jobs", "views", "commands", "gate", "alerts", "slack", "http", "cli"];

Deno.test("the bot's modules hold only Latin-1 characters (write others as \\u escapes)", async () => {
  // V8 keeps every module's source (with Deno's inline source map) for the process's life, as a one-byte
  // string when all its characters are Latin-1 and a two-byte one otherwise: one "…" in a comment doubled
  // a module's share of the idle heap (1.9 MiB over 65 modules, bench/_mem_breakdown.ts).
  const files = ["bot.ts", "main.ts", "cli.ts"];
  for (const dir of PRODUCT_DIRS) {
    for await (const e of Deno.readDir(new URL(`${dir}/`, ROOT))) {
      if (e.isFile && e.name.endsWith(".ts")) files.push(`${dir}/${e.name}`);
    }
  }
  const found: string[] = [];
  for (const f of files.sort()) {
    const lines = (await Deno.readTextFile(new URL(f, ROOT))).split("\n");
    lines.forEach((l, i) => {
      const c = [...l].find((ch) => ch.codePointAt(0)! > 0xff);
      if (c) found.push(`${f}:${i + 1}: U+${c.codePointAt(0)!.toString(16).toUpperCase()}`);
    });
  }
  assert.deepEqual(found, [], `non-Latin-1 characters in the bot's modules:\n${found.join("\n")}`);
});
