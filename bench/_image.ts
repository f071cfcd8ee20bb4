/** How the image starts the bot, read from the Dockerfile, so benchmarks start it the same way. */

/** The flags of the Dockerfile's CMD between `deno run` and `main.ts`. */
export async function imageCmdFlags(): Promise<string[]> {
  const dockerfile = await Deno.readTextFile(new URL("../Dockerfile", import.meta.url));
  const cmd = JSON.parse(
    dockerfile.split("\n").filter((l) => l.startsWith("CMD ")).at(-1)!.slice(4),
  ) as string[];
  if (cmd[0] !== "deno" || cmd[1] !== "run" || cmd.at(-1) !== "main.ts") {
    throw new Error(`the Dockerfile's CMD is not "deno run … main.ts": ${cmd.join(" ")}`);
  }
  return cmd.slice(2, -1);
}

/** The glibc malloc settings the Dockerfile sets (`ENV MALLOC_…=…` lines), for the bot's environment. */
export async function imageMallocEnv(): Promise<Record<string, string>> {
  const dockerfile = await Deno.readTextFile(new URL("../Dockerfile", import.meta.url));
  const env: Record<string, string> = {};
  for (const line of dockerfile.split("\n").filter((l) => l.startsWith("ENV MALLOC_"))) {
    for (const [, k, v] of line.slice(4).matchAll(/(MALLOC_\w+)=(\S+)/g)) env[k] = v;
  }
  return env;
}
