/**
 * `/bisman audit-log`: the bot's own audit log.
 *
 * - `audit-log [actor=...] [action=...] [target=...] [request=...] [since=...] [until=...] [limit=...]` searches it,
 *   newest first, ephemeral; a result too long for a message comes as a CSV file in a direct message.
 * - `audit-log verify [anchor=<row>:<hash>]` walks the hash chain and names the first row that does not
 *   match (edited, deleted or re-linked); with an anchor (posted daily by the audit_anchor job) it also
 *   proves the log still holds that row with that hash, which is how deleted newest rows show.
 * - `audit-log export [since=...]` sends the rows as JSON lines (each with its hash and its predecessor's); the
 *   CLI writes them to stdout or `--out`, and `deno task ops audit-log verify --file <export>` checks one
 *   offline (core/audit.ts `verifyExport`).
 *
 * @module
 */

import { z } from "zod";
import { validateArgs } from "./args.ts";
import { defineSubcommand, type Reply } from "./types.ts";
import { actorOf } from "../core/access.ts";
import type { AppDeps } from "../core/deps.ts";
import type { Invoker } from "../core/access.ts";
import { InvalidInput } from "../core/errors.ts";
import {
  type Anchor,
  auditRowAt,
  checkAnchor,
  exportAuditRows,
  exportLine,
  parseAnchor,
  searchAuditLog,
  verifyAnchor,
  verifyExport,
} from "../core/audit.ts";
import { parseSince, sinceArg } from "../ops/_security.ts";
import { mrkdwnSection } from "../views/blocks.ts";
import { AUDIT_LOG_ROWS_SHOWN, auditLogCsv, renderAuditLogSearch } from "../views/audit_log.ts";
import type { IntegrityKeys } from "../core/keys.ts";
import { recordAuditVerify } from "../ops/_runbook_metrics.ts";

const USAGE =
  "/bisman audit-log [actor=\u2026] [action=\u2026] [target=\u2026] [request=\u2026] [since=7d] [limit=200] | " +
  "audit-log verify [anchor=<row>:<hash>] | audit-log export [since=\u2026]";

const anchorArg = z.string().max(100).transform((s, ctx) => {
  const a = parseAnchor(s);
  if (!a) {
    ctx.addIssue({
      code: "custom",
      message: "an anchor as <row>:<64 hex digits>, as the anchor message shows it",
    });
    return z.NEVER;
  }
  return a;
});

const schema = z.object({
  positional: z.union([
    z.tuple([]),
    z.tuple([
      z.enum(["verify", "search", "export"], { error: 'the actions are "verify", "search" and "export"' }),
    ]),
  ]),
  named: z.strictObject({
    actor: z.string().regex(/^[A-Za-z0-9_.:@-]{1,80}$/, "a Slack user ID, cli:<login>, scheduler \u2026")
      .optional(),
    action: z.string().regex(
      /^[a-z_.]{1,80}\*?$/,
      "an action such as request.approved, or a prefix such as request.*",
    )
      .optional(),
    target: z.string().regex(/^[a-z_][a-z0-9_]{0,62}$/, "a target name").optional(),
    request: z.string().regex(/^#?[1-9][0-9]{0,9}$/, "a request number").transform((s) =>
      Number(s.replace("#", ""))
    )
      .optional(),
    since: sinceArg.optional(),
    until: sinceArg.optional(),
    limit: z.string().regex(/^\d{1,4}$/, "a number from 1 to 5000").transform(Number)
      .pipe(z.number().int().min(1).max(5000)).optional(),
    anchor: anchorArg.optional(),
    // The CLI's --file and --out arrive as these; only the CLI uses them.
    file: z.string().max(4096).optional(),
    out: z.string().max(4096).optional(),
  }),
  rest: z.string(),
});

type Args = z.infer<typeof schema>;

/** What the subcommand does, parsed. */
export type AuditLogRequest =
  | { kind: "verify"; anchor?: Anchor; file?: string }
  | { kind: "export"; since?: string; out?: string }
  | {
    kind: "search";
    actor?: string;
    action?: string;
    target?: string;
    request?: number;
    since: string;
    until?: string;
    limit: number;
  };

