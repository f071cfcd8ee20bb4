import assert from "node:assert/strict";
import {
  ACTIONS,
  ALERT_ACTION_PATTERN,
  ALERT_ACTIONS,
  alertButtonOf,
  encodeAlertButton,
  encodeModalMetadata,
  encodeRequestButton,
  parseAlertButton,
  parseModalMetadata,
  parseRequestButton,
  VIEWS,
} from "../../views/actions.ts";
import { invokerOfInteraction } from "../../slack/interaction.ts";

Deno.test("views/actions: button values round-trip and anything else is refused", () => {
  const v = encodeRequestButton({ request: 42, plan: "0123456789ab" });
  assert.deepEqual(parseRequestButton(v), { request: 42, plan: "0123456789ab" });
  assert.ok(v.length < 2000, "within Slack's button value limit");
  for (
    const bad of [
      undefined,
      "",
      "42",
      "{not json",
      '{"v":1,"request":-1,"plan":"0123456789ab"}',
      '{"v":1,"request":1.5,"plan":"0123456789ab"}',
      '{"v":1,"request":"1","plan":"0123456789ab"}',
      '{"v":1,"request":1,"plan":"DROP TABLE x"}',
      '{"v":2,"request":1,"plan":"0123456789ab"}',
      '{"v":1,"request":1,"plan":"0123456789ab","extra":true}',
      "x".repeat(5000),
    ]
  ) {
    assert.equal(parseRequestButton(bad), undefined, `refuses ${String(bad).slice(0, 40)}`);
  }
});

Deno.test("views/actions: modal metadata round-trips and foreign metadata is refused", () => {
  const m = {
    request: 7,
    plan: "abcdefabcdef",
    channel: "C0OPS",
    thread: "1700000000.000100",
    expected: "main",
  };
  assert.deepEqual(parseModalMetadata(encodeModalMetadata(m)), m);
  assert.equal(parseModalMetadata('{"v":1,"request":7,"plan":"abcdefabcdef","channel":"#ops"}'), undefined);
  assert.equal(parseModalMetadata("null"), undefined);
});

Deno.test("views/actions: IDs are unique and the invoker carries IDs, the name only for display", () => {
  const ids = [...Object.values(ACTIONS), ...Object.values(VIEWS)];
  assert.equal(new Set(ids).size, ids.length);
  const inv = invokerOfInteraction({
    user: { id: "U0DAVE", username: "carol", team_id: "T0USER" },
    team: { id: "T0TEAM" },
    enterprise: { id: "E0ORG" },
    channel: { id: "C0OPS" },
  });
  assert.deepEqual(inv, {
    userId: "U0DAVE",
    userName: "carol",
    teamId: "T0USER", // the user's own workspace, not the payload's team (Slack Connect: slack/interaction.ts)
    enterpriseId: "E0ORG",
    channelId: "C0OPS",
    via: "slack",
  });
  assert.equal(invokerOfInteraction({ user: { id: "U1", team_id: "T0USER" }, team: null }).teamId, "T0USER");
});

Deno.test("views/actions: no action_id or callback_id literal appears outside views/actions.ts", async () => {
  const root = new URL("../../", import.meta.url).pathname;
  const literals = [...Object.values(ACTIONS), ...Object.values(VIEWS)];
  const offenders: string[] = [];
  const walk = async (dir: string) => {
    for await (const e of Deno.readDir(dir)) {
      const path = `${dir}/${e.name}`;
      // Dot folders are tooling and scratch space, tests/ is allowed to name IDs (they drive the stand-in).
      if (e.isDirectory && !e.name.startsWith(".") && !["node_modules", "tests"].includes(e.name)) {
        await walk(path);
      } else if (e.isFile && e.name.endsWith(".ts") && !path.endsWith("views/actions.ts")) {
        const text = await Deno.readTextFile(path);
        for (const l of literals) if (text.includes(`"${l}"`)) offenders.push(`${path}: ${l}`);
      }
    }
  };
  await walk(root.replace(/\/$/, ""));
  assert.deepEqual(offenders, []);
});

Deno.test("views/actions: alert button values round-trip, and each alert button has its own action ID", () => {
  for (const ref of [{ fingerprint: "304ffdb0e058c0a1" }, { storm: 12 }]) {
    const v = encodeAlertButton(ref);
    assert.deepEqual(parseAlertButton(v), ref);
    assert.ok(v.length < 2000);
  }
  for (
    const bad of [
      undefined,
      "",
      "{not json",
      '{"v":1,"f":"NOT-HEX"}',
      '{"v":1,"s":0}',
      '{"v":1,"s":1.5}',
      '{"v":1,"f":"ab","s":1}',
      '{"v":2,"f":"ab"}',
      "x".repeat(5000),
    ]
  ) {
    assert.equal(parseAlertButton(bad), undefined, String(bad).slice(0, 40));
  }
  const ids = Object.values(ALERT_ACTIONS);
  assert.equal(new Set(ids).size, ids.length);
  for (const id of ids) assert.match(id, ALERT_ACTION_PATTERN);
  assert.equal(alertButtonOf(ALERT_ACTIONS.promote_replica), "promote_replica");
  assert.equal(alertButtonOf(ACTIONS.approve), undefined);
});

Deno.test("views/actions: each silence length has its own action_id, and the listener reads the hours back", async () => {
  const { parseSilenceAction, silenceActionId, SILENCE_HOURS, THREAD_ACTION_PATTERN, THREAD_ACTIONS } =
    await import(
      "../../views/actions.ts"
    );
  const ids = SILENCE_HOURS.map((h) => silenceActionId(h));
  assert.equal(new Set(ids).size, ids.length, "distinct within the parent's actions block");
  for (const h of SILENCE_HOURS) {
    assert.deepEqual(parseSilenceAction(silenceActionId(h)), { hours: h });
    assert.match(silenceActionId(h), THREAD_ACTION_PATTERN, "the thread listener receives it");
  }
  assert.deepEqual(
    parseSilenceAction(THREAD_ACTIONS.silence),
    {},
    "the plain id of older parents: hours from the value",
  );
  for (
    const other of [
      THREAD_ACTIONS.take,
      THREAD_ACTIONS.unsilence,
      "bisman.thread.silence.2h",
      "bisman.thread.silence.x",
    ]
  ) {
    assert.equal(parseSilenceAction(other), undefined, other);
  }
});

Deno.test("views/actions: checklist buttons get indexed ids that their listeners match", async () => {
  const { checklistButtonId, CHECKLIST_ATTEST_PATTERN, CHECKLIST_RUNBOOK_PATTERN, JOB_ACTIONS } =
    await import(
      "../../views/actions.ts"
    );
  const ids = [0, 1, 2, 3, 4].map((i) => checklistButtonId(JOB_ACTIONS.attest, i));
  assert.equal(new Set(ids).size, 5);
  for (const id of ids) assert.match(id, CHECKLIST_ATTEST_PATTERN);
  assert.match(JOB_ACTIONS.attest, CHECKLIST_ATTEST_PATTERN, "older messages still work");
  assert.match(checklistButtonId(JOB_ACTIONS.runbook, 3), CHECKLIST_RUNBOOK_PATTERN);
  assert.doesNotMatch(checklistButtonId(JOB_ACTIONS.runbook, 3), CHECKLIST_ATTEST_PATTERN);
});
