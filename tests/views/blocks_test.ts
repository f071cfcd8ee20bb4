import assert from "node:assert/strict";
import {
  escapeMrkdwn,
  mrkdwnSection,
  SLACK_TEXT_MAX,
  slackMessage,
  slackText,
  truncate,
  truncateMrkdwn,
} from "../../views/blocks.ts";

/** Whether a cut left something Slack parses broken before the "…". */
function broken(cut: string): string | undefined {
  const i = cut.lastIndexOf("…");
  const before = cut.slice(0, i);
  if (before.lastIndexOf("<") > before.lastIndexOf(">")) return "a <…> cut in half";
  if (/&[a-zA-Z#0-9]{0,6}$/.test(before)) return "an entity cut in half";
  if (/[\uD800-\uDBFF]$/.test(before)) return "half a surrogate pair";
  if ((cut.match(/```/g) ?? []).length % 2) return "an open code block";
  return undefined;
}

Deno.test("truncateMrkdwn() never cuts a link, mention, date, entity, emoji or code block in half", () => {
  const text = escapeMrkdwn("a & b < c > d 😀 ") +
    "<@U0ALICE> <#C0OPS> <!channel> <https://example.com/x?a=1&b=2|the link> " +
    "<!date^1700000000^{date_short}|2023-11-14> ```code <@U0BOB>``` tail " + escapeMrkdwn("x&y");
  for (let max = 2; max < text.length; max++) {
    const cut = truncateMrkdwn(text, max);
    assert.ok(cut.length <= max, `max ${max}: ${cut.length} characters`);
    assert.ok(cut.endsWith("…") || cut.endsWith("…```"), `max ${max} marks the cut: ${cut}`);
    assert.equal(broken(cut), undefined, `max ${max}: ${cut}`);
  }
  assert.equal(truncateMrkdwn(text, text.length), text, "no cut when it fits");
});

Deno.test("truncate() cuts plain text at the limit without splitting an emoji", () => {
  assert.equal(truncate("abcdef", 4), "abc…");
  assert.equal(truncate("ab😀cd", 4), "ab…", "the emoji's two code units stay together");
  assert.equal(truncate("abc", 3), "abc");
});

Deno.test("mrkdwnSection() cuts long text within Slack's 3,000 characters without breaking a mention", () => {
  const s = mrkdwnSection(`${"x".repeat(2990)} <@U0ALICE> more`) as { text: { text: string } };
  assert.ok(s.text.text.length <= 3000);
  assert.ok(!s.text.text.includes("<@U0A"), s.text.text.slice(-20));
});

Deno.test("slackText() keeps a message's text under Slack's 40,000 characters and says what it left out", () => {
  const lines = Array.from({ length: 2000 }, (_, i) => `line ${i} ${"x".repeat(30)}`).join("\n");
  const cut = slackText(lines);
  assert.ok(cut.length <= SLACK_TEXT_MAX, `${cut.length}`);
  const note = /… (\d+) more characters not shown/.exec(cut);
  assert.ok(note, cut.slice(-200));
  const kept = cut.slice(0, cut.lastIndexOf("\n…"));
  assert.ok(lines.startsWith(kept), "the kept part is the start of the text, cut at a line");
  assert.equal(Number(note[1]), lines.length - kept.length);
  const oneLine = slackText("y".repeat(100_000));
  assert.ok(oneLine.length <= SLACK_TEXT_MAX);
  assert.equal(slackText("short"), "short");
  assert.deepEqual(slackMessage({ text: "short", blocks: [] }), { text: "short", blocks: [] });
});