function toRequest(a: Args): AuditLogRequest {
  const action = a.positional[0] ?? "search";
  const n = a.named;
  const onlyFor = (keys: (keyof Args["named"])[], what: string) => {
    for (const k of keys) {
      if (n[k] !== undefined) {
        throw new InvalidInput(`Option ${k}= does not apply to audit-log ${what}. Usage: \`${USAGE}\``);
      }
    }
  };
  if (action === "verify") {
    onlyFor(["actor", "action", "target", "request", "since", "until", "limit", "out"], "verify");
    return { kind: "verify", anchor: n.anchor, file: n.file };
  }
  if (action === "export") {
    onlyFor(["actor", "action", "target", "request", "until", "limit", "anchor", "file"], "export");
    return { kind: "export", since: n.since, out: n.out };
  }
  onlyFor(["anchor", "file", "out"], "search");
  return {
    kind: "search",
    actor: n.actor,
    action: n.action,
    target: n.target,
    request: n.request,
    since: n.since ?? "7d",
    until: n.until,
    limit: n.limit ?? 200,
  };
}

function verdictReply(text: string, ok: boolean): Reply {
  return { text, blocks: [mrkdwnSection(text)], visibility: ok ? "ephemeral" : "in_channel" };
}

async function runVerify(deps: AppDeps, inv: Invoker, anchor?: Anchor): Promise<Reply> {
  const started = performance.now();
  // The check itself is audited, whatever it found.
  const record = (ok: boolean, details: Record<string, unknown>) =>
    deps.audit.append({
      actor: actorOf(inv),
      actorName: inv.userName,
      action: "audit.verified",
      outcome: ok ? "ok" : "broken",
      details,
    });
  if (anchor) {
    const v = await verifyAnchor(deps.audit, deps.state, anchor);
    recordAuditVerify(deps.metrics, v, deps.now());
    const ms = Math.round(performance.now() - started);
    await record(v.ok, {
      checked: v.checked,
      anchor: `${anchor.seq}:${anchor.hash}`,
      ...(v.ok ? {} : { problem: v.problem }),
    });
    return v.ok
      ? verdictReply(
        `:white_check_mark: Audit log holds the anchor: row ${anchor.seq} has hash ${
          anchor.hash.slice(0, 12)
        }\u2026, ` +
          `and the chain to the head (row ${v.head.seq}) is intact; ${v.checked} rows checked in ${ms} ms`,
        true,
      )
      : verdictReply(
        `:rotating_light: Audit log does not hold the anchor row ${anchor.seq}: ${v.problem}. ` +
          "Treat the log as tampered with and find out who changed it (superuser access to the state database).",
        false,
      );
  }
  const v = await deps.audit.verify();
  recordAuditVerify(deps.metrics, v, deps.now());
  const witness = v.ok ? await checkWitness(deps, v.head) : undefined;
  const ms = Math.round(performance.now() - started);
  const ok = v.ok && witness?.ok !== false;
  await record(
    ok,
    v.ok
      ? { checked: v.checked, head: v.head?.seq, unkeyed: v.unkeyed, witness: witness?.detail }
      : { checked: v.checked, seq: v.seq, problem: v.problem },
  );
  const keyNote = v.ok && v.unkeyed
    ? ` ${v.unkeyed} row(s) predate the key: their hashes are plain SHA-256, which a database owner could recompute.`
    : "";
  const text = !v.ok
    ? `:rotating_light: Audit log broken at row ${v.seq}: ${v.problem}. ${v.checked} rows before it are intact. ` +
      "Treat the log from that row on as untrusted and find out who changed it (superuser access to the state database)."
    : witness?.ok === false
    ? `:rotating_light: Audit log fails its witness: ${witness.text}. The chain itself (${v.checked} rows) is ` +
      "intact, so its newest rows were deleted or rewritten: find out who changed it."
    : `:white_check_mark: Audit log intact: ${v.checked} rows checked in ${ms} ms, ${
      v.keyed ? "each MAC with the bot's key" : "hashes only (no BISMAN_SIGNING_KEY here)"
    }` +
      (v.head ? `; head is row ${v.head.seq} (${v.head.hash.slice(0, 12)})` : "") + "." + keyNote + " " +
      (witness
        ? witness.text
        : "No witness is configured (audit_log.witness): only an anchor shows deleted newest rows: `verify anchor=<row>:<hash>`");
  return verdictReply(text, ok);
}

