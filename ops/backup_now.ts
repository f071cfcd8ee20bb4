/**
 * `backup_now`: an on-demand backup of a target from its configured source: a pgBackRest backup of the
 * given type (`full`, `diff`, `incr`), or `pg_dump -Fc` of the primary's database into the dump folder.
 * The new backup is read live by `/bisman backups`, so it shows there as soon as this finishes.
 *
 * Destructive in the gate's sense (it loads the primary and fills the repository or the backup disk), so
 * it runs only after an approval, with the policy of `policies.backup_now`. A dump is written under a
 * `.partial` name and renamed only after `pg_restore --list` read it, so a half-written file never looks
 * like a backup.
 *
 * @module
 */

import { z } from "zod";
import { join } from "node:path";
import type { BackupsConfig, TargetConfig } from "../core/config.ts";
import { NotConfigured, OpsError, StepFailed } from "../core/errors.ts";
import type { OpDeps, Operation, PlanBase, Reconciled } from "./types.ts";
import { globToRegExp } from "./_dump_folder.ts";
import { humanAge, humanBytes } from "./_findings.ts";
import { libpqEnv, listDump, runTool, toolError } from "./_pg_tools.ts";
import { pgbackrestInfoArgv } from "./_pgbackrest.ts";
import { targetName } from "./_security.ts";
import { recordBackupTime } from "./_runbook_metrics.ts";
import { own } from "../core/lookup.ts";

export const backupNowArgs = z.strictObject({
  target: targetName,
  type: z.enum(["full", "diff", "incr"]).optional(),
  source: z.enum(["pgbackrest", "dump_folder"]).optional(),
});
export type BackupNowArgs = z.infer<typeof backupNowArgs>;

/** What will run. */
export interface BackupNowPlan extends PlanBase {
  target: string;
  source: "pgbackrest" | "dump_folder";
  plannedAt: string;
  /** pgBackRest */
  stanza?: string;
  type?: "full" | "diff" | "incr";
  /** pg_dump */
  folder?: string;
  file?: string;
  database?: string;
  fingerprint: { newestLabel?: string | null; file?: string };
}

/** What a run made. */
export interface BackupNowResult {
  target: string;
  source: "pgbackrest" | "dump_folder";
  /** pgBackRest's backup label, or the dump file's name. */
  label: string;
  type: "full" | "diff" | "incr";
  bytes?: number;
  ms: number;
}

type PgBackRest = NonNullable<BackupsConfig["pgbackrest"]>;

function targetOf(deps: Pick<OpDeps, "config">, target: string): TargetConfig {
  const t = own(deps.config.targets, target);
  if (!t) {
    throw new NotConfigured(
      `Unknown target "${target}": configured targets are ${Object.keys(deps.config.targets).join(", ")}`,
    );
  }
  return t;
}

/** The source an on-demand backup of `target` uses. @throws {NotConfigured} when it has none */
export function backupSource(
  deps: Pick<OpDeps, "config">,
  target: string,
  wanted?: "pgbackrest" | "dump_folder",
): "pgbackrest" | "dump_folder" {
  const b = targetOf(deps, target).backups;
  const source = wanted ?? b?.on_demand.source ?? (b?.pgbackrest ? "pgbackrest" : "dump_folder");
  if (source === "pgbackrest" && !b?.pgbackrest) {
    throw new NotConfigured(`${target} has no backups.pgbackrest: cannot take a pgBackRest backup`);
  }
  if (source === "dump_folder" && !b?.dump_folder) {
    throw new NotConfigured(
      `${target} has no backup source: add targets.${target}.backups.pgbackrest or backups.dump_folder`,
    );
  }
  return source;
}

/** The argv of pgBackRest as the bot runs it (through runuser when it is root and `run_as` is set). */
function pgbackrestArgv(binary: string, cfg: PgBackRest, args: string[]): string[] {
  const argv = [
    binary,
    ...(cfg.config_file ? [`--config=${cfg.config_file}`] : []),
    `--stanza=${cfg.stanza}`,
    ...args,
  ];
  return cfg.run_as && Deno.uid() === 0 ? ["runuser", "-u", cfg.run_as, "--", ...argv] : argv;
}

/** The newest backup of a stanza (label, type, size), from `pgbackrest info`. */
async function newestBackup(
  binary: string,
  cfg: PgBackRest,
  deps: Pick<OpDeps, "secrets">,
): Promise<{ label: string; type: "full" | "diff" | "incr"; size: number; stop: number } | undefined> {
  const info = pgbackrestInfoArgv(binary, cfg);
  const argv = cfg.run_as && Deno.uid() === 0 ? ["runuser", "-u", cfg.run_as, "--", ...info] : info;
  const r = await runTool(argv, { env: libpqEnv(), timeoutMs: 60_000 });
  if (r.code !== 0) {
    throw new StepFailed(
      "pgbackrest info",
      `pgbackrest info failed (exit ${r.code}): ${toolError(r.stderr || r.stdout, deps.secrets)}`,
    );
  }
  const parsed = JSON.parse(r.stdout) as {
    name: string;
    backup?: {
      label: string;
      type: "full" | "diff" | "incr";
      timestamp: { stop: number };
      info: { size: number };
    }[];
  }[];
  const sets = parsed.find((s) => s.name === cfg.stanza)?.backup ?? [];
  const last = [...sets].sort((a, b) => a.timestamp.stop - b.timestamp.stop).at(-1);
  return last
    ? { label: last.label, type: last.type, size: last.info.size, stop: last.timestamp.stop }
    : undefined;
}

