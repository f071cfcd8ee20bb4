import assert from "node:assert/strict";
import { blockLines, blockRule, findBlocks, insertBlock, removeBlock } from "../../ops/_hba.ts";
import { parseAddress } from "../../ops/_security.ts";

const FILE = [
  "# TYPE  DATABASE  USER  ADDRESS  METHOD",
  "",
  "local   all       all            peer",
  "hostssl all       all   10.0.1.0/24 scram-sha-256",
  "hostssl all       all   0.0.0.0/0   reject",
  "",
].join("\n");

Deno.test("insertBlock() puts the marker and the reject rule above the first rule, keeping every other byte", () => {
  const a = parseAddress("203.0.113.7")!;
  const lines = blockLines(a, { actor: "U0ALICE", at: new Date("2025-01-02T03:04:05Z"), requestId: 12 });
  assert.deepEqual(lines, [
    "# bisman-ops block 203.0.113.7/32 by=U0ALICE at=2025-01-02T03:04:05.000Z request=12",
    "host    all    all    203.0.113.7/32    reject",
  ]);
  const { content, ruleLine } = insertBlock(FILE, lines);
  assert.equal(ruleLine, 4);
  assert.equal(content.split("\n")[ruleLine - 1], blockRule(a));
  assert.equal(removeBlock(content, a).content, FILE);
});

Deno.test("findBlocks() and removeBlock() touch only the bot's marked lines for that address", () => {
  const a = parseAddress("203.0.113.7")!;
  const b = parseAddress("198.51.100.0/24")!;
  let content = insertBlock(FILE, blockLines(a, { at: new Date(0) })).content;
  content = insertBlock(content, blockLines(b, { at: new Date(0) })).content;
  // A reject line a person wrote by hand for the same address, without the marker.
  content += "host all all 203.0.113.7/32 reject\n";
  assert.deepEqual(findBlocks(content).map((x) => x.address), ["198.51.100.0/24", "203.0.113.7/32"]);
  const r = removeBlock(content, a);
  assert.equal(r.removed, 1);
  assert.deepEqual(findBlocks(r.content).map((x) => x.address), ["198.51.100.0/24"]);
  assert.ok(r.content.endsWith("host all all 203.0.113.7/32 reject\n"), "the hand-written line stays");
  assert.equal(removeBlock(r.content, a).removed, 0);
});

Deno.test("blockLines() keeps the actor text to safe characters, so a marker can never become a rule", () => {
  const [marker] = blockLines(parseAddress("10.0.0.1")!, {
    actor: "evil\nhost all all 0.0.0.0/0 trust",
    at: new Date(0),
  });
  assert.ok(!marker.includes("\n"));
  assert.ok(marker.startsWith("# bisman-ops block 10.0.0.1/32 by=evil_host_all_all_0.0.0.0_0_trust"));
});

Deno.test("parseAddress() accepts IPv4/IPv6 with prefixes and refuses everything else", () => {
  assert.deepEqual(parseAddress("10.0.1.7"), {
    text: "10.0.1.7/32",
    family: 4,
    prefix: 32,
    host: "10.0.1.7",
  });
  assert.equal(parseAddress("2001:DB8::1/64")?.text, "2001:db8::1/64");
  for (
    const bad of [
      "10.0.1.7/33",
      "10.0.01.7",
      "10.0.1",
      "10.0.1.7;",
      "host",
      "::1/129",
      "1.2.3.4/-1",
      "0x0a.0.0.1",
    ]
  ) {
    assert.equal(parseAddress(bad), undefined, bad);
  }
});
