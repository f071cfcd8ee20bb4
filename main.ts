/**
 * bisman-ops: the composition root. Everything is built in bot.ts; this file only starts it and turns
 * start-up errors into a clear message and exit code.
 *
 * @module
 */

import { startBot } from "./bot.ts";
import { ConfigError } from "./core/config.ts";
import { EnvError } from "./core/env.ts";

if (import.meta.main) {
  try {
    const bot = await startBot();
    const shutdown = async () => {
      await bot.stop();
      Deno.exit(0);
    };
    Deno.addSignalListener("SIGTERM", shutdown);
    Deno.addSignalListener("SIGINT", shutdown);
  } catch (err) {
    if (err instanceof ConfigError || err instanceof EnvError) {
      console.error(err.message);
      Deno.exit(2);
    }
    console.error(`bisman-ops could not start: ${err instanceof Error ? err.message : err}`);
    Deno.exit(1);
  }
}
