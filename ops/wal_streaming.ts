/**
 * "WAL streaming, continuous, 7 days, pg_receivewal" (runbook section 5): a `pg_receivewal` client streams the
 * primary's WAL through a replication slot into a directory kept 7 days.
 *
 * From the primary (the bot's role needs pg_monitor to see the LSN columns of another role's walsender):
 * `pg_stat_replication` has a walsender for the configured `application_name` (pg_receivewal's default is
 * its program name), streaming, using the configured slot (`pg_replication_slots.active_pid` is that
 * walsender); how far behind the client's confirmed write position is (it reports every `--status-interval`,
 * 10 s by default); how long since its last report; the slot's `wal_status`.
 *
 * From the directory, where `wal_streaming.directory` mounts it on the bot's host: the newest segment (the
 * `.partial` one being written) is the primary's current WAL file, or was written recently; the oldest
 * completed segment reaches back `retention_days` (the seed: 7); no segment is missing in between.
 * File times are modification times: pg_receivewal writes a segment and renames it when it is complete.
 *
 * @module
 */

import type { WalStreamingConfig } from "../core/config_evidence.ts";
import { OpsError } from "../core/errors.ts";
import type { OpDeps } from "./types.ts";
import { targetFailure } from "./_pg_errors.ts";
import {
  type EvidenceFinding,
  type EvidenceReport,
  failureText,
  notConfigured,
  settle,
} from "./_evidence.ts";
import { humanAge, humanBytes, judgeAge } from "./_findings.ts";

/** The primary's view of the receiver and its slot. */
export interface StreamView {
  inRecovery: boolean;
  currentLsn: string | null;
  currentFile: string | null;
  segmentSize: number;
  sender: {
    pid: number;
    state: string;
    clientAddr: string | null;
    writeLsn: string | null;
    /** WAL written on the primary that the client has not confirmed writing; null without pg_monitor. */
    writeBehind: number | null;
    /** Seconds since the client's last status report. */
    replyAgeSeconds: number | null;
    /** The slot this walsender streams through, if any. */
    slot: string | null;
  }[];
  slot: {
    type: string;
    active: boolean;
    walStatus: string | null;
    /** WAL the slot holds back on the primary. */
    retainedBytes: number | null;
  } | null;
}

/** One file of the directory. */
export interface SegmentFile {
  name: string;
  timeline: number;
  /** The segment's number on the WAL stream (timeline aside). */
  segno: number;
  partial: boolean;
  modified: Date;
}

async function readStream(target: string, cfg: WalStreamingConfig, deps: OpDeps): Promise<StreamView> {
  const m = deps.targets.member(target, "primary");
  try {
    const sql = await deps.targets.pool(target, "primary");
    // pg_current_wal_lsn() and pg_walfile_name() refuse to run during recovery: the CASE keeps them out.
    const [cur] = await sql<
      { in_recovery: boolean; lsn: string | null; file: string | null; seg: string }[]
    >`
      select pg_is_in_recovery() as in_recovery,
             case when pg_is_in_recovery() then null else pg_current_wal_lsn()::text end as lsn,
             case when pg_is_in_recovery() then null else pg_walfile_name(pg_current_wal_lsn()) end as file,
             (select setting from pg_settings where name = 'wal_segment_size') as seg`;
    const senders = await sql<
      {
        pid: number;
        state: string;
        client_addr: string | null;
        write_lsn: string | null;
        write_behind: string | null;
        reply_age: number | null;
        slot_name: string | null;
      }[]
    >`
      select r.pid, r.state, host(r.client_addr) as client_addr, r.write_lsn::text,
             case when pg_is_in_recovery() or r.write_lsn is null then null
                  else pg_wal_lsn_diff(pg_current_wal_lsn(), r.write_lsn)::bigint::text end as write_behind,
             extract(epoch from clock_timestamp() - r.reply_time)::float8 as reply_age,
             s.slot_name::text
        from pg_stat_replication r
        left join pg_replication_slots s on s.active_pid = r.pid
       where r.application_name = ${cfg.application_name}
       order by r.backend_start`;
    const [slot] = await sql<
      { slot_type: string; active: boolean; wal_status: string | null; retained: string | null }[]
    >`
      select slot_type, active, wal_status,
             case when pg_is_in_recovery() or restart_lsn is null then null
                  else pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::bigint::text end as retained
        from pg_replication_slots where slot_name = ${cfg.slot}`;
    return {
      inRecovery: cur.in_recovery,
      currentLsn: cur.lsn,
      currentFile: cur.file,
      segmentSize: Number(cur.seg),
      sender: senders.map((s) => ({
        pid: s.pid,
        state: s.state,
        clientAddr: s.client_addr,
        writeLsn: s.write_lsn,
        writeBehind: s.write_behind === null ? null : Number(s.write_behind),
        replyAgeSeconds: s.reply_age,
        slot: s.slot_name,
      })),
      slot: slot
        ? {
          type: slot.slot_type,
          active: slot.active,
          walStatus: slot.wal_status,
          retainedBytes: slot.retained === null ? null : Number(slot.retained),
        }
        : null,
    };
  } catch (err) {
    throw targetFailure(m, err, "read pg_stat_replication and pg_replication_slots");
  }
}

