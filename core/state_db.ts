/**
 * The connection to the bot's own state database (`DATABASE_URL`).
 *
 * @module
 */

import postgres, { type Sql } from "postgres";

/** Opens a postgres.js pool for the state database; notices are dropped (migrations emit "already exists"). */
export function connectState(url: string, opts: { max?: number } = {}): Sql {
  return postgres(url, {
    max: opts.max ?? 10,
    idle_timeout: 30,
    connect_timeout: 5,
    onnotice: () => {},
    connection: { application_name: "bisman-ops" },
  });
}

/** True when the state database answers within `timeoutMs`. */
export async function stateReachable(sql: Sql, timeoutMs = 2000): Promise<boolean> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    const timeout = new Promise<false>((resolve) => timer = setTimeout(() => resolve(false), timeoutMs));
    return await Promise.race([sql`select 1`.then(() => true), timeout]);
  } catch {
    return false;
  } finally {
    clearTimeout(timer);
  }
}
