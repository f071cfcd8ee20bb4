import assert from "node:assert/strict";
import { own, protoKeys } from "../../core/lookup.ts";
import { ConfigError, parseConfig, policyFor, resolveTargetName } from "../../core/config.ts";
import { buttonsFor } from "../../core/runbook_buttons.ts";
import { Secrets } from "../../core/log.ts";
import { Targets } from "../../core/targets.ts";
import { NotConfigured } from "../../core/errors.ts";
import { memberOf } from "../../alerts/buttons.ts";
import { startCluster } from "../../standins/cluster.ts";
import { waitFor } from "../../standins/wait.ts";
import { OPS_CHANNEL, startTestBot, testConfig, testConfigDoc, USERS } from "../support/bot.ts";

/** Names that are keys of every plain object through its prototype. */
const INHERITED = [
  "__proto__",
  "constructor",
  "hasOwnProperty",
  "toString",
  "valueOf",
  "isPrototypeOf",
  "propertyIsEnumerable",
  "toLocaleString",
  "__defineGetter__",
  "__lookupSetter__",
];

Deno.test("own() answers only a record's own entries", () => {
  const r = { prod: 1, constructor: 2 };
  assert.equal(own(r, "prod"), 1);
  assert.equal(own(r, "constructor"), 2, "an own entry of that name is found");
  for (const n of INHERITED.filter((n) => n !== "constructor")) assert.equal(own(r, n), undefined, n);
  assert.equal(own({}, "constructor"), undefined);
  assert.equal(own(undefined, "x"), undefined);
  assert.deepEqual(protoKeys(JSON.parse('{"a":{"__proto__":{"b":1}},"c":[{"__proto__":1}]}')), [
    "a.__proto__",
    "c.0.__proto__",
  ]);
});

Deno.test("a config with a __proto__ key is refused by name; a target really called constructor works", () => {
  const doc = testConfigDoc({ primary: { port: 5432 } } as never);
  for (
    const [where, patch] of [
      [
        "targets.__proto__",
        (d: any) => (d.targets = JSON.parse(`{"__proto__": ${JSON.stringify(d.targets.main)}}`)),
      ],
      ["policies.__proto__", (d: any) => (d.policies = JSON.parse('{"__proto__": {"approvals": 0}}'))],
      ["alerts.buttons.__proto__", (d: any) => (d.alerts = JSON.parse('{"buttons": {"__proto__": []}}'))],
    ] as const
  ) {
    const d = structuredClone(doc);
    patch(d);
    assert.throws(
      () => parseConfig(d, "x.yaml"),
      (err) => err instanceof ConfigError && err.problems.some((p) => p.startsWith(`${where}:`)),
      where,
    );
  }
  const named = structuredClone(doc);
  named.targets = { constructor: doc.targets.main };
  const c = parseConfig(named, "x.yaml");
  assert.equal(resolveTargetName(c, "constructor"), "constructor");
  assert.equal(new Targets(c, new Secrets()).members("constructor")[0].target, "constructor");
});

Deno.test("every config lookup by name ignores what objects inherit", () => {
  const config = testConfig({ primary: { port: 5432 } } as never, (doc) => {
    doc.policies = { rotate: { approvals: 2 } };
    doc.alerts = { buttons: { MyAlert: ["status"] } };
  });
  const targets = new Targets(config, new Secrets());
  const unknownPolicy = policyFor(config, "no_such_action");
  for (const n of INHERITED) {
    assert.equal(resolveTargetName(config, n), undefined, `target ${n}`);
    assert.throws(() => targets.members(n), NotConfigured, `members(${n})`);
    assert.deepEqual(policyFor(config, n), unknownPolicy, `policy ${n}`);
    assert.deepEqual(buttonsFor(config, n), buttonsFor(config, "NoSuchAlert"), `buttons ${n}`);
    assert.deepEqual(
      memberOf(config, { target: n }),
      memberOf(config, { target: "no_such_target" }),
      `alert label target=${n}`,
    );
  }
});

Deno.test("/bisman subcommands given inherited names answer a plain refusal, never an internal error", async () => {
  await using cluster = await startCluster({ name: "lookup-names" });
  // Role and table names read from the server feed the role-policy lookups of roles/usage/lock-role.
  await cluster.primary.psql(
    `create role "constructor" login; create role "toString"; grant "toString" to "constructor";
     create table "hasOwnProperty"(id int); grant select on "hasOwnProperty" to "constructor", "toString";`,
  );
  const tb = await startTestBot(cluster);
  const commands = (n: string) => [
    `roles main`,
    `usage ${n} main`,
    `status ${n}`,
    `backups ${n}`,
    `lag ${n}`,
    `connections ${n}`,
    `slow-queries ${n}`,
    `creds ${n}`,
    `checklist ${n}`,
    `digest preview ${n}`,
    `restore-test ${n}`,
    `backup now ${n}`,
    `rotate ${n}`,
    `rotate bisman_app ${n}`,
    `promote replica1 ${n}`,
    `reset-stats ${n}`,
    `lock-role ${n}`,
    `unlock-role ${n}`,
    `usage ${n}`,
    `roles ${n}`,
    `tls ${n}`,
    `help ${n}`,
    `run ${n}`,
    n,
  ];
  try {
    for (const n of INHERITED) {
      for (const text of commands(n)) {
        const url = tb.slack.responseUrl({ user: USERS.alice, channel: OPS_CHANNEL });
        const res = await tb.command(text, USERS.alice, { response_url: url });
        assert.equal(res.status, 200, text);
        let answer = JSON.stringify(res.body ?? {});
        if (/Working on/.test(answer)) {
          // A slow answer comes by response_url.
          answer = JSON.stringify(
            (await waitFor(
              () =>
                tb.slack.responses.find((r) =>
                  r.url === url && !/Working on|hourglass/.test(String(r.body.text))
                ),
              { what: `the answer to /bisman ${text}`, timeoutMs: 20_000 },
            )).body,
          );
        }
        assert.doesNotMatch(answer, /Internal error/, `/bisman ${text}: ${answer}`);
      }
    }
    assert.ok(!tb.logs.some((l) => /TypeError/.test(l)), "no TypeError logged");
  } finally {
    await tb.stop();
  }
});
