/**
 * `/bisman backups [target]` (read-only): every configured backup source of the target (or of every
 * target), judged ok / warning / critical against its policy, and the last proven restore.
 *
 * @module
 */

import { optionalTargetOnly, validateArgs } from "./args.ts";
import { defineSubcommand } from "./types.ts";
import { InvalidInput } from "../core/errors.ts";
import { readBackupStatus } from "../ops/backup_status.ts";
import { renderBackups } from "../views/backups.ts";
import { own } from "../core/lookup.ts";

const usage = "/bisman backups [target]";

export const backupsCommand = defineSubcommand({
  name: "backups",
  summary:
    "Are the backups there, fresh and restorable: dump folder, pgBackRest, WAL archiving, last proven restore",
  usage,
  examples: ["/bisman backups", "/bisman backups prod"],
  access: "anyone",
  parse: (args, deps) => {
    const a = validateArgs(optionalTargetOnly, args, usage);
    const t = a.positional[0];
    if (t && !own(deps.config.targets, t)) {
      throw new InvalidInput(
        `Unknown target "${t}": configured targets are ${Object.keys(deps.config.targets).join(", ")}`,
      );
    }
    if (t) return { targets: [t] };
    const all = Object.keys(deps.config.targets);
    const withBackups = all.filter((n) =>
      own(deps.config.targets, n)!.backups || own(deps.config.targets, n)!.restore_test
    );
    return { targets: withBackups.length ? withBackups : all };
  },
  run: async (ctx, args) => {
    const reports = await Promise.all(args.targets.map((t) => readBackupStatus(t, ctx.deps)));
    return renderBackups(reports, ctx.deps.now());
  },
});