const SEGMENT = /^([0-9A-F]{8})([0-9A-F]{8})([0-9A-F]{8})(\.gz|\.lz4|\.zst)?(\.partial)?$/;

/**
 * A WAL file's timeline and segment number from its name, or undefined for any other file.
 * @example parseSegmentName("000000010000000000000003.partial", 16 * 1024 * 1024) // { timeline: 1, segno: 3, partial: true }
 */
export function parseSegmentName(
  name: string,
  segmentSize: number,
): { timeline: number; segno: number; partial: boolean } | undefined {
  const m = SEGMENT.exec(name);
  if (!m) return undefined;
  const perId = 0x1_0000_0000 / segmentSize;
  return {
    timeline: parseInt(m[1], 16),
    segno: parseInt(m[2], 16) * perId + parseInt(m[3], 16),
    partial: !!m[5],
  };
}

/** The segment files of `dir`. @throws {OpsError} `unreachable` when the folder cannot be read */
export async function listSegments(dir: string, segmentSize: number): Promise<SegmentFile[]> {
  const out: SegmentFile[] = [];
  try {
    for await (const e of Deno.readDir(dir)) {
      if (!e.isFile) continue;
      const p = parseSegmentName(e.name, segmentSize);
      if (!p) continue;
      const st = await Deno.stat(`${dir}/${e.name}`);
      out.push({ name: e.name, ...p, modified: st.mtime ?? new Date(0) });
    }
  } catch (err) {
    const why = err instanceof Deno.errors.NotFound
      ? "not found: is it mounted on the bot's host?"
      : err instanceof Deno.errors.PermissionDenied
      ? "permission denied: the bot's user cannot read it"
      : failureText(err);
    throw new OpsError("unreachable", `the WAL directory ${dir}: ${why}`, { cause: err });
  }
  return out.sort((a, b) =>
    a.segno - b.segno || a.timeline - b.timeline || Number(a.partial) - Number(b.partial)
  );
}

