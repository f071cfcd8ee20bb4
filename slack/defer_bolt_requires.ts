/**
 * Keeps `@slack/socket-mode` (and undici, its WebSocket) and `@slack/oauth` (jsonwebtoken) out of a bot that
 * answers over HTTP with one workspace's token.
 *
 * Bolt's App module requires its SocketModeReceiver and HTTPReceiver at load. The first requires
 * `@slack/socket-mode`, which loads undici; both require `@slack/oauth` for the OAuth install flow. That is
 * about 4 MiB of V8 heap, resident for the process's life (bench/load.ts MEMORY_ONLY=1 and README,
 * "Measured"), in a process that constructs neither receiver: the bot's receivers are slack/receiver.ts and
 * slack/socket_mode.ts, and the latter, with its own `@slack/socket-mode` client, is imported only when
 * `SLACK_APP_TOKEN` selects it.
 *
 * So those requires, from those two Bolt modules and nowhere else, return a stand-in whose properties load
 * the real module on first use: the receivers read `SocketModeClient` and `InstallProvider` only inside
 * their constructors. Hooking `Module._load` is how require-in-the-middle (OpenTelemetry's instrumentation)
 * intercepts requires; Deno's Node compatibility layer routes an npm package's `require` through it as
 * Node does.
 *
 * Import this module before `@slack/bolt/dist/App.js` (slack/bolt_app.ts does, first).
 *
 * @module
 */

import Module from "node:module";

type Load = (request: string, parent: { filename?: string } | undefined, isMain: boolean) => unknown;

/** The packages deferred, each only when Bolt's receiver modules require it. */
const DEFERRED = ["@slack/socket-mode", "@slack/oauth"];
const REQUIRER = /[\\/]@slack[\\/]bolt[\\/]dist[\\/]receivers[\\/](SocketModeReceiver|HTTPReceiver)\.js$/;

/** Per package: how many requires were deferred, and whether a stand-in was used (tests read these). */
export const deferral: Record<string, { deferred: number; loaded: boolean }> = Object.fromEntries(
  DEFERRED.map((p) => [p, { deferred: 0, loaded: false }]),
);

const moduleInternals = Module as unknown as { _load: Load; __bismanDeferred?: true };
if (!moduleInternals.__bismanDeferred) {
  moduleInternals.__bismanDeferred = true;
  const load = moduleInternals._load;
  moduleInternals._load = function (request, parent, isMain) {
    if (!DEFERRED.includes(request) || !REQUIRER.test(parent?.filename ?? "")) {
      return load.call(this, request, parent, isMain);
    }
    const seen = deferral[request];
    seen.deferred++;
    let real: object | undefined;
    const target = () => {
      seen.loaded = true;
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
