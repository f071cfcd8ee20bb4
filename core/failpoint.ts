/**
 * Fault points: the one test hook inside the bot. When `BISMAN_FAILPOINT` names a point, reaching it logs
 * a line and then waits forever, so a test can SIGKILL the process at exactly that step (between
 * `ALTER ROLE` and `COMMIT`, say). Inert unless the variable is set.
 *
 * @module
 */

const armed = Deno.env.get("BISMAN_FAILPOINT");

/** Marks a step; hangs there when `BISMAN_FAILPOINT` equals `name`. */
export async function failpoint(name: string): Promise<void> {
  if (!armed || armed !== name) return;
  // A fixed marker on stderr that tests wait for before they kill the process.
  console.error(JSON.stringify({ level: "warn", msg: "failpoint reached", failpoint: name }));
  await new Promise(() => {});
}
