/**
 * Block Kit for the security subcommands: `security-events`, `detect`, `usage`, `roles`, `tls`.
 *
 * @module
 */

import type { Block, Reply } from "./reply.ts";
import type { SecurityEventsResult } from "../ops/security_events.ts";
import type { DetectBypassResult } from "../ops/detect_bypass.ts";
import type { ServiceUsageResult } from "../ops/service_usage.ts";
import type { DriftItem, RoleDriftResult } from "../ops/role_drift.ts";
import type { TlsCheckResult } from "../ops/tls_check.ts";
import {
  capBlocks,
  chunkLines,
  context,
  escapeMrkdwn,
  header,
  mrkdwnSection,
  statusMark,
  truncate,
} from "./blocks.ts";

const esc = (s: string) => escapeMrkdwn(s.replace(/`/g, "'"));
const short = (iso: string) => iso.replace("T", " ").replace(/\.\d{3}Z$/, "Z");
const sev = (s: string) =>
  s === "critical" ? ":red_circle:" : s === "warning" ? ":large_yellow_circle:" : ":large_blue_circle:";

function sections(lines: string[], max = 20): Block[] {
  return chunkLines(lines).slice(0, max).map(mrkdwnSection);
}

function reply(text: string[], blocks: Block[]): Reply {
  return { text: truncate(text.join("\n"), 38_000), blocks: capBlocks(blocks), visibility: "ephemeral" };
}

/** `/bisman security-events`. */
export function renderSecurityEvents(r: SecurityEventsResult): Reply {
  const counts = Object.entries(r.byType).map(([k, n]) => `${k} ${n}`).join(", ") || "none";
  const lines = r.events.map((e) => {
    const subject = [e.targetRole && `role ${e.targetRole}`, e.targetAddress && `address ${e.targetAddress}`]
      .filter(Boolean).join(", ");
    const detail = e.eventType === "ddl"
      ? `${e.details.command_tag ?? ""} ${e.details.object_identity ?? ""}`
      : Object.keys(e.details).slice(0, 4).map((k) => `${k}=${truncate(JSON.stringify(e.details[k]), 60)}`)
        .join(" ");
    return `${sev(e.severity)} \`${short(e.occurredAt)}\` *${esc(e.eventType)}*${
      subject ? ` ${esc(subject)}` : ""
    } ` +
      `by ${esc(e.actor ?? e.dbUser)} (${esc(e.source)})${
        detail.trim() ? `: ${esc(truncate(detail.trim(), 200))}` : ""
      }`;
  });
  const blocks: Block[] = [
    header(`Security events: ${r.target}`),
    mrkdwnSection(
      `Since ${short(r.since)} on *${esc(r.member)}*: ${esc(counts)}${
        r.note ? `\n:warning: ${esc(r.note)}` : ""
      }`,
    ),
    ...(lines.length ? sections(lines) : [mrkdwnSection("No security events in this window.")]),
  ];
  if (r.more) blocks.push(context(`${r.more} more event(s); narrow with type= or since=`));
  return reply([
    `security events on ${r.target} since ${r.since}: ${counts}`,
    ...lines.map((l) => l.replace(/[*`]/g, "")),
    ...(r.more ? [`${r.more} more events; narrow the search`] : []),
  ], blocks);
}

/** `/bisman detect`. */
export function renderDetect(r: DetectBypassResult): Reply {
  const blocks: Block[] = [header(`Bypass detection: ${r.target}`)];
  const summary = r.findings.length
    ? `:rotating_light: *${r.findings.length}* finding(s) since ${
      short(r.since)
    } (${r.rowsInWindow} audited write(s) in the window)`
    : `:white_check_mark: No bypass found since ${
      short(r.since)
    } (${r.rowsInWindow} audited write(s) checked)`;
  blocks.push(mrkdwnSection(summary + (r.note ? `\n:warning: ${esc(r.note)}` : "")));
  const text = [`detect on ${r.target} since ${r.since}: ${r.findings.length} finding(s)`];
  for (const [i, f] of r.findings.entries()) {
    text.push(`[${f.severity}] ${f.kind}: ${f.title}`, ...f.evidence.map((e) => `  - ${truncate(e, 300)}`));
    if (f.auditSearch) text.push(`  rows: ${f.auditSearch}`);
    if (f.next) text.push(`  next: ${f.next}`);
    if (i >= 15) continue;
    const body = [
      `${sev(f.severity)} *${esc(f.kind)}*: ${esc(f.title)}`,
      ...f.evidence.slice(0, 6).map((e) => `\u2022 ${esc(truncate(e, 300))}`),
      ...(f.evidence.length > 6 ? [`\u2022 \u2026 ${f.evidence.length - 6} more`] : []),
      ...(f.auditSearch ? [`Rows: \`${esc(f.auditSearch)}\``] : []),
      ...(f.next ? [`Next: \`${esc(f.next)}\``] : []),
    ].join("\n");
    blocks.push(mrkdwnSection(body));
  }
  if (r.findings.length > 15) {
    blocks.push(context(`\u2026 ${r.findings.length - 15} more finding(s): use the CLI`));
  }
  if (r.ownActions?.length) {
    blocks.push(mrkdwnSection(
      `:robot_face: *The bot's own approved actions* (not intrusions)\n${
        r.ownActions.map((a) => `\u2022 ${esc(truncate(a, 300))}`).join("\n")
      }`,
    ));
    text.push(...r.ownActions.map((a) => `own approved action: ${a}`));
  }
  if (r.skipped.length) blocks.push(context(r.skipped.map(esc).join("; ")));
  return reply(text, blocks);
}

