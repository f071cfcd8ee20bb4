import assert from "node:assert/strict";
import { renderDigest } from "../../views/digest.ts";
import { sectionStatus, targetStatus } from "../../views/digest_model.ts";
import type { Digest, TargetDigest } from "../../views/digest_model.ts";
import { checklistCounts, renderChecklist } from "../../views/checklist.ts";
import type { Checklist } from "../../views/checklist_model.ts";

const target: TargetDigest = {
  target: "main",
  sections: [
    {
      key: "replication",
      title: "Replication lag",
      result: {
        state: "checked",
        status: "not_configured",
        lines: [{ status: "not_configured", text: "no replicas configured" }],
      },
    },
    {
      key: "credentials",
      title: "Credential ages",
      result: {
        state: "checked",
        status: "unknown",
        lines: [
          { status: "unknown", text: "bisman_app: could not check its age: Vault is sealed" },
          { status: "ok", text: "bisman_ro 3 days (limit 90 days)" },
        ],
      },
    },
    {
      key: "connections",
      title: "Connections",
      result: { state: "checked", status: "ok", lines: [{ status: "ok", text: "3 of 100 in use (3%)" }] },
    },
  ],
};

Deno.test("renderDigest() marks every line ok, warning, critical, not configured or could not check", () => {
  const d: Digest = {
    generatedAt: new Date("2026-12-01T09:00:00Z"),
    since: new Date("2026-11-30T09:00:00Z"),
    global: [],
    targets: [target],
    snapshots: {},
    ms: 10,
    inlineTargets: 10,
  };
  const text = JSON.stringify(renderDigest(d).main.blocks).replace(/\\n/g, "\n");
  assert.match(text, /:heavy_minus_sign: not configured \*Replication lag\*: no replicas configured/);
  assert.match(
    text,
    /:white_circle: could not check \*Credential ages\*: bisman_app: could not check its age/,
  );
  assert.match(text, /:large_green_circle: ok \*Connections\*/);
  assert.doesNotMatch(text, /ok \*Replication lag\*/);
  // Could not check outranks ok: the target is not shown as fine.
  assert.equal(targetStatus(target), "unknown");
  assert.equal(sectionStatus(target.sections[0].result), "not_configured");
  // Not configured alone does not make a target look worse than ok, nor ok.
  assert.equal(targetStatus({ target: "x", sections: [target.sections[0], target.sections[2]] }), "ok");
  assert.equal(targetStatus({ target: "y", sections: [target.sections[0]] }), "not_configured");
});

Deno.test("renderChecklist() shows not configured as its own status, never as pass", () => {
  const c: Checklist = {
    target: "main",
    checkedAt: new Date("2026-12-01T09:00:00Z"),
    items: [
      {
        group: "ongoing",
        key: "lag_checked_today",
        title: "Check replication lag daily",
        status: "not_configured",
        evidence: ["no replicas configured (targets.main.replicas)"],
      },
      { group: "ongoing", key: "x", title: "Something checked", status: "pass", evidence: ["fine"] },
    ],
  };
  assert.equal(checklistCounts(c), "1 pass, 1 not configured");
  const text = JSON.stringify(renderChecklist(c).blocks);
  assert.match(text, /:heavy_minus_sign: not configured \*Check replication lag daily\*/);
});
