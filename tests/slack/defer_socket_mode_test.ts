import assert from "node:assert/strict";
import Module from "node:module";
// What the bot loads for Slack over HTTP; the deferral comes with it (slack/bolt_app.ts imports it first).
import { createBoltApp } from "../../slack/bolt_app.ts";
import { deferral } from "../../slack/defer_socket_mode.ts";

/** Files Deno's Node compatibility layer has loaded with require (its Module._cache, as Node's). */
function requiredFiles(): string[] {
  return Object.keys((Module as unknown as { _cache: Record<string, unknown> })._cache);
}

Deno.test("Bolt loads without @slack/socket-mode and undici; Bolt's Socket Mode receiver still gets the real client", async (t) => {
  assert.equal(typeof createBoltApp, "function");

  await t.step("loading Bolt's App deferred the one require and loaded neither package", () => {
    assert.equal(deferral.deferred, 1, "Bolt's SocketModeReceiver required @slack/socket-mode once");
    assert.equal(deferral.loaded, false);
    const loaded = requiredFiles();
    assert.ok(loaded.some((f) => /@slack[\\/]bolt[\\/]dist[\\/]App\.js$/.test(f)), "Bolt's App is loaded");
    assert.deepEqual(loaded.filter((f) => /[\\/](undici|@slack[\\/]socket-mode)[\\/]/.test(f)), []);
  });

  await t.step("the stand-in loads the real package on first use, for Bolt's own receiver", async () => {
    const { default: receivers } = await import("@slack/bolt/dist/receivers/SocketModeReceiver.js");
    const SocketModeReceiver = (receivers as { default: new (o: object) => { client: object } }).default;
    // Constructing it builds a SocketModeClient (it connects only on start()).
    const receiver = new SocketModeReceiver({ appToken: "xapp-1-test", logLevel: "error" });
    assert.equal(deferral.loaded, true);
    assert.equal(receiver.client.constructor.name, "SocketModeClient");
    assert.ok(requiredFiles().some((f) => /[\\/]@slack[\\/]socket-mode[\\/]/.test(f)));
  });
});