function judgeStream(v: StreamView, cfg: WalStreamingConfig): EvidenceFinding[] {
  const out: EvidenceFinding[] = [];
  const app = `application_name ${cfg.application_name}`;
  if (v.inRecovery) {
    return [{
      severity: "critical",
      check: "stream",
      reason: "the configured primary is in recovery (a standby)",
    }];
  }
  const slotText = v.slot
    ? `slot ${cfg.slot} is ${v.slot.active ? "active" : "inactive"}${
      v.slot.retainedBytes !== null ? ` and holds ${humanBytes(v.slot.retainedBytes)} of WAL` : ""
    }`
    : `there is no replication slot ${cfg.slot}`;
  if (!v.sender.length) {
    out.push({
      severity: "critical",
      check: "stream",
      reason: `no client with ${app} streams from the primary (pg_stat_replication); ${slotText}`,
    });
  } else {
    const s = v.sender.find((x) => x.slot === cfg.slot) ?? v.sender[0];
    const who = `${app} (pid ${s.pid}${s.clientAddr ? ` from ${s.clientAddr}` : ""})`;
    if (s.state !== "streaming") {
      out.push({ severity: "warning", check: "stream", reason: `${who} is ${s.state}, not streaming` });
    }
    if (s.slot !== cfg.slot) {
      out.push({
        severity: "critical",
        check: "slot",
        reason: `${who} streams ${
          s.slot ? `through slot ${s.slot}` : "without a replication slot"
        }, not ${cfg.slot}: the primary may remove WAL it has not received; ${slotText}`,
      });
    }
    if (s.writeBehind === null) {
      out.push({
        severity: "warning",
        check: "lag",
        reason: `${who}: its write position is hidden (the bot's role needs pg_monitor)`,
      });
    } else {
      const sev = s.writeBehind >= cfg.lag_bytes_critical
        ? "critical"
        : s.writeBehind >= cfg.lag_bytes_warning
        ? "warning"
        : "ok";
      const reply = s.replyAgeSeconds === null
        ? ""
        : `, last report ${humanAge(s.replyAgeSeconds * 1000)} ago`;
      out.push({
        severity: sev,
        check: "lag",
        reason:
          `${who} has written up to ${s.writeLsn}, ${humanBytes(s.writeBehind)} behind the primary${reply}` +
          (sev === "ok" ? "" : ` (limit ${humanBytes(cfg.lag_bytes_warning)})`),
      });
    }
    if (s.replyAgeSeconds !== null && s.replyAgeSeconds > 60) {
      out.push({
        severity: "warning",
        check: "lag",
        reason: `${who} has not reported its position for ${humanAge(s.replyAgeSeconds * 1000)}`,
      });
    }
  }
  if (v.slot) {
    if (v.slot.type !== "physical") {
      out.push({
        severity: "critical",
        check: "slot",
        reason: `slot ${cfg.slot} is ${v.slot.type}, not physical`,
      });
    }
    if (v.slot.walStatus === "lost") {
      out.push({
        severity: "critical",
        check: "slot",
        reason: `slot ${cfg.slot}: WAL it needed was removed (wal_status lost): the stream has a hole`,
      });
    } else if (v.slot.walStatus === "unreserved") {
      out.push({
        severity: "warning",
        check: "slot",
        reason: `slot ${cfg.slot}: WAL it needs is past max_slot_wal_keep_size (wal_status unreserved)`,
      });
    }
  } else if (v.sender.length) {
    out.push({ severity: "critical", check: "slot", reason: slotText });
  }
  if (!out.some((f) => f.check === "slot") && v.sender.length) {
    out.push({ severity: "ok", check: "slot", reason: `streams through ${slotText}` });
  }
  return out;
}

const DAY = 86_400_000;

/**
 * Judges the files of pg_receivewal's directory against the primary's current WAL file and the retention.
 * @param currentFile `pg_walfile_name(pg_current_wal_lsn())`, or null when it could not be read
 */