/** `<prefix><YYYYMMDD>_<HHMMSS>.dump` at `now` (UTC). */
export function dumpFileName(prefix: string, now: Date): string {
  const s = now.toISOString();
  return `${prefix}${s.slice(0, 10).replaceAll("-", "")}_${s.slice(11, 19).replaceAll(":", "")}.dump`;
}

/** Plans an on-demand backup: reads config (and pgBackRest's newest backup, for reconcile). */
export async function planBackupNow(args: BackupNowArgs, deps: OpDeps): Promise<BackupNowPlan> {
  const t = targetOf(deps, args.target);
  const b = t.backups!;
  const source = backupSource(deps, args.target, args.source);
  const plannedAt = deps.now().toISOString();
  if (source === "pgbackrest") {
    const cfg = b.pgbackrest!;
    const type = args.type ?? b.on_demand.type;
    let newest: Awaited<ReturnType<typeof newestBackup>>;
    try {
      newest = await newestBackup(b.tools.pgbackrest, cfg, deps);
    } catch (err) {
      throw err instanceof OpsError
        ? new OpsError("unreachable", `Cannot plan the backup of ${args.target}: ${err.userMessage}`)
        : err;
    }
    const warnings = type !== "full" && !newest
      ? [`Stanza ${cfg.stanza} has no backup yet: pgBackRest takes a full backup instead of ${type}`]
      : [];
    return {
      summary: `pgBackRest ${type} backup of ${args.target} (stanza ${cfg.stanza})`,
      target: args.target,
      source,
      plannedAt,
      stanza: cfg.stanza,
      type,
      steps: [
        `pgbackrest --stanza=${cfg.stanza} --type=${type} backup${cfg.run_as ? ` (as ${cfg.run_as})` : ""}`,
        `Read pgbackrest info: the new backup shows in /bisman backups ${args.target}`,
      ],
      warnings,
      fingerprint: { newestLabel: newest?.label ?? null },
    };
  }
  if (args.type && args.type !== "full") {
    throw new OpsError(
      "invalid_input",
      `A pg_dump backup is always full: leave out "${args.type}" for ${args.target}`,
    );
  }
  const folder = b.dump_folder!;
  const file = dumpFileName(b.on_demand.dump_prefix, deps.now());
  if (!globToRegExp(folder.pattern).test(file)) {
    throw new NotConfigured(
      `The on-demand dump ${file} would not match targets.${args.target}.backups.dump_folder.pattern ` +
        `(${folder.pattern}), so /bisman backups would not see it: set backups.on_demand.dump_prefix to match`,
    );
  }
  const database = t.primary.database;
  return {
    summary: `pg_dump -Fc of ${args.target}/${database} into ${folder.path}/${file}`,
    target: args.target,
    source,
    plannedAt,
    type: "full",
    folder: folder.path,
    file,
    database,
    steps: [
      `pg_dump -Fc ${database} on ${t.primary.host}:${t.primary.port} into ${file}.partial`,
      `pg_restore --list reads it back`,
      `Rename it to ${file}: it shows in /bisman backups ${args.target}`,
    ],
    fingerprint: { file },
  };
}

async function runPgBackRest(plan: BackupNowPlan, deps: OpDeps): Promise<BackupNowResult> {
  const b = targetOf(deps, plan.target).backups!;
  const cfg = b.pgbackrest!;
  const started = performance.now();
  let label: string | undefined;
  const r = await runTool(
    pgbackrestArgv(b.tools.pgbackrest, cfg, [`--type=${plan.type}`, "--log-level-console=info", "backup"]),
    {
      env: libpqEnv(),
      timeoutMs: b.on_demand.timeout_minutes * 60_000,
      onStdoutLine: (line) => {
        const m = /INFO: (.*)$/.exec(line);
        if (!m) return;
        const l = /new backup label = (\S+)/.exec(m[1]);
        if (l) label = l[1];
        deps.progress?.(`pgBackRest: ${m[1].slice(0, 200)}`);
      },
    },
  );
  if (r.code !== 0) {
    throw new StepFailed(
      "pgbackrest backup",
      r.code === 124
        ? `pgBackRest did not finish within ${b.on_demand.timeout_minutes} min (backups.on_demand.timeout_minutes)`
        : `pgbackrest backup failed (exit ${r.code}): ${toolError(r.stderr || r.stdout, deps.secrets)}`,
    );
  }
  const newest = await newestBackup(b.tools.pgbackrest, cfg, deps);
  if (!newest || (label && newest.label !== label) || newest.label === plan.fingerprint.newestLabel) {
    throw new StepFailed("pgbackrest info", "pgbackrest reported success, but its info shows no new backup");
  }
  return {
    target: plan.target,
    source: "pgbackrest",
    label: newest.label,
    type: newest.type,
    bytes: newest.size,
    ms: Math.round(performance.now() - started),
  };
}

