/**
 * The house: folders are layers and every import points down (README "How it is built"). Reads Deno's own
 * module graph of every entry point (`deno info --json`) and fails on any import cycle among the project's
 * modules, any import that runs up a layer, and any product module that imports tests/, naming the import.
 */

import assert from "node:assert/strict";

const ROOT = new URL("../", import.meta.url);

/**
 * The layers, lowest first. A module may import from its own layer and from any layer below it. Within one
 * layer imports are allowed, but the graph as a whole must have no cycle.
 */
export const LAYERS: readonly { name: string; paths: readonly string[] }[] = [
  { name: "ground", paths: ["core/"] },
  { name: "operations", paths: ["ops/"] },
  { name: "gate", paths: ["gate/"] },
  { name: "views", paths: ["views/"] },
  { name: "jobs", paths: ["jobs/"] },
  { name: "commands", paths: ["commands/"] },
  { name: "entries", paths: ["slack/", "alerts/", "http/", "cli/", "cli.ts"] },
  { name: "composition", paths: ["bot.ts", "main.ts"] },
  { name: "stand-ins", paths: ["standins/"] },
  { name: "sandbox and tools", paths: ["sandbox/", "tools/"] },
];

/** The programs a user starts: everything they reach is the product. */
const ENTRY_POINTS = ["main.ts", "cli.ts", "sandbox/dev.ts", "tools/prereqs.ts", "tools/apply_target_sql.ts"];

/** The layer index of a project path, or undefined for a path outside every layer. */
export function layerOf(path: string): number | undefined {
  const i = LAYERS.findIndex((l) => l.paths.some((p) => p.endsWith("/") ? path.startsWith(p) : path === p));
  return i < 0 ? undefined : i;
}

/** Project-internal import edges (`from` imports `to`, both paths relative to the repository root). */
async function importEdges(entries: string[]): Promise<Map<string, Set<string>>> {
  const edges = new Map<string, Set<string>>();
  const root = ROOT.href;
  for (const entry of entries) {
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["info", "--json", entry],
      cwd: ROOT,
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(out.code, 0, `deno info ${entry}: ${new TextDecoder().decode(out.stderr)}`);
    const graph = JSON.parse(new TextDecoder().decode(out.stdout)) as {
      modules: {
        specifier: string;
        dependencies?: { code?: { specifier?: string }; type?: { specifier?: string } }[];
      }[];
    };
    for (const m of graph.modules) {
      if (!m.specifier.startsWith(root)) continue;
      const from = m.specifier.slice(root.length);
      const set = edges.get(from) ?? new Set<string>();
      edges.set(from, set);
      for (const d of m.dependencies ?? []) {
        for (const spec of [d.code?.specifier, d.type?.specifier]) {
          if (spec?.startsWith(root)) set.add(spec.slice(root.length));
        }
      }
    }
  }
  return edges;
}

/** Strongly connected components with more than one module (or a module importing itself): the cycles. */
export function cycles(edges: Map<string, Set<string>>): string[][] {
  let index = 0;
  const idx = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const on = new Set<string>();
  const out: string[][] = [];
  const visit = (v: string) => {
    idx.set(v, index);
    low.set(v, index++);
    stack.push(v);
    on.add(v);
    for (const w of edges.get(v) ?? []) {
      if (!idx.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (on.has(w)) low.set(v, Math.min(low.get(v)!, idx.get(w)!));
    }
    if (low.get(v) === idx.get(v)) {
      const comp: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        on.delete(w);
        comp.push(w);
      } while (w !== v);
      if (comp.length > 1 || edges.get(v)?.has(v)) out.push(comp.sort());
    }
  };
  for (const v of edges.keys()) if (!idx.has(v)) visit(v);
  return out;
}

Deno.test("the module graph of every entry point has no cycle, no upward import, and no import of tests/", async (t) => {
  const edges = await importEdges(ENTRY_POINTS);
  assert.ok(edges.size > 100, `read ${edges.size} project modules`);

  await t.step("every product module belongs to a layer", () => {
    const homeless = [...edges.keys()].filter((m) => layerOf(m) === undefined && !m.startsWith("tests/"));
    assert.deepEqual(homeless, [], "modules outside every layer (add the folder to LAYERS)");
  });

  await t.step("no product module imports tests/", () => {
    const bad = [...edges].flatMap(([from, tos]) =>
      [...tos].filter((to) => to.startsWith("tests/")).map((to) => `${from} -> ${to}`)
    );
    assert.deepEqual(bad, []);
  });

  await t.step("every import points down or stays in its layer", () => {
    const bad: string[] = [];
    for (const [from, tos] of edges) {
      const a = layerOf(from);
      for (const to of tos) {
        const b = layerOf(to);
        if (a !== undefined && b !== undefined && b > a) {
          bad.push(`${from} (${LAYERS[a].name}) -> ${to} (${LAYERS[b].name})`);
        }
      }
    }
    assert.deepEqual(bad.sort(), []);
  });

  await t.step("no import cycle among the project's modules", () => {
    assert.deepEqual(cycles(edges).map((c) => c.join(" <-> ")), []);
  });
});

Deno.test("cycles() finds a loop and layerOf() places files by folder", () => {
  const g = new Map([["a", new Set(["b"])], ["b", new Set(["c"])], ["c", new Set(["a"])], [
    "d",
    new Set(["a"]),
  ]]);
  assert.deepEqual(cycles(g), [["a", "b", "c"]]);
  assert.deepEqual(cycles(new Map([["a", new Set(["b"])], ["b", new Set<string>()]])), []);
  assert.equal(LAYERS[layerOf("ops/rotate_credentials.ts")!].name, "operations");
  assert.equal(LAYERS[layerOf("bot.ts")!].name, "composition");
  assert.equal(layerOf("tests/support/bot.ts"), undefined);
});
