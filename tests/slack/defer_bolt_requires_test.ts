import assert from "node:assert/strict";
import Module from "node:module";
// What the bot loads for Slack over HTTP; the deferral comes with it (slack/bolt_app.ts imports it first).
import { createBoltApp } from "../../slack/bolt_app.ts";
import { deferral } from "../../slack/defer_bolt_requires.ts";

/** Files Deno's Node compatibility layer has loaded with require (its Module._cache, as Node's). */
function requiredFiles(): string[] {
  return Object.keys((Module as unknown as { _cache: Record<string, unknown> })._cache);
}

const SOCKET_MODE = /[\\/](undici|@slack[\\/]socket-mode)[\\/]/;
const OAUTH = /[\\/](jsonwebtoken|@slack[\\/]oauth)[\\/]/;

Deno.test("Bolt loads without @slack/socket-mode, undici and @slack/oauth; its receivers still get the real packages", async (t) => {
  assert.equal(typeof createBoltApp, "function");

  await t.step("loading Bolt's App deferred those requires and loaded none of the packages", () => {
    // SocketModeReceiver requires both; HTTPReceiver requires @slack/oauth.
    assert.deepEqual(deferral, {
      "@slack/socket-mode": { deferred: 1, loaded: false },
      "@slack/oauth": { deferred: 2, loaded: false },
    });
    const loaded = requiredFiles();
    assert.ok(loaded.some((f) => /@slack[\\/]bolt[\\/]dist[\\/]App\.js$/.test(f)), "Bolt's App is loaded");
    assert.deepEqual(loaded.filter((f) => SOCKET_MODE.test(f) || OAUTH.test(f)), []);
  });

  await t.step("Bolt's Socket Mode receiver gets the real SocketModeClient on first use", async () => {
    const { default: mod } = await import("@slack/bolt/dist/receivers/SocketModeReceiver.js");
    const SocketModeReceiver = (mod as { default: new (o: object) => { client: object } }).default;
    // Constructing it builds a SocketModeClient (it connects only on start()).
    const receiver = new SocketModeReceiver({ appToken: "xapp-1-test", logLevel: "error" });
    assert.equal(deferral["@slack/socket-mode"].loaded, true);
    assert.equal(receiver.client.constructor.name, "SocketModeClient");
    assert.ok(requiredFiles().some((f) => SOCKET_MODE.test(f)));
  });

  await t.step("Bolt's HTTP receiver with OAuth options gets the real InstallProvider", async () => {
    const { default: mod } = await import("@slack/bolt/dist/receivers/HTTPReceiver.js");
    const HTTPReceiver = (mod as { default: new (o: object) => { installer?: object } }).default;
    const receiver = new HTTPReceiver({
      signingSecret: "s",
      clientId: "1.2",
      clientSecret: "c",
      stateSecret: "st",
      scopes: ["chat:write"],
      logLevel: "error",
    });
    assert.equal(deferral["@slack/oauth"].loaded, true);
    assert.equal(receiver.installer?.constructor.name, "InstallProvider");
  });
});