/** `/bisman usage`. */
export function renderUsage(r: ServiceUsageResult): Reply {
  const mark = (v: string) =>
    v === "outside_policy"
      ? ":red_circle: used without a policy grant"
      : v === "beyond_policy"
      ? ":large_yellow_circle: granted beyond policy"
      : v === "unused_grant"
      ? ":white_circle: write grant unused"
      : ":large_green_circle: ok";
  const lines = r.tables.map((t) => {
    const used = Object.entries(t.used).map(([a, n]) => `${a} ${n}`).join(", ") || "not written";
    return `*${esc(t.table)}*: ${esc(used)}${t.lastUsed ? ` (last ${short(t.lastUsed)})` : ""}\n` +
      `   policy ${t.policy.join(", ") || "none"}; actual ${t.actual.join(", ") || "none"}; ${
        t.verdicts.map(mark).join(", ")
      }`;
  });
  const blocks: Block[] = [
    header(`Service usage: ${r.service} on ${r.target}`),
    mrkdwnSection(
      `Roles ${r.roles.map((x) => `\`${esc(x)}\``).join(", ")}; writes since ${
        short(r.since)
      } from audit_logs_dml on *${esc(r.member)}*` +
        (r.withoutServiceName
          ? `\n:warning: ${r.withoutServiceName} write(s) by its roles carried no app.service_name`
          : "") +
        (r.note ? `\n:warning: ${esc(r.note)}` : ""),
    ),
    ...(lines.length ? sections(lines) : [mrkdwnSection("No writes and no grants found.")]),
    context("Reads are not audited by the DML trigger: SELECT grants are judged against the policy only."),
  ];
  return reply([
    `usage of ${r.service} (${r.roles.join(", ")}) on ${r.target} since ${r.since}`,
    ...r.tables.map((t) =>
      `  ${t.table}: used ${JSON.stringify(t.used)} policy ${t.policy.join(",") || "-"} actual ${
        t.actual.join(",") || "-"
      } ${t.verdicts.join(",")}`
    ),
  ], blocks);
}

function driftLine(d: DriftItem): string {
  return `${sev(d.severity)} ${esc(d.detail)}${d.fix.length ? `\n   \`${esc(d.fix.join(" "))}\`` : ""}`;
}

/** `/bisman roles`. */
export function renderRoleDrift(r: RoleDriftResult): Reply {
  const blocks: Block[] = [header(`Roles: ${r.target}`)];
  blocks.push(
    mrkdwnSection(
      r.drift.length
        ? `:rotating_light: *${r.drift.length}* drift item(s) against the policy (schema ${
          esc(r.schema)
        }); ` +
          `\`/bisman roles apply ${r.target}\` asks to run the ${r.statements.length} statement(s) below in one transaction`
        : `:white_check_mark: No drift: roles and privileges match the policy (schema ${esc(r.schema)})`,
    ),
  );
  blocks.push(...sections(r.drift.map(driftLine), 25));
  if (r.notes.length) {
    blocks.push(mrkdwnSection(`*Notes* (not changed by roles apply)`));
    blocks.push(...sections(r.notes.map(driftLine), 8));
  }
  blocks.push(context(`Checked ${r.checkedAt}`));
  return reply([
    `roles on ${r.target}: ${r.drift.length} drift item(s), ${r.notes.length} note(s)`,
    ...r.drift.map((d) => `  [${d.severity}] ${d.detail}${d.fix.length ? ` -> ${d.fix.join(" ")}` : ""}`),
    ...r.notes.map((d) => `  note: ${d.detail}`),
  ], blocks);
}

/** `/bisman tls`. */
export function renderTls(r: TlsCheckResult): Reply {
  const lines = r.checks.map((c) =>
    `${statusMark(c.status)} *${esc(c.check)}*: ${esc(c.detail)}` +
    (c.evidence.length ? `\n${c.evidence.slice(0, 8).map((e) => `   \u2022 ${esc(e)}`).join("\n")}` : "")
  );
  const blocks: Block[] = [
    header(`TLS and auditing: ${r.target}`),
    mrkdwnSection(
      r.ok
        ? ":white_check_mark: Configured as the seed says"
        : `:rotating_light: ${r.checks.filter((c) => c.status !== "ok").length} check(s) fail`,
    ),
    ...sections(lines),
  ];
  return reply([
    `tls on ${r.target}: ${r.ok ? "ok" : "problems"}`,
    ...r.checks.map((c) =>
      `  [${c.status}] ${c.check}: ${c.detail}${c.evidence.map((e) => `\n    - ${e}`).join("")}`
    ),
  ], blocks);
}