/**
 * Reads the newest anchor back from the witness and checks the log still holds it: the only way the log
 * itself shows that its newest rows were deleted. Undefined when no witness is configured.
 */
async function checkWitness(
  deps: AppDeps,
  head: Anchor | undefined,
): Promise<{ ok: boolean | undefined; text: string; detail: Record<string, unknown> } | undefined> {
  const w = deps.witness;
  if (!w) return undefined;
  let newest;
  try {
    newest = await w.newest();
  } catch (err) {
    const why = err instanceof Error ? err.message.split("\n")[0] : String(err);
    return {
      ok: undefined,
      text: `Could not check the witness (${w.where}): ${why}.`,
      detail: { where: w.where, error: why },
    };
  }
  if (!newest) {
    return { ok: true, text: `The witness (${w.where}) holds no anchor yet.`, detail: { where: w.where } };
  }
  const row = await auditRowAt(deps.state, newest.seq);
  const c = checkAnchor(newest, row, head);
  return c.ok
    ? {
      ok: true,
      text:
        `It holds the newest anchor in the witness (${w.where}): row ${newest.seq}, written ${newest.at}.`,
      detail: { where: w.where, seq: newest.seq },
    }
    : {
      ok: false,
      text: `the newest anchor in ${w.where} (row ${newest.seq}, written ${newest.at}) says: ${c.problem}`,
      detail: { where: w.where, seq: newest.seq, problem: c.problem },
    };
}

/** Searches and answers; a result longer than a message goes as CSV to the asker's direct messages. */
async function runSearch(
  deps: AppDeps,
  inv: Invoker,
  q: Extract<AuditLogRequest, { kind: "search" }>,
): Promise<Reply> {
  const now = deps.now();
  const rows = await searchAuditLog(deps.state, {
    actor: q.actor,
    action: q.action,
    target: q.target,
    requestId: q.request,
    since: parseSince(q.since, now),
    until: q.until ? parseSince(q.until, now) : undefined,
    limit: q.limit,
  });
  const filters = [
    q.actor && `actor=${q.actor}`,
    q.action && `action=${q.action}`,
    q.target && `target=${q.target}`,
    q.request && `request=${q.request}`,
    `since=${q.since}`,
    q.until && `until=${q.until}`,
  ].filter(Boolean).join(" ");
  let file: string | undefined;
  if (rows.length > AUDIT_LOG_ROWS_SHOWN && deps.slack && inv.via === "slack") {
    const name = `bisman-audit-log-${now.toISOString().slice(0, 19).replace(/[-:T]/g, "")}.csv`;
    await deps.slack.sendFile({
      user: inv.userId,
      filename: name,
      title: `bisman-ops audit log: ${rows.length} rows (${filters})`,
      content: auditLogCsv(rows),
      comment: `All ${rows.length} rows of \`/bisman audit-log ${filters}\`, newest first`,
    });
    file = `${name}, sent to you in a direct message`;
  }
  // The CLI has no message limits: it prints every row.
  return renderAuditLogSearch(rows, filters, { limit: q.limit, file, all: inv.via === "cli" });
}

/** JSON lines of the export (the CLI streams them itself; Slack gets them as a file). */
export async function exportText(
  deps: Pick<AppDeps, "state" | "now">,
  since?: string,
): Promise<{ text: string; rows: number }> {
  const parts: string[] = [];
  let rows = 0;
  for await (
    const batch of exportAuditRows(deps.state, { since: since ? parseSince(since, deps.now()) : undefined })
  ) {
    for (const r of batch) parts.push(exportLine(r));
    rows += batch.length;
  }
  return { text: parts.length ? `${parts.join("\n")}\n` : "", rows };
}