export function judgeDirectory(
  dir: string,
  files: SegmentFile[],
  currentFile: string | null,
  segmentSize: number,
  cfg: WalStreamingConfig,
  now: Date,
): EvidenceFinding[] {
  if (!files.length) {
    return [{ severity: "critical", check: "directory", reason: `${dir} holds no WAL segment` }];
  }
  const out: EvidenceFinding[] = [];
  const newest = files[files.length - 1];
  const age = now.getTime() - newest.modified.getTime();
  const cur = currentFile ? parseSegmentName(currentFile, segmentSize) : undefined;
  const behind = cur ? cur.segno - newest.segno : undefined;
  const newestText = `newest segment ${newest.name}, written ${humanAge(age)} ago`;
  if (behind === undefined) {
    out.push({
      severity: judgeAge(age / 60_000, cfg.newest_max_age_minutes),
      check: "newest",
      reason: newestText,
    });
  } else if (behind <= 0) {
    out.push({ severity: "ok", check: "newest", reason: `${newestText}: the primary's current WAL file` });
  } else {
    const sev = judgeAge(age / 60_000, cfg.newest_max_age_minutes);
    out.push({
      severity: sev,
      check: "newest",
      reason: `${newestText}; the primary writes ${currentFile}, ${behind} segment(s) further` +
        (sev === "ok" ? "" : ` (limit ${cfg.newest_max_age_minutes} min)`),
    });
  }
  const complete = files.filter((f) => !f.partial);
  const oldest = complete[0] ?? files[0];
  const reach = (now.getTime() - oldest.modified.getTime()) / DAY;
  const reachText = `oldest segment ${oldest.name}, ${
    humanAge(now.getTime() - oldest.modified.getTime())
  } old`;
  if (reach < cfg.retention_days) {
    out.push({
      severity: "warning",
      check: "retention",
      reason:
        `${reachText}: the directory reaches back less than the ${cfg.retention_days} days the seed keeps`,
    });
  } else {
    out.push({
      severity: "ok",
      check: "retention",
      reason:
        `${reachText} (the seed keeps ${cfg.retention_days} days); ${complete.length} complete segment(s)`,
    });
  }
  const present = new Set(files.map((f) => f.segno));
  const missing: number[] = [];
  for (let n = oldest.segno; n <= newest.segno && missing.length <= 1000; n++) {
    if (!present.has(n)) missing.push(n);
  }
  if (missing.length) {
    const name = (segno: number) => {
      const perId = 0x1_0000_0000 / segmentSize;
      const hex = (x: number) => x.toString(16).toUpperCase().padStart(8, "0");
      return `${hex(newest.timeline)}${hex(Math.floor(segno / perId))}${hex(segno % perId)}`;
    };
    out.push({
      severity: "critical",
      check: "continuity",
      reason: `${missing.length} segment(s) missing between ${oldest.name} and ${newest.name} (first: ${
        name(missing[0])
      }): no point-in-time recovery across the gap`,
    });
  }
  return out;
}

/**
 * The WAL-streaming evidence of `target`.
 * @throws {NotConfigured} for an unknown target
 */
export async function readWalStreaming(target: string, deps: OpDeps): Promise<EvidenceReport> {
  deps.targets.members(target);
  const cfg = deps.config.targets[target].wal_streaming;
  const source = "the primary's pg_stat_replication and pg_replication_slots";
  if (!cfg) return notConfigured(target, source, "wal_streaming");
  const stream = await settle(readStream(target, cfg, deps));
  const findings: EvidenceFinding[] = [];
  const unchecked: string[] = [];
  if (stream.ok) findings.push(...judgeStream(stream.value, cfg));
  else unchecked.push(`stream: ${deps.secrets.scrub(failureText(stream.error))}`);
  if (cfg.directory) {
    // Without the primary, the segment size is PostgreSQL's default; the current file is unknown.
    const segSize = stream.ok ? stream.value.segmentSize : 16 * 1024 * 1024;
    const files = await settle(listSegments(cfg.directory, segSize));
    if (files.ok) {
      findings.push(
        ...judgeDirectory(
          cfg.directory,
          files.value,
          stream.ok ? stream.value.currentFile : null,
          segSize,
          cfg,
          deps.now(),
        ),
      );
    } else unchecked.push(`directory: ${failureText(files.error)}`);
  }
  return {
    target,
    source: cfg.directory ? `${source}, and ${cfg.directory}` : source,
    findings,
    unchecked,
  };
}
