/**
 * `deno task bench [name…]`: runs every benchmark module in bench/ (each exports `run()` and prints its
 * figures), or only the named ones. Files starting with `_` are helpers.
 */

const dir = new URL("./", import.meta.url);
const wanted = Deno.args;
const names: string[] = [];
for await (const e of Deno.readDir(dir)) {
  if (e.isFile && e.name.endsWith(".ts") && !e.name.startsWith("_") && e.name !== "main.ts") {
    names.push(e.name.replace(/\.ts$/, ""));
  }
}
names.sort();
const selected = wanted.length ? names.filter((n) => wanted.includes(n)) : names;
const unknown = wanted.filter((w) => !names.includes(w));
if (unknown.length) {
  console.error(`Unknown benchmark(s): ${unknown.join(", ")}. Available: ${names.join(", ")}`);
  Deno.exit(2);
}
let failed = 0;
for (const name of selected) {
  console.log(`\n=== ${name} ===`);
  const started = performance.now();
  try {
    const mod = await import(new URL(`./${name}.ts`, dir).href);
    await mod.run();
    console.log(`(${name} took ${((performance.now() - started) / 1000).toFixed(1)} s)`);
  } catch (err) {
    failed++;
    console.error(`${name} failed: ${err instanceof Error ? err.stack : err}`);
  }
}
Deno.exit(failed ? 1 : 0);
