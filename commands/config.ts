/**
 * `/bisman config check` shows what a reload would change (or, for an invalid file, each bad key);
 * `/bisman config reload` applies the file without a restart (as SIGHUP does). Operators only; a refused
 * reload leaves the running config in force. See core/config_reload.ts.
 *
 * @module
 */

import { z } from "zod";
import { validateArgs } from "./args.ts";
import { defineSubcommand, type Reply } from "./types.ts";
import { actorOf } from "../core/access.ts";
import { type Config, ConfigError } from "../core/config.ts";
import { checkConfigFile, type ConfigChange, type ConfigCheck, reloadConfig } from "../core/config_reload.ts";
import { chunkLines, context, escapeMrkdwn, header, mrkdwnSection, truncate } from "../views/blocks.ts";

const USAGE = "/bisman config check | /bisman config reload";

/** What start-up checks beyond the schema: `schedules` may only name jobs this process has. */
export function scheduleCheck(jobs: string[] | undefined): (config: Config) => void {
  return (config) => {
    if (!jobs) return;
    const unknown = Object.keys(config.schedules).filter((n) => !jobs.includes(n));
    if (unknown.length) {
      throw new ConfigError(
        "config",
        unknown.map((n) => `schedules.${n}: no such job; the jobs are ${[...jobs].sort().join(", ")}`),
      );
    }
  };
}

const takesWords: Record<ConfigChange["takes"], string> = {
  now: "applies at once",
  reconnect: "its connections are reset",
};

/** The answer of a check or a reload. */
export function renderConfigCheck(c: ConfigCheck & { reset?: string[] }, applied: boolean): Reply {
  if (!c.ok) {
    const lines = c.problems.map((p) => `\u2022 ${escapeMrkdwn(p)}`);
    const text = `:no_entry: ${escapeMrkdwn(c.file)} is not valid${
      applied ? ", so it was not loaded: the running config stays in force" : ""
    }:\n${lines.join("\n")}`;
    return {
      text: truncate(text, 38_000),
      blocks: [header("Config refused"), ...chunkLines(text.split("\n")).slice(0, 45).map(mrkdwnSection)],
      visibility: "ephemeral",
    };
  }
  const lines = c.changes.map((x) =>
    `\u2022 \`${escapeMrkdwn(x.key)}\`: ${escapeMrkdwn(x.from)} \u2192 ${escapeMrkdwn(x.to)} (${
      takesWords[x.takes]
    })`
  );
  const head = applied
    ? c.changes.length
      ? `:white_check_mark: Reloaded ${escapeMrkdwn(c.file)}: ${c.changes.length} change(s) in force`
      : `:white_check_mark: Reloaded ${escapeMrkdwn(c.file)}: nothing changed`
    : c.changes.length
    ? `:mag: ${escapeMrkdwn(c.file)} is valid; a reload would change ${c.changes.length} key(s)`
    : `:mag: ${escapeMrkdwn(c.file)} is valid and the same as the running config`;
  const blocks = [
    mrkdwnSection(head),
    ...chunkLines(lines).slice(0, 40).map(mrkdwnSection),
    ...(c.reset?.length ? [context(`Connection pools reset: ${c.reset.join(", ")}`)] : []),
    ...(!applied && c.changes.length ? [context("`/bisman config reload` (or SIGHUP) applies it")] : []),
  ];
  const reset = c.reset?.length ? [`Connection pools reset: ${c.reset.join(", ")}`] : [];
  return { text: truncate([head, ...lines, ...reset].join("\n"), 38_000), blocks, visibility: "ephemeral" };
}

/** `check|reload` (built once at load: zod compiles every schema it builds, too dear per request). */
const configArgs = z.object({
  positional: z.tuple([z.enum(["check", "reload"], { error: 'say "check" or "reload"' })]),
  named: z.strictObject({}),
});

export const configCommand = defineSubcommand({
  name: "config",
  summary: "Check the config file (what a reload would change) or reload it without a restart",
  usage: USAGE,
  examples: ["/bisman config check", "/bisman config reload"],
  access: "operator",
  parse: (args) => validateArgs(configArgs, args, USAGE).positional[0],
  run: async (ctx, action) => {
    const { deps, invoker } = ctx;
    const extra = scheduleCheck(deps.jobs?.schedules().map((j) => j.name));
    if (action === "check") return renderConfigCheck(await checkConfigFile(deps, extra), false);
    const r = await reloadConfig(deps, { actor: actorOf(invoker), actorName: invoker.userName }, extra);
    return renderConfigCheck(r, true);
  },
});
