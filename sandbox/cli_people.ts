/**
 * The break-glass CLI's people in the sandbox: alice, bob and carol (access.cli_operators maps them to their
 * Slack users) and dave, the outsider, who may log in but is in no list, so the bot refuses him. Each gets
 * their own login role on the state database, a member of `bisman_cli` (the bot's migration created it),
 * with a fresh password every start, and an env file for `deno task ops --env-file .data/cli-<person>.env`.
 * The files hold that person's password only (mode 0600), never the bot's DATABASE_URL, and are removed
 * when the sandbox stops.
 *
 * @module
 */

import { generatePassword } from "../standins/vault.ts";
import type { PersistentCluster } from "../standins/cluster.ts";
import { STATE_DB } from "./seed.ts";

/** Logins with a CLI role in the sandbox: the console's people. */
export const CLI_PEOPLE = ["alice", "bob", "carol", "dave"] as const;

/** The env file of one person. */
export function cliEnvFile(dataDir: string, person: string): string {
  return `${dataDir}/cli-${person}.env`;
}

/**
 * Creates (or re-keys) each person's login role and writes their env file.
 * @returns the files written, to remove on stop
 */
export async function setUpCliPeople(
  cluster: Pick<PersistentCluster, "primary">,
  dataDir: string,
): Promise<string[]> {
  const passwords = new Map<string, string>();
  const statements: string[] = [];
  for (const person of CLI_PEOPLE) {
    const pw = generatePassword();
    if (!/^[A-Za-z0-9-]+$/.test(pw)) throw new Error("unexpected character in a generated password");
    passwords.set(person, pw);
    statements.push(
      `do $$ begin
         if not exists (select 1 from pg_roles where rolname = '${person}') then create role ${person}; end if;
       end $$;`,
      `alter role ${person} login password '${pw}';`,
      `grant bisman_cli to ${person};`,
    );
  }
  await cluster.primary.psql(statements.join("\n"), STATE_DB);
  const files: string[] = [];
  for (const [person, pw] of passwords) {
    const url = cluster.primary.url({ database: STATE_DB, user: person, password: pw });
    const file = cliEnvFile(dataDir, person);
    await Deno.writeTextFile(
      file,
      `# ${person}'s own login on the sandbox's state database, for \`deno task ops --env-file ${file}\`.\n` +
        `# Written by deno task dev (sandbox/cli_people.ts) with a new password each start; removed on stop.\n` +
        `BISMAN_CLI_DATABASE_URL=${JSON.stringify(`${url}?sslmode=disable`)}\n`,
      { mode: 0o600 },
    );
    files.push(file);
  }
  return files;
}
