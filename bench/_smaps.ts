/**
 * A process's resident memory by mapping, from /proc/<pid>/smaps: files by name (the `deno` binary's text
 * among them), `[heap]` (glibc's main heap), `[stack]`, and anonymous mappings by permissions (V8's heap
 * spaces and glibc's thread arenas). For bench/_mem_breakdown.ts and bench/load.ts.
 */

const MiB = 1024 * 1024;

/** One group of mappings: resident and anonymous bytes, and how many mappings. */
export interface MappingGroup {
  name: string;
  rss: number;
  anon: number;
  n: number;
}

/** The groups (largest resident first) and the single mappings over 2 MiB resident. */
export async function smapsByMapping(pid: number): Promise<{
  groups: MappingGroup[];
  big: { name: string; rss: number; size: number }[];
}> {
  const smaps = await Deno.readTextFile(`/proc/${pid}/smaps`);
  const groups = new Map<string, MappingGroup>();
  const big: { name: string; rss: number; size: number }[] = [];
  let cur = "";
  let size = 0;
  for (const line of smaps.split("\n")) {
    const head = /^[0-9a-f]+-[0-9a-f]+ (\S+) \S+ \S+ \S+\s*(.*)$/.exec(line);
    if (head) {
      const path = head[2].trim();
      cur = path === "" ? `[anon ${head[1]}]` : path.startsWith("/") ? path.replace(/.*\//, "file:") : path;
      continue;
    }
    const m = /^(Size|Rss|Anonymous):\s+(\d+) kB/.exec(line);
    if (!m) continue;
    const bytes = Number(m[2]) * 1024;
    if (m[1] === "Size") size = bytes;
    const g = groups.get(cur) ?? { name: cur, rss: 0, anon: 0, n: 0 };
    if (m[1] === "Rss") {
      g.rss += bytes;
      g.n++;
      if (bytes > 2 * MiB) big.push({ name: cur, rss: bytes, size });
    }
    if (m[1] === "Anonymous") g.anon += bytes;
    groups.set(cur, g);
  }
  return {
    groups: [...groups.values()].sort((a, b) => b.rss - a.rss),
    big: big.sort((a, b) => b.rss - a.rss),
  };
}

/** The first `limit` groups, a line each: resident MiB, anonymous MiB, mappings, name. */
export function formatGroups(groups: MappingGroup[], limit = 15): string {
  return groups.filter((g) => g.rss > 0).slice(0, limit).map((v) =>
    `${(v.rss / MiB).toFixed(1).padStart(7)} ${(v.anon / MiB).toFixed(1).padStart(7)} ${
      String(v.n).padStart(5)
    }  ${v.name}`
  ).join("\n");
}
