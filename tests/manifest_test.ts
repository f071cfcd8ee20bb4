import assert from "node:assert/strict";
import { parse } from "yaml";
import { WebClient } from "@slack/web-api";
import { SLACK_EVENTS_PATH } from "../http/app.ts";

const root = new URL("../", import.meta.url).pathname;

/**
 * The bot scope each Web API method needs (https://docs.slack.dev/reference/methods/<method>, "Scopes").
 * `[]`: no scope (auth.test; views.* only need the trigger of a command or button, which `commands` and
 * interactivity give). A method the bot starts calling must be added here, and its scope to manifest.yaml.
 */
const SCOPES: Record<string, string[]> = {
  "auth.test": [],
  "chat.postMessage": ["chat:write"],
  "chat.update": ["chat:write"],
  "chat.postEphemeral": ["chat:write"],
  "chat.delete": ["chat:write"],
  "chat.getPermalink": [],
  "users.info": ["users:read"],
  "usergroups.users.list": ["usergroups:read"],
  "usergroups.list": ["usergroups:read"],
  "views.open": [],
  "views.update": [],
  "views.push": [],
  "files.uploadV2": ["files:write"],
  "files.upload": ["files:write"],
  "files.getUploadURLExternal": ["files:write"],
  "files.completeUploadExternal": ["files:write"],
  "conversations.info": ["channels:read", "groups:read"],
  "conversations.replies": ["channels:history", "groups:history"],
  "conversations.open": ["im:write", "mpim:write", "channels:manage", "groups:write"],
  "reactions.add": ["reactions:write"],
  "pins.add": ["pins:write"],
};
/** Scopes the manifest needs for something other than a Web API call. */
const NON_METHOD_SCOPES: Record<string, string> = { commands: "the /bisman slash command" };

/** Production source files: everything but tests, benchmarks, the sandbox, tools and dot-folders. */
async function productionSources(dir = root): Promise<string[]> {
  const skip = new Set(["tests", "bench", "sandbox", "tools", "node_modules", "deploy", "docs"]);
  const out: string[] = [];
  for await (const e of Deno.readDir(dir)) {
    if (e.name.startsWith(".") || (dir === root && skip.has(e.name))) continue;
    const p = `${dir}${e.name}`;
    if (e.isDirectory) out.push(...await productionSources(`${p}/`));
    else if (e.name.endsWith(".ts") && !e.name.endsWith("_test.ts")) out.push(p);
  }
  return out.sort();
}

/**
 * Every Slack Web API method the code calls, found as `.<family>.<method>(` and kept only when the
 * production WebClient really has that method (so `users.includes(` on an array is not one).
 */
async function calledMethods(): Promise<Map<string, string[]>> {
  const client = new WebClient("xoxb-unused") as unknown as Record<string, any>;
  const found = new Map<string, string[]>();
  // The family must follow a dot (`client.chat.postMessage(`): a bare `views.push(` is a local array.
  const families = Object.keys(client).filter((k) => client[k] && typeof client[k] === "object");
  const call = new RegExp(
    `(?<=\\.)(${families.join("|")})\\.([a-z][A-Za-z0-9]*)(?:\\.([a-z][A-Za-z0-9]*))?\\s*\\(`,
    "g",
  );
  for (const file of await productionSources()) {
    const text = await Deno.readTextFile(file);
    for (const m of text.matchAll(call)) {
      const [_, family, a, b] = m;
      const ns = client[family];
      if (!ns || typeof ns !== "object") continue;
      let name: string | undefined;
      if (b && typeof ns[a]?.[b] === "function") name = `${family}.${a}.${b}`;
      else if (typeof ns[a] === "function") name = `${family}.${a}`;
      if (!name) continue;
      const where = `${file.slice(root.length)}`;
      found.set(name, [...new Set([...(found.get(name) ?? []), where])]);
    }
    // WebClient's own wrapper of the external upload flow is a method of the client, not of a family.
    if (/\.filesUploadV2\s*\(/.test(text)) {
      const where = `${file.slice(root.length)}`;
      found.set("files.uploadV2", [...new Set([...(found.get("files.uploadV2") ?? []), where])]);
    }
  }
  return found;
}

Deno.test("manifest.yaml grants exactly the scopes of the Web API methods the bot calls, and its command and URLs match the code", async (t) => {
  const manifest = parse(await Deno.readTextFile(`${root}manifest.yaml`));
  const granted = new Set<string>(manifest.oauth_config.scopes.bot);
  const methods = await calledMethods();

  await t.step("the scan finds the calls it must (control)", () => {
    assert.ok(methods.has("chat.postMessage"), [...methods.keys()].join(", "));
    assert.ok(methods.has("usergroups.users.list"));
  });

  await t.step("every called method's scope is granted", () => {
    for (const [method, files] of methods) {
      const scopes = SCOPES[method];
      assert.ok(
        scopes,
        `${method} (called in ${files.join(", ")}) is not in the scope table of this test: add it`,
      );
      // conversations.* need the public or the private variant; at least one must be granted.
      if (scopes.length) {
        assert.ok(
          scopes.some((s) => granted.has(s)),
          `${method} needs ${scopes.join(" or ")} in manifest.yaml (called in ${files.join(", ")})`,
        );
      }
    }
  });

  await t.step("no granted scope is unused", () => {
    const needed = new Set([...methods.keys()].flatMap((m) => SCOPES[m] ?? []));
    for (const s of granted) {
      assert.ok(
        needed.has(s) || NON_METHOD_SCOPES[s],
        `manifest.yaml grants ${s}, which no method the bot calls needs: remove it`,
      );
    }
  });

  await t.step(
    "the slash command is /bisman, registered by the code, and its URLs are the bot's route",
    async () => {
      const commands = manifest.features.slash_commands.map((c: { command: string }) => c.command);
      assert.deepEqual(commands, ["/bisman"]);
      const boltApp = await Deno.readTextFile(`${root}slack/bolt_app.ts`);
      // Registered with Bolt (Socket Mode) and with the HTTP receiver's fast path, under one constant.
      assert.match(boltApp, /const COMMAND = "\/bisman";/);
      assert.match(boltApp, /app\.command\(COMMAND,/);
      assert.match(boltApp, /receiver\.answerCommand\(COMMAND,/);
      for (
        const url of [manifest.features.slash_commands[0].url, manifest.settings.interactivity.request_url]
      ) {
        // The path the HTTP handler sends to the receiver (tests/http/slack_route_test.ts drives it).
        assert.equal(new URL(url).pathname, SLACK_EVENTS_PATH, url);
      }
      assert.equal(manifest.settings.interactivity.is_enabled, true, "approval buttons need interactivity");
      assert.equal(typeof manifest.settings.socket_mode_enabled, "boolean");
    },
  );
});
