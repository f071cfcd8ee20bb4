import assert from "node:assert/strict";
import { renderDetect, renderRoleDrift, renderTls } from "../../views/security.ts";
import type { DetectBypassResult } from "../../ops/detect_bypass.ts";
import type { RoleDriftResult } from "../../ops/role_drift.ts";

const withinLimits = (blocks: unknown[]) => {
  assert.ok(blocks.length <= 50, `${blocks.length} blocks`);
  for (const b of blocks) {
    const t = (b as { text?: { text: string } }).text?.text ?? "";
    assert.ok(t.length <= 3000, `${t.length} characters`);
  }
};

Deno.test("renderDetect() shows each finding with its evidence and audit search, within Slack's limits", () => {
  const r: DetectBypassResult = {
    target: "prod",
    member: "replica1",
    since: "2025-01-01T00:00:00.000Z",
    rowsInWindow: 12345,
    skipped: [],
    ownActions: [],
    findings: Array.from({ length: 40 }, (_, i) => ({
      kind: "unexpected_dml_role" as const,
      severity: "critical" as const,
      title: `role_${i} wrote rows`,
      evidence: Array.from({ length: 20 }, (_, j) => `UPDATE t${j}: ${"x".repeat(400)}`),
      auditSearch: `/bisman audit prod user=role_${i} since=24h`,
      next: `/bisman lock-role role_${i} prod`,
      subject: { role: `role_${i}` },
    })),
  };
  const reply = renderDetect(r);
  withinLimits(reply.blocks!);
  assert.match(JSON.stringify(reply.blocks), /`\/bisman audit prod user=role_0 since=24h`/);
  assert.match(JSON.stringify(reply.blocks), /25 more finding\(s\)/);
  assert.match(reply.text, /\[critical\] unexpected_dml_role: role_5 wrote rows/);
  assert.ok(reply.text.length <= 38_000);
  const clean = renderDetect({ ...r, findings: [] });
  assert.match(JSON.stringify(clean.blocks), /No bypass found/);
});

Deno.test("renderRoleDrift() lists drift with its statement and notes apart, within Slack's limits", () => {
  const r: RoleDriftResult = {
    target: "prod",
    schema: "public",
    checkedAt: "2025-01-01T00:00:00.000Z",
    drift: Array.from({ length: 300 }, (_, i) => ({
      kind: "table_privilege" as const,
      severity: "warning" as const,
      role: "r",
      detail: `r has DELETE on t${i} beyond the policy`,
      fix: [`REVOKE DELETE ON TABLE public.t${i} FROM r;`],
    })),
    notes: [{ kind: "login", severity: "warning", role: "svc", detail: "svc cannot log in", fix: [] }],
    statements: [],
  };
  const reply = renderRoleDrift(r);
  withinLimits(reply.blocks!);
  assert.match(JSON.stringify(reply.blocks), /REVOKE DELETE ON TABLE public\.t0 FROM r;/);
  assert.match(JSON.stringify(reply.blocks), /Notes/);
});

Deno.test("renderTls() marks each check and lists the offending lines", () => {
  const reply = renderTls({
    target: "prod",
    ok: false,
    checks: [
      { check: "ssl", status: "ok", detail: "ssl = on", evidence: [] },
      {
        check: "hba_hostssl",
        status: "critical",
        detail: "1 rule",
        evidence: ["line 3: host all all 10.0.0.0/8 md5"],
      },
    ],
  });
  withinLimits(reply.blocks!);
  assert.match(reply.text, /\[critical\] hba_hostssl: 1 rule\n {4}- line 3: host all all 10\.0\.0\.0\/8 md5/);
});