async function runPgDump(plan: BackupNowPlan, deps: OpDeps): Promise<BackupNowResult> {
  const t = targetOf(deps, plan.target);
  const b = t.backups!;
  const final = join(plan.folder!, plan.file!);
  const partial = `${final}.partial`;
  const started = performance.now();
  const password = await deps.targets.password(t.primary, t.vault.kv_mount);
  let tables = 0;
  try {
    const r = await runTool(
      [b.tools.pg_dump, "-Fc", "--verbose", "-f", partial, "-d", plan.database!],
      {
        env: { ...libpqEnv(t.primary, password), PGDATABASE: plan.database! },
        timeoutMs: b.on_demand.timeout_minutes * 60_000,
        onStderrLine: (line) => {
          const m = /^pg_dump: dumping contents of table "?([^"]+)"?/.exec(line);
          if (m) deps.progress?.(`pg_dump: ${++tables} table(s) dumped, now ${m[1].slice(0, 120)}`);
        },
      },
    );
    if (r.code !== 0) {
      throw new StepFailed(
        "pg_dump",
        r.code === 127
          ? `${b.tools.pg_dump} is not installed on the bot's host (set backups.tools.pg_dump)`
          : r.code === 124
          ? `pg_dump did not finish within ${b.on_demand.timeout_minutes} min (backups.on_demand.timeout_minutes)`
          : `pg_dump failed (exit ${r.code}): ${toolError(r.stderr, deps.secrets)}`,
      );
    }
    deps.progress?.("pg_restore --list: reading the dump back");
    const listed = await listDump(b.tools.pg_restore, partial);
    if (!listed.ok) {
      throw new StepFailed(
        "pg_restore --list",
        `the new dump does not read back: ${toolError(listed.result.stderr, deps.secrets)}`,
      );
    }
    await Deno.rename(partial, final);
  } catch (err) {
    await Deno.remove(partial).catch(() => undefined);
    throw err;
  }
  const size = (await Deno.stat(final)).size;
  return {
    target: plan.target,
    source: "dump_folder",
    label: plan.file!,
    type: "full",
    bytes: size,
    ms: Math.round(performance.now() - started),
  };
}

/** After a crash: did the backup land? Never reruns it. */
async function reconcileBackup(plan: BackupNowPlan, deps: OpDeps): Promise<Reconciled<BackupNowResult>> {
  const b = targetOf(deps, plan.target).backups!;
  if (plan.source === "pgbackrest") {
    const newest = await newestBackup(b.tools.pgbackrest, b.pgbackrest!, deps);
    if (
      newest && newest.label !== plan.fingerprint.newestLabel &&
      newest.stop * 1000 >= Date.parse(plan.plannedAt)
    ) {
      return {
        status: "done",
        note: `pgBackRest holds the new backup ${newest.label}`,
        result: {
          target: plan.target,
          source: "pgbackrest",
          label: newest.label,
          type: newest.type,
          bytes: newest.size,
          ms: 0,
        },
      };
    }
    return { status: "not_done", note: `No new pgBackRest backup of ${plan.stanza}: request it again` };
  }
  const final = join(plan.folder!, plan.file!);
  await Deno.remove(`${final}.partial`).catch(() => undefined);
  try {
    const st = await Deno.stat(final);
    return {
      status: "done",
      note: `${plan.file} is in ${plan.folder}`,
      result: {
        target: plan.target,
        source: "dump_folder",
        label: plan.file!,
        type: "full",
        bytes: st.size,
        ms: 0,
      },
    };
  } catch {
    return {
      status: "not_done",
      note: `${plan.file} was not written (a partial file was removed): request it again`,
    };
  }
}

/** The on-demand backup operation. */
export const backupNow: Operation<BackupNowArgs, BackupNowPlan, BackupNowResult> = {
  name: "backup_now",
  destructive: true,
  args: backupNowArgs,
  plan: planBackupNow,
  revalidate: async (plan, deps) => {
    try {
      if (backupSource(deps, plan.target, plan.source) !== plan.source) return "the backup source changed";
      if (plan.source === "dump_folder") {
        const exists = await Deno.stat(join(plan.folder!, plan.file!)).then(() => true, () => false);
        if (exists) return `${plan.file} already exists`;
      }
      return undefined;
    } catch (err) {
      return err instanceof OpsError ? err.userMessage : String(err);
    }
  },
  run: async (plan, deps) => {
    const r = await (plan.source === "pgbackrest" ? runPgBackRest(plan, deps) : runPgDump(plan, deps));
    // The backup just taken is now the newest of its source.
    recordBackupTime(deps.metrics, r.target, r.source, deps.now());
    return r;
  },
  reconcile: reconcileBackup,
  describeResult: (r) =>
    `${
      r.source === "pgbackrest" ? `pgBackRest ${r.type} backup ${r.label}` : `dump ${r.label}`
    } of ${r.target}` +
    `${r.bytes !== undefined ? ` (${humanBytes(r.bytes)})` : ""} in ${humanAge(r.ms)}`,
};
