/**
 * Block Kit for `/bisman restore-test`: the progress message while it runs (phase, objects restored out of
 * the dump's total, elapsed time) and the result (measured RTO, sizes, each verification, the error).
 *
 * @module
 */

import type { Block, Reply } from "./reply.ts";
import type { RestoreProgress, RestoreTestResult } from "../ops/restore_test.ts";
import { humanAge, humanBytes } from "../ops/_findings.ts";
import type { Verification } from "../ops/restore_history.ts";
import {
  capBlocks,
  chunkLines,
  context,
  escapeMrkdwn,
  fieldsSection,
  header,
  mrkdwnSection,
} from "./blocks.ts";

const phaseOrder = ["reading dump", "creating database", "restoring", "verifying", "dropping"] as const;

/** The message shown while a restore test runs. */
export function renderRestoreProgress(p: RestoreProgress): Reply {
  const step = phaseOrder.indexOf(p.phase) + 1;
  const objects = p.objectsTotal !== undefined
    ? `${p.objectsDone} of ${p.objectsTotal} objects restored`
    : "objects: counting";
  const verify = p.phase === "verifying" ? `, ${p.verifyDone} of ${p.verifyTotal} verification queries` : "";
  const text =
    `:hourglass_flowing_sand: Restore test of ${p.target} from ${p.backup}: ${p.phase} (step ${step} of ${phaseOrder.length}), ${objects}${verify}, ${
      humanAge(p.elapsedMs)
    } elapsed`;
  return {
    text,
    blocks: [
      mrkdwnSection(
        `:hourglass_flowing_sand: *Restore test of ${p.target}* from \`${escapeMrkdwn(p.backup)}\`\n` +
          `Phase: *${p.phase}* (step ${step} of ${phaseOrder.length})\n${objects}${verify}\nElapsed: ${
            humanAge(p.elapsedMs)
          }`,
      ),
      context(`\`/bisman cancel restore-test ${p.target}\` stops it and drops its scratch database`),
    ],
    visibility: "ephemeral",
  };
}

function verificationLine(v: Verification): string {
  const mark = v.ok ? ":white_check_mark:" : ":x:";
  const value = v.restored !== undefined ? ` ${v.restored}` : "";
  const cmp = v.source !== undefined
    ? ` (${v.sourceMember} ${v.source}${v.diffPercent !== undefined ? `, ${v.diffPercent}% apart` : ""})`
    : "";
  const why = !v.ok && v.reason ? `: ${v.reason}` : "";
  return `${mark} *${escapeMrkdwn(v.name)}*:${escapeMrkdwn(value)}${escapeMrkdwn(cmp)}${escapeMrkdwn(why)}`;
}

/** The finished test. */
export function renderRestoreResult(r: RestoreTestResult): Reply {
  const title = r.passed
    ? `:white_check_mark: Restore test of ${r.target} passed`
    : r.cancelled
    ? `:octagonal_sign: Restore test of ${r.target} cancelled`
    : `:x: Restore test of ${r.target} failed`;
  const fields = [
    `*Backup*\n\`${escapeMrkdwn(r.backup.name)}\` (${humanBytes(r.backup.size)})`,
    `*Data age when restored*\n${
      r.backup.dataAgeMs !== undefined ? humanAge(r.backup.dataAgeMs) : "unknown"
    }`,
    `*Restore (RTO)*\n${r.restoreMs !== undefined ? humanAge(r.restoreMs) : "did not finish"}`,
    `*Total*\n${humanAge(r.totalMs)}`,
    `*Objects*\n${r.objectsTotal ?? "?"}`,
    `*Restored size*\n${r.restoredBytes !== undefined ? humanBytes(r.restoredBytes) : "n/a"}`,
    `*Restore server*\n${escapeMrkdwn(r.server)}`,
    `*Scratch database*\n\`${r.scratchDatabase}\` ${r.scratchDropped ? "dropped" : "*NOT dropped*"}`,
  ];
  const blocks: Block[] = [
    header(title.replace(/^:[a-z_]+: /, "")),
    mrkdwnSection(`*${title}*${r.id ? ` (run ${r.id})` : ""}`),
  ];
  blocks.push(...fieldsSection(fields));
  if (r.error) {
    blocks.push(
      mrkdwnSection(
        `*${r.cancelled ? "Stopped" : "Failed"} at ${escapeMrkdwn(r.error.step)}*: ${
          escapeMrkdwn(r.error.message)
        }`,
      ),
    );
  }
  if (r.verifications.length) {
    for (const chunk of chunkLines(["*Verification*", ...r.verifications.map(verificationLine)])) {
      blocks.push(mrkdwnSection(chunk));
    }
  }
  for (const n of r.notes) blocks.push(mrkdwnSection(`:warning: ${escapeMrkdwn(n)}`));
  blocks.push(
    context(
      r.passed
        ? "This run is now the last proven restore of the target."
        : "The last proven restore is unchanged.",
    ),
  );

  const text = [
    `${title}${r.id ? ` (run ${r.id})` : ""}`,
    `backup ${r.backup.name} (${humanBytes(r.backup.size)}), data age ${
      r.backup.dataAgeMs !== undefined ? humanAge(r.backup.dataAgeMs) : "unknown"
    }`,
    `restore (RTO) ${r.restoreMs !== undefined ? humanAge(r.restoreMs) : "did not finish"}, total ${
      humanAge(r.totalMs)
    }, ${r.objectsTotal ?? "?"} objects, restored size ${
      r.restoredBytes !== undefined ? humanBytes(r.restoredBytes) : "n/a"
    }`,
    `server ${r.server}, scratch database ${r.scratchDatabase} ${
      r.scratchDropped ? "dropped" : "NOT dropped"
    }`,
    ...(r.error ? [`${r.cancelled ? "stopped" : "failed"} at ${r.error.step}: ${r.error.message}`] : []),
    ...r.verifications.map((v) =>
      `  ${v.ok ? "ok" : "FAILED"} ${v.name}: ${v.restored ?? "-"}${
        v.source !== undefined ? ` vs ${v.sourceMember} ${v.source}` : ""
      }${!v.ok && v.reason ? ` (${v.reason})` : ""}`
    ),
    ...r.notes,
  ].join("\n");
  return { text, blocks: capBlocks(blocks), visibility: "ephemeral" };
}
