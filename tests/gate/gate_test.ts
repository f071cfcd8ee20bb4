import assert from "node:assert/strict";
import { startCluster, type TestCluster } from "../../standins/cluster.ts";
import { startTestBot, type TestBot, testConfig, USERS } from "../support/bot.ts";
import { prepareGateTables, registerGateTest, runsOf } from "../support/gate_op.ts";
import { ask, ephemeralTo } from "../support/gate.ts";
import { ACTIONS, INPUTS, VIEWS } from "../../views/actions.ts";
import { registerPlanNote, registerPrecondition } from "../../gate/gate.ts";

registerGateTest();

const TARGET_PASSWORD = `target-pw-${crypto.randomUUID()}`;
Deno.env.set("BISMAN_TEST_TARGET_PW", TARGET_PASSWORD);

/** The test cluster as target `main`, reached as a password role (so the run has a secret to leak). */
function config(cluster: TestCluster, policy: Record<string, unknown> = {}) {
  return testConfig(cluster, (doc) => {
    doc.targets.main.primary.user = "gate_runner";
    doc.targets.main.primary.password_env = "BISMAN_TEST_TARGET_PW";
    doc.policies = { gate_test: policy };
  });
}

async function withBot(
  cluster: TestCluster,
  policy: Record<string, unknown>,
  fn: (tb: TestBot) => Promise<void>,
  start: Parameters<typeof startTestBot>[1] = {},
): Promise<void> {
  const tb = await startTestBot(cluster, { config: config(cluster, policy), ...start });
  try {
    await fn(tb);
  } finally {
    await tb.stop();
  }
}

async function setUp(): Promise<{ cluster: TestCluster; sql: ReturnType<TestCluster["primary"]["sql"]> }> {
  const cluster = await startCluster({ name: "approval" });
  const sql = cluster.primary.sql();
  await sql.unsafe(`create role gate_runner login superuser password '${TARGET_PASSWORD}'`);
  await prepareGateTables(sql);
  return { cluster, sql };
}