export const auditLogCommand = defineSubcommand({
  name: "audit-log",
  summary: "The bot's own audit log: search it, verify its hash chain (and an anchor), export it",
  usage: USAGE,
  examples: [
    "/bisman audit-log actor=U012ABCDEF since=24h",
    "/bisman audit-log action=request.* request=12",
    "/bisman audit-log verify",
    "/bisman audit-log verify anchor=1234:<hash>",
  ],
  access: "operator",
  parse: (args) => toRequest(validateArgs(schema, args, USAGE)),
  run: async (ctx, req) => {
    const { deps, invoker } = ctx;
    if (req.kind === "verify") {
      if (req.file) {
        throw new InvalidInput("file= is for the CLI: `deno task ops audit-log verify --file <export>`");
      }
      return await runVerify(deps, invoker, req.anchor);
    }
    if (req.kind === "export") {
      if (!deps.slack || invoker.via !== "slack") {
        throw new InvalidInput(
          "Export from the CLI: `deno task ops audit-log export [--since 7d] [--out <file>]`",
        );
      }
      const { text, rows } = await exportText(deps, req.since);
      const name = `bisman-audit-log-${deps.now().toISOString().slice(0, 19).replace(/[-:T]/g, "")}.jsonl`;
      await deps.slack.sendFile({
        user: invoker.userId,
        filename: name,
        title: `bisman-ops audit log export: ${rows} rows`,
        content: text,
        comment: "Check it offline with `deno task ops audit-log verify --file " + name + "`",
      });
      await deps.audit.append({
        actor: actorOf(invoker),
        actorName: invoker.userName,
        action: "audit.exported",
        outcome: "ok",
        details: { rows, since: req.since },
      });
      const msg =
        `:page_facing_up: ${rows} audit-log row(s) exported to ${name}, sent to you in a direct message`;
      return { text: msg, blocks: [mrkdwnSection(msg)], visibility: "ephemeral" };
    }
    return await runSearch(deps, invoker, req);
  },
});

/**
 * `deno task ops audit-log verify --file <export> [--anchor <row>:<hash>]`: checks an export offline, with no
 * database or config at all. @returns whether it holds, and the words to print
 */
export async function verifyExportFile(
  path: string,
  anchor?: Anchor,
  keys?: IntegrityKeys,
): Promise<{ ok: boolean; text: string }> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (err) {
    return { ok: false, text: `Cannot read ${path}: ${err instanceof Error ? err.message : err}` };
  }
  const v = verifyExport(text, anchor, keys);
  if (!v.ok) {
    return {
      ok: false,
      text: `Export ${path} does not verify${v.seq ? ` at row ${v.seq}` : ""}${
        v.line ? ` (line ${v.line})` : ""
      }: ${v.problem}`,
    };
  }
  if (!v.rows) return { ok: true, text: `Export ${path} holds no rows` };
  return {
    ok: true,
    text:
      `Export ${path} verifies: rows ${v.first}\u2026${
        v.head!.seq
      } (${v.rows}) form an unbroken chain; head hash ${v.head!.hash}` +
      (anchor ? `; it holds anchor row ${anchor.seq} with its hash, which pins every row up to it` : "") +
      (v.keyed
        ? `; the keyed rows' MACs were checked with the bot's key`
        : `; the keyed rows' MACs were NOT checked (no BISMAN_SIGNING_KEY here): only the linkage was`) +
      (v.unkeyed ? `; ${v.unkeyed} row(s) predate the key and are plain SHA-256` : ""),
  };
}

/**
 * `deno task ops audit-log export [--since ...] [--out <file>]`: JSON lines in chain order, written batch by
 * batch (to `out`, else through `write`). Audited. @returns how many rows it wrote
 */
export async function exportToCli(
  deps: AppDeps,
  inv: Invoker,
  opts: { since?: string; out?: string; write: (chunk: string) => Promise<void> },
): Promise<number> {
  const file = opts.out
    ? await Deno.open(opts.out, { write: true, create: true, truncate: true })
    : undefined;
  const enc = new TextEncoder();
  let rows = 0;
  try {
    for await (
      const batch of exportAuditRows(deps.state, {
        since: opts.since ? parseSince(opts.since, deps.now()) : undefined,
      })
    ) {
      const chunk = batch.map(exportLine).join("\n") + "\n";
      if (file) await file.write(enc.encode(chunk));
      else await opts.write(chunk);
      rows += batch.length;
    }
  } finally {
    file?.close();
  }
  await deps.audit.append({
    actor: actorOf(inv),
    actorName: inv.userName,
    action: "audit.exported",
    outcome: "ok",
    details: { rows, since: opts.since, to: opts.out ? "file" : "stdout" },
  });
  return rows;
}
