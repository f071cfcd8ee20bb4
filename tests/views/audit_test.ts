import assert from "node:assert/strict";
import { auditRowLine, renderAuditSearch } from "../../views/audit.ts";
import type { AuditRowView, AuditSearchResult } from "../../ops/audit_search.ts";
import { maskStatement } from "../../core/statement_mask.ts";

function row(i: number, over: Partial<AuditRowView> = {}): AuditRowView {
  return {
    id: i,
    occurredAt: new Date(Date.UTC(2025, 0, 2, 3, 4, i % 60)).toISOString(),
    table: "payment_requests",
    action: "UPDATE",
    rowId: String(1000 + i),
    dbUser: "bisman_app",
    sessionUser: "bisman_app",
    appUserId: `user-${i}@example.test`,
    serviceName: "web",
    clientAddr: "10.0.1.17",
    applicationName: "web",
    query: maskStatement("update payment_requests set status = $1 where id = $2"),
    changed: ["status", "updated_at"],
    ...over,
  };
}

function result(rows: AuditRowView[], more = 0): AuditSearchResult {
  return {
    target: "prod",
    member: "replica1",
    since: "2025-01-01T00:00:00.000Z",
    filters: { table: "payment_requests" },
    rows,
    more,
    moreCapped: false,
    ms: 3,
  };
}

Deno.test("renderAuditSearch() keeps 200 long rows within Slack's limits and counts what it leaves out", () => {
  const long = Array.from(
    { length: 200 },
    (_, i) => row(i, { appUserId: "ü".repeat(300), changed: ["c".repeat(200)] }),
  );
  const r = renderAuditSearch(result(long, 5000));
  assert.ok(r.blocks!.length <= 50);
  for (const b of r.blocks!) {
    const text = (b as { text?: { text: string } }).text?.text ?? "";
    assert.ok(text.length <= 3000, `section of ${text.length} characters`);
  }
  const shown = r.blocks!.map((b) => (b as { text?: { text: string } }).text?.text ?? "").join("\n")
    .split("\n").filter((l) => /^(```)?2025-/.test(l)).length;
  const note = JSON.stringify(r.blocks!.at(-1));
  assert.match(note, new RegExp(`${200 - shown + 5000} more row\\(s\\); narrow the search`));
});

Deno.test("auditRowLine() shows who wrote, with what context, never row data; backticks and mrkdwn are neutralised", () => {
  const line = auditRowLine(
    row(1, { appUserId: "a`b<c>", serviceName: null, dbUser: "mallory", sessionUser: "mallory" }),
  );
  assert.match(line, /^2025-01-02 03:04:01 UPDATE payment_requests#1001/);
  assert.ok(!line.includes("`") && !line.includes("<c>"));
  assert.match(line, /a'b&lt;c&gt;\/-/);
  assert.match(auditRowLine(row(2, { appUserId: null, serviceName: null })), / NO CONTEXT /);
  assert.ok(!line.includes("update payment_requests set"), "no statement text in the table");
});

Deno.test("renderAuditSearch() says when nothing matches", () => {
  const r = renderAuditSearch(result([]));
  assert.match(JSON.stringify(r.blocks), /No rows match\./);
  assert.match(r.text, /: 0 row\(s\)/);
});
