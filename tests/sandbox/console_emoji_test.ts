import assert from "node:assert/strict";

const root = new URL("../../", import.meta.url).pathname;

/** The folders whose modules write what the bot sends to Slack (views, answers, alert threads, jobs). */
const MESSAGE_SOURCES = ["views", "commands", "slack", "alerts", "jobs", "gate", "ops", "core", "http"];

/**
 * Emoji codes written in a source text: `:name:` not inside `a::b::c` (SQL casts) or `host:pid:x` (words around
 * it); a `\n` written before a code in a string literal counts as a line start.
 */
export function emojiCodes(source: string): Set<string> {
  const out = new Set<string>();
  for (const m of source.matchAll(/(\\n|^|[^:\w])(:([a-z][a-z0-9_+-]*):)(?![\w:])/gm)) out.add(m[3]);
  return out;
}

async function sourceFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  for await (const e of Deno.readDir(`${root}${dir}`)) {
    const p = `${dir}/${e.name}`;
    if (e.isDirectory) out.push(...await sourceFiles(p));
    else if (e.isFile && e.name.endsWith(".ts")) out.push(p);
  }
  return out;
}

Deno.test("the console's emoji table draws every emoji code the bot's messages use", async () => {
  const table = JSON.parse(await Deno.readTextFile(`${root}sandbox/console/emoji.json`)) as Record<
    string,
    unknown
  >;
  const kinds = new Set(["dot", "shape", "glyph", "char"]);
  for (const [name, e] of Object.entries(table)) {
    assert.ok(/^[a-z0-9_+-]+$/.test(name), `${name} is a Slack emoji name`);
    assert.ok(
      Array.isArray(e) && kinds.has(e[0]) && typeof e[1] === "string",
      `${name}: ${JSON.stringify(e)}`,
    );
  }
  const used = new Map<string, string>();
  for (const dir of MESSAGE_SOURCES) {
    for (const file of await sourceFiles(dir)) {
      for (const code of emojiCodes(await Deno.readTextFile(`${root}${file}`))) used.set(code, file);
    }
  }
  assert.ok(used.size >= 20, `the scan finds the bot's emoji (found ${[...used.keys()].join(", ")})`);
  const missing = [...used].filter(([code]) => !(code in table)).map(([code, file]) => `:${code}: (${file})`);
  assert.deepEqual(missing, [], "codes the bot uses that the console would show as text");
  // The codes the bot uses are drawn without an emoji font (this machine and many servers have none).
  const needFont = [...used.keys()].filter((code) => (table[code] as string[])[0] === "char");
  assert.deepEqual(needFont, [], "codes the bot uses that need a colour emoji font");
});

Deno.test("emojiCodes() finds codes in strings, not SQL casts or words around colons", () => {
  assert.deepEqual(
    [...emojiCodes('x = "\\n:warning: y"; `:x: z`; "a::bigint::text"; "host:pid:random"; "12:00:00"')],
    ["warning", "x"],
  );
});