Deno.test("ApprovalGate through signed Slack requests: one cluster, a fresh bot and state database per scenario", async (t) => {
  const { cluster, sql } = await setUp();
  try {
    await t.step(
      "the requester and an outsider are refused, an approver's click runs it once, all in the audit log",
      async (t) => {
        await withBot(cluster, {}, async (tb) => {
          let id = 0;
          await t.step(
            "a destructive request answers with a plan and posts the approval message",
            async () => {
              const r = await ask(tb, "gate-test k1", USERS.bob);
              assert.match(r.text, /Request #\d+ waits for an approver in <#C0OPS>/);
              id = r.id!;
              const msg = tb.approvalMessage(id)!;
              const blocks = JSON.stringify(msg.blocks);
              assert.match(blocks, /<@U0BOB>/, "requester");
              assert.match(blocks, /\*Target\*\\nmain/, "target");
              assert.match(blocks, /insert into gate_test_runs/, "steps");
              assert.match(blocks, /Expires <!date\^\d+/, "expiry");
              assert.match(blocks, new RegExp(ACTIONS.approve.replaceAll(".", "\\.")));
              assert.match(blocks, /"confirm":\{"title"/, "Approve carries a confirm dialog");
              assert.match(blocks, new RegExp(ACTIONS.deny.replaceAll(".", "\\.")));
            },
          );

          await t.step("the requester's own click is refused, ephemerally, and nothing changes", async () => {
            assert.equal(await tb.click(ACTIONS.approve, id, USERS.bob), 200);
            await ephemeralTo(tb, USERS.bob, /You requested #\d+, so your approval does not count/);
            assert.equal((await tb.bot.gate.view(id))!.request.state, "pending");
          });

          await t.step(
            "a user outside the approvers is refused, ephemerally, and nothing changes",
            async () => {
              assert.equal(await tb.click(ACTIONS.approve, id, USERS.dave), 200);
              await ephemeralTo(tb, USERS.dave, /You are not an approver for gate_test: nothing changed/);
              assert.equal((await tb.bot.gate.view(id))!.request.state, "pending");
              assert.equal(await runsOf(sql, "k1"), 0);
            },
          );

          await t.step("an approver's click runs it once and the message ends as succeeded", async () => {
            const started = performance.now();
            assert.equal(await tb.click(ACTIONS.approve, id, USERS.carol), 200);
            assert.ok(performance.now() - started < 3000, "the click is acknowledged at once");
            await tb.waitForState(id, "succeeded");
            assert.equal(await runsOf(sql, "k1"), 1);
            const msg = tb.approvalMessage(id)!;
            assert.match(msg.text!, /succeeded: row appended for k1/);
            assert.ok(!JSON.stringify(msg.blocks).includes(ACTIONS.approve), "no buttons on a final message");
            assert.ok(msg.edits >= 2, "edited at running and at succeeded");
            const [row] = await sql`select app_user, service from gate_test_runs where key = 'k1'`;
            assert.deepEqual(
              { ...row },
              { app_user: USERS.bob, service: "bisman-ops" },
              "DML audit context set",
            );
          });

          await t.step(
            "the audit log holds requested, planned, refused ×2, approved, started, succeeded in order",
            async () => {
              const rows = await tb.bot.deps.audit.rows({ requestId: id });
              assert.deepEqual(rows.map((r) => r.action), [
                "request.created",
                "request.planned",
                "approval.refused",
                "approval.refused",
                "request.approved",
                "op.started",
                "op.succeeded",
              ]);
              assert.deepEqual(rows.map((r) => r.actor).slice(0, 5), [
                USERS.bob,
                USERS.bob,
                USERS.bob,
                USERS.dave,
                USERS.carol,
              ]);
              assert.equal(typeof rows.at(-1)!.details.duration_ms, "number");
              assert.equal(rows[1].details.plan_hash, (await tb.bot.gate.view(id))!.request.plan_hash);
              assert.ok((await tb.bot.deps.audit.verify()).ok);
            },
          );

          await t.step("a click after the run is refused: it executes only once", async () => {
            await tb.click(ACTIONS.approve, id, USERS.erin);
            await ephemeralTo(tb, USERS.erin, /already ran and succeeded/);
            assert.equal(await runsOf(sql, "k1"), 1);
          });

          await t.step(
            "a failing operation ends as failed with its message, audited with its duration",
            async () => {
              const r = await ask(tb, "gate-test k1f fail=yes", USERS.alice);
              await tb.click(ACTIONS.approve, r.id!, USERS.carol);
              await tb.waitForState(r.id!, "failed");
              assert.match(
                tb.approvalMessage(r.id!)!.text!,
                /failed: Test failure for k1f: nothing was written/,
              );
              const last = (await tb.bot.deps.audit.rows({ requestId: r.id! })).at(-1)!;
              assert.equal(last.action, "op.failed");
              assert.equal(last.details.step, "insert");
              assert.equal(typeof last.details.duration_ms, "number");
            },
          );

          await t.step("no secret is in the audit log, in any Slack call, or in the bot's logs", async () => {
            const secrets = [TARGET_PASSWORD, tb.slack.signingSecret, tb.slack.botToken];
            const audit = JSON.stringify(await tb.bot.deps.audit.rows());
            const calls = JSON.stringify(tb.slack.calls.map((c) => c.args));
            const logs = tb.logs.join("\n");
            assert.ok(
              tb.bot.deps.secrets.leaks(TARGET_PASSWORD),
              "the target password was registered as a secret",
            );
            for (const s of secrets) {
              assert.ok(!audit.includes(s), "audit rows");
              assert.ok(!calls.includes(s), "Slack calls");
              assert.ok(!logs.includes(s), "bot logs");
            }
          });
        });
      },
    );

    await t.step(
      "expired requests cannot be approved, their message says expired, and the sweep expires the rest",
      async (t) => {
        let offsetMs = 0;
        await withBot(cluster, { expiry_minutes: 15 }, async (tb) => {
          await t.step("a click after the expiry is refused and the message says expired", async () => {
            const { id } = await ask(tb, "gate-test k2");
            offsetMs += 16 * 60_000;
            await tb.click(ACTIONS.approve, id!, USERS.carol);
            await ephemeralTo(tb, USERS.carol, /expired at .*: it can no longer be approved/);
            await tb.waitForState(id!, "expired");
            assert.match(tb.approvalMessage(id!)!.text!, /expired/);
            assert.ok(!JSON.stringify(tb.approvalMessage(id!)!.blocks).includes(ACTIONS.approve));
            assert.equal(await runsOf(sql, "k2"), 0);
          });

          await t.step("the sweep marks expired requests and edits their messages", async () => {
            const a = (await ask(tb, "gate-test k3")).id!;
            const b = (await ask(tb, "gate-test k4")).id!;
            offsetMs += 10 * 60_000;
            assert.equal(await tb.bot.gate.sweep(), 0, "nothing expires early");
            offsetMs += 6 * 60_000;
            assert.equal(await tb.bot.gate.sweep(), 2);
            await tb.bot.gate.idle();
            for (const id of [a, b]) {
              assert.equal((await tb.bot.gate.view(id))!.request.state, "expired");
              assert.match(tb.approvalMessage(id)!.text!, /expired/);
              const actions = (await tb.bot.deps.audit.rows({ requestId: id })).map((r) => r.action);
              assert.deepEqual(actions, ["request.created", "request.planned", "request.expired"]);
            }
            assert.equal(await tb.bot.gate.sweep(), 0, "a second sweep changes nothing");
          });
        }, { start: { now: () => new Date(Date.now() + offsetMs) } });
      },
    );

    await t.step("a policy of 2 approvals runs only after the second distinct approver", async (t) => {
      await withBot(cluster, { approvals: 2 }, async (tb) => {
        const { id } = await ask(tb, "gate-test k5");
        await t.step("the first approval is recorded and shown, nothing runs", async () => {
          await tb.click(ACTIONS.approve, id!, USERS.carol);
          await tb.slack.waitFor(
            () => /waiting for approval \(1 of 2\)/.test(tb.approvalMessage(id!)!.text!),
            5000,
            "the message to show 1 of 2",
          );
          assert.equal((await tb.bot.gate.view(id!))!.request.state, "pending");
          assert.equal(await runsOf(sql, "k5"), 0);
        });
        await t.step("the same approver again does not count twice", async () => {
          await tb.click(ACTIONS.approve, id!, USERS.carol);
          await ephemeralTo(tb, USERS.carol, /You already approved request #\d+: it needs 1 more/);
          assert.equal(await runsOf(sql, "k5"), 0);
        });
        await t.step("a second, distinct approver (eligible through a user group) makes it run", async () => {
          await tb.click(ACTIONS.approve, id!, USERS.erin);
          await tb.waitForState(id!, "succeeded");
          assert.equal(await runsOf(sql, "k5"), 1);
          const approvals = (await tb.bot.gate.view(id!))!.approvals.map((a) => a.approver).sort();
          assert.deepEqual(approvals, [USERS.carol, USERS.erin]);
        });
      });
    });

    await t.step(
      "identity is Slack's IDs: a look-alike name and another workspace are refused",
      async (t) => {
        await withBot(cluster, {}, async (tb) => {
          const { id } = await ask(tb, "gate-test k6");
          await t.step("an outsider's ID with an approver's display name is refused", async () => {
            await tb.click(ACTIONS.approve, id!, USERS.dave, { userName: "carol" });
            await ephemeralTo(tb, USERS.dave, /not an approver/);
            assert.equal((await tb.bot.gate.view(id!))!.request.state, "pending");
          });
          await t.step("an approver's click from another workspace is refused", async () => {
            await tb.click(ACTIONS.approve, id!, USERS.carol, { teamId: "T0OTHER" });
            await ephemeralTo(tb, USERS.carol, /workspace T0OTHER/);
            assert.equal((await tb.bot.gate.view(id!))!.request.state, "pending");
            const refusals = (await tb.bot.deps.audit.rows({ requestId: id! })).filter((r) =>
              r.action === "approval.refused"
            );
            assert.equal(refusals.length, 2);
            assert.equal(refusals[1].details.team_id, "T0OTHER");
          });
          await t.step(
            "a request from another workspace is refused, by the command and by the gate",
            async () => {
              const r = await ask(tb, "gate-test k7", USERS.alice, { team_id: "T0OTHER" });
              assert.match(r.text, /workspace T0OTHER/);
              await assert.rejects(
                tb.bot.gate.request({
                  action: "gate_test",
                  args: { key: "k7" },
                  invoker: { userId: USERS.alice, teamId: "T0OTHER", channelId: "C0OPS", via: "slack" },
                }),
                /workspace T0OTHER/,
              );
              const refused = (await tb.bot.deps.audit.rows()).filter((r) => r.action === "request.refused");
              assert.equal(refused.length, 1);
            },
          );
          await t.step("the real approver from the configured workspace still can approve", async () => {
            await tb.click(ACTIONS.approve, id!, USERS.carol);
            await tb.waitForState(id!, "succeeded");
            assert.equal(await runsOf(sql, "k6"), 1);
          });
        });
      },
    );

    await t.step(
      "Deny asks for a reason in a modal, Cancel withdraws, typed confirmation needs the target's name",
      async (t) => {
        await withBot(cluster, { typed_confirmation: true }, async (tb) => {
          await t.step("Deny by an outsider is refused without a modal", async () => {
            const { id } = await ask(tb, "gate-test k8");
            await tb.click(ACTIONS.deny, id!, USERS.dave);
            await ephemeralTo(tb, USERS.dave, /not an approver/);
            assert.equal(tb.slack.views.length, 0);
          });
          await t.step(
            "Deny opens a modal; an empty reason is refused in the modal; a reason denies it",
            async () => {
              const id = tb.lastRequestId();
              await tb.click(ACTIONS.deny, id, USERS.carol);
              await tb.slack.waitFor(() => tb.slack.views.length === 1, 5000, "deny modal");
              const empty = await tb.submitView(VIEWS.denyReason, USERS.carol, {
                [INPUTS.reason.block]: { [INPUTS.reason.action]: " " },
              });
              assert.equal(empty.body.response_action, "errors");
              const ok = await tb.submitView(VIEWS.denyReason, USERS.carol, {
                [INPUTS.reason.block]: { [INPUTS.reason.action]: "not during month-end close" },
              });
              assert.equal(ok.status, 200);
              await tb.waitForState(id, "denied");
              assert.match(tb.approvalMessage(id)!.text!, /denied by carol: not during month-end close/);
              const denied = (await tb.bot.deps.audit.rows({ requestId: id })).at(-1)!;
              assert.equal(denied.action, "request.denied");
              assert.equal(denied.details.reason, "not during month-end close");
              assert.equal(await runsOf(sql, "k8"), 0);
            },
          );
          await t.step("the requester cancels a pending request", async () => {
            const { id } = await ask(tb, "gate-test k9");
            await tb.click(ACTIONS.cancel, id!, USERS.dave);
            await ephemeralTo(tb, USERS.dave, /for operators/);
            await tb.click(ACTIONS.cancel, id!, USERS.alice);
            await tb.waitForState(id!, "cancelled");
            assert.match(tb.approvalMessage(id!)!.text!, /cancelled/);
          });
          await t.step(
            "Approve opens a typed-confirmation modal; a wrong name does not approve; the target's does",
            async () => {
              const { id } = await ask(tb, "gate-test k10");
              await tb.click(ACTIONS.approve, id!, USERS.carol);
              await tb.slack.waitFor(
                () => tb.slack.views.some((v) => (v.view as any).callback_id === VIEWS.typedConfirmation),
                5000,
                "typed confirmation modal",
              );
              assert.equal(
                (await tb.bot.gate.view(id!))!.approvals.length,
                0,
                "the click alone does not count",
              );
              const wrong = await tb.submitView(VIEWS.typedConfirmation, USERS.carol, {
                [INPUTS.typed.block]: { [INPUTS.typed.action]: "mian" },
              });
              assert.equal(wrong.body.response_action, "errors");
              assert.match(wrong.body.errors[INPUTS.typed.block], /Type main exactly/);
              assert.equal((await tb.bot.gate.view(id!))!.request.state, "pending");
              const right = await tb.submitView(VIEWS.typedConfirmation, USERS.carol, {
                [INPUTS.typed.block]: { [INPUTS.typed.action]: "main" },
              });
              assert.equal(right.status, 200);
              await tb.waitForState(id!, "succeeded");
              assert.equal(await runsOf(sql, "k10"), 1);
              const approved = (await tb.bot.deps.audit.rows({ requestId: id! })).find((r) =>
                r.action === "request.approved"
              )!;
              assert.equal(approved.details.typed_confirmation, true);
            },
          );
          await t.step("the gate itself refuses a typed name that does not match", async () => {
            const { id } = await ask(tb, "gate-test k11");
            const d = await tb.bot.gate.approve(id!, {
              userId: USERS.carol,
              teamId: "T0TEST",
              via: "slack",
            }, { typed: "prod" });
            assert.equal(d.status, "refused");
            assert.equal((await tb.bot.gate.view(id!))!.approvals.length, 0);
          });
        });
      },
    );

    await t.step(
      "a policy's channels limit where an action may be asked; the approval still goes to the ops channel",
      async (t) => {
        const cfg = testConfig(cluster, (doc) => {
          doc.slack.command_channels = ["C0INCIDENT"];
          doc.policies = { gate_test: { channels: ["C0INCIDENT"] } };
        });
        const tb = await startTestBot(cluster, { config: cfg });
        try {
          await t.step("asked in the ops channel, it is refused and names where to ask", async () => {
            const r = await ask(tb, "gate-test c1");
            assert.match(r.text, /gate_test may only be requested in <#C0INCIDENT>/);
            assert.equal(r.id, undefined);
          });
          await t.step(
            "asked in the allowed channel, it is planned and posted to the ops channel",
            async () => {
              const r = await ask(tb, "gate-test c2", USERS.alice, { channel_id: "C0INCIDENT" });
              assert.ok(r.id);
              assert.equal(tb.approvalMessage(r.id)!.channel, "C0OPS");
              assert.match(JSON.stringify(tb.approvalMessage(r.id)!.blocks), /in <#C0INCIDENT>/);
            },
          );
        } finally {
          await tb.stop();
        }
      },
    );

    await t.step(
      "hooks: a precondition refuses at request time and again before running; plan notes show on the plan",
      async (t) => {
        let restoreTested = true;
        const dropCheck = registerPrecondition(({ action, phase }) =>
          action === "gate_test" && !restoreTested
            ? `no passing restore test within 7 days (checked at ${phase})`
            : undefined
        );
        const dropNote = registerPlanNote(({ target }) => `last proven restore of ${target}: 3 days ago`);
        const dropBroken = registerPlanNote(() => {
          throw new Error("note source down");
        });
        try {
          await withBot(cluster, {}, async (tb) => {
            await t.step(
              "the note is shown on the approval message; a failing note is left out",
              async () => {
                const { id } = await ask(tb, "gate-test h1");
                assert.match(
                  JSON.stringify(tb.approvalMessage(id!)!.blocks),
                  /last proven restore of main: 3 days ago/,
                );
                const notes = (await tb.bot.gate.view(id!))!.request.notes;
                assert.ok(notes.includes("last proven restore of main: 3 days ago"), notes.join("; "));
                assert.ok(!notes.some((n) => n.includes("note source down")));
                assert.ok(tb.logs.some((l) => l.includes("plan note failed")), "the failing note is logged");
              },
            );
            await t.step(
              "a precondition that fails before the run stops it: nothing runs, the message says why",
              async () => {
                const id = tb.lastRequestId();
                restoreTested = false;
                await tb.click(ACTIONS.approve, id, USERS.carol);
                await tb.waitForState(id, "stale");
                assert.match(
                  tb.approvalMessage(id)!.text!,
                  /Not run: no passing restore test within 7 days \(checked at run\)/,
                );
                assert.equal(await runsOf(sql, "h1"), 0);
              },
            );
            await t.step("a failing precondition refuses a new request, audited", async () => {
              const r = await ask(tb, "gate-test h2");
              assert.match(
                r.text,
                /Cannot request gate_test: no passing restore test within 7 days \(checked at request\)/,
              );
              const refused = (await tb.bot.deps.audit.rows()).filter((x) => x.action === "request.refused");
              assert.equal(refused.at(-1)!.details.code, "conflict");
            });
          });
        } finally {
          dropCheck();
          dropNote();
          dropBroken();
        }
      },
    );
  } finally {
    await cluster.stop();
  }
});
