/**
 * Keeps `@slack/socket-mode` (and undici, its WebSocket) out of a bot that answers over HTTP.
 *
 * Bolt's App module requires its SocketModeReceiver at load, and that module requires `@slack/socket-mode`,
 * which loads undici: about 4 MiB of V8 heap, resident for the process's life (bench/load.ts MEMORY_ONLY=1
 * and the heap figures in README, "Measured"), in a process that never opens a WebSocket through Bolt. The
 * bot's own Socket Mode client (slack/socket_mode.ts) is imported only when `SLACK_APP_TOKEN` selects it.
 *
 * So this one require, from Bolt's SocketModeReceiver and nowhere else, returns a stand-in whose properties
 * load the real module on first use: Bolt reads `SocketModeClient` only inside `new SocketModeReceiver()`,
 * which the bot never calls (its receivers are slack/receiver.ts and slack/socket_mode.ts). Hooking
 * `Module._load` is how require-in-the-middle (OpenTelemetry's instrumentation) intercepts requires; Deno's
 * Node compatibility layer routes an npm package's `require` through it as Node does.
 *
 * Import this module before `@slack/bolt/dist/App.js` (slack/bolt_app.ts does, first).
 *
 * @module
 */

import Module from "node:module";

type Load = (request: string, parent: { filename?: string } | undefined, isMain: boolean) => unknown;

const DEFERRED = "@slack/socket-mode";
/** Bolt's module whose require is deferred (any Bolt version's dist layout puts it here). */
const REQUIRER = /[\\/]@slack[\\/]bolt[\\/]dist[\\/]receivers[\\/]SocketModeReceiver\.js$/;

/** How many requires were deferred, and whether any stand-in was used (tests read these). */
export const deferral = { deferred: 0, loaded: false };

const moduleInternals = Module as unknown as { _load: Load; __bismanDeferred?: true };
if (!moduleInternals.__bismanDeferred) {
  moduleInternals.__bismanDeferred = true;
  const load = moduleInternals._load;
  moduleInternals._load = function (request, parent, isMain) {
    if (request !== DEFERRED || !REQUIRER.test(parent?.filename ?? "")) {
      return load.call(this, request, parent, isMain);
    }
    deferral.deferred++;
    let real: object | undefined;
    const target = () => {
      deferral.loaded = true;
      return (real ??= load.call(this, request, parent, isMain) as object);
    };
    return new Proxy({}, {
      get: (_, key) => Reflect.get(target(), key),
      has: (_, key) => Reflect.has(target(), key),
      ownKeys: () => Reflect.ownKeys(target()),
      getOwnPropertyDescriptor: (_, key) => {
        const d = Reflect.getOwnPropertyDescriptor(target(), key);
        // A proxy may only report a property configurable when its target has it: the stand-in's is empty.
        return d && { ...d, configurable: true };
      },
    });
  };
}
