/**
 * "Centralized logging" (runbook section 4): Fluent Bit tails `/var/log/postgresql/*.log` into the
 * `postgres-logs` index. Two halves, each from the system that holds it:
 *
 * - each server's settings that the tail input depends on (`pg_settings`): `logging_collector = on` (else the
 *   server writes no log files of its own), `log_directory` the folder Fluent Bit reads, `log_destination`
 *   including `stderr` (csvlog and jsonlog files end in .csv/.json, which `*.log` does not match),
 *   `log_filename` ending in that suffix, and `log_line_prefix` carrying the escapes the pipeline parses;
 * - where `central_logging.search` names an Elasticsearch/OpenSearch cluster, that lines from each server
 *   arrived in the index within the window (`_count` with a range query on the time field and the server's
 *   value of the server field).
 *
 * Reading other roles' file locations needs `pg_read_all_settings` (part of pg_monitor, which the bot's role
 * has); the search user needs `read` on the index. The password or API key is registered as a secret and
 * never appears in a report.
 *
 * @module
 */

import type { CentralLoggingConfig, LogSearchConfig } from "../core/config_evidence.ts";
import { OpsError } from "../core/errors.ts";
import type { TargetMember } from "../core/targets.ts";
import type { OpDeps } from "./types.ts";
import { targetFailure } from "./_pg_errors.ts";
import {
  type EvidenceFinding,
  type EvidenceReport,
  failureText,
  notConfigured,
  settle,
} from "./_evidence.ts";

/** The settings read from one server. */
export interface LogSettings {
  logging_collector?: string;
  log_directory?: string;
  log_destination?: string;
  log_filename?: string;
  log_line_prefix?: string;
  data_directory?: string;
}

const SETTINGS = [
  "logging_collector",
  "log_directory",
  "log_destination",
  "log_filename",
  "log_line_prefix",
  "data_directory",
] as const;

async function readSettings(m: TargetMember, deps: OpDeps): Promise<LogSettings> {
  try {
    const sql = await deps.targets.pool(m.target, m.name);
    const rows = await sql<{ name: string; setting: string }[]>`
      select name, setting from pg_settings where name = any(${SETTINGS as unknown as string[]})`;
    return Object.fromEntries(rows.map((r) => [r.name, r.setting]));
  } catch (err) {
    throw targetFailure(m, err, "read the logging settings");
  }
}

function normalize(path: string): string {
  return path.replace(/\/+$/, "").replace(/\/+/g, "/") || "/";
}

/**
 * Judges one server's logging settings against what the Fluent Bit input reads.
 * @example
 * judgeLogSettings("primary", { logging_collector: "off", ... }, cfg); // critical: logging_collector is off ...
 */
export function judgeLogSettings(
  member: string,
  s: LogSettings,
  cfg: CentralLoggingConfig,
): EvidenceFinding[] {
  const out: EvidenceFinding[] = [];
  const bad = (severity: "warning" | "critical", reason: string) =>
    out.push({ severity, check: member, reason });
  const hidden = SETTINGS.filter((k) => k !== "data_directory" && s[k] === undefined);
  if (hidden.length) {
    bad(
      "critical",
      `cannot read ${hidden.join(", ")}: the bot's role needs pg_read_all_settings (part of pg_monitor)`,
    );
    return out;
  }
  const expected = normalize(cfg.log_directories[member] ?? cfg.log_directory);
  const glob = `${expected}/*${cfg.file_suffix}`;
  if (s.logging_collector !== "on") {
    bad(
      "critical",
      `logging_collector is ${s.logging_collector}: the server writes no log files of its own for Fluent Bit ` +
        `to tail at ${glob} (set logging_collector = on; it needs a restart)`,
    );
  }
  const raw = s.log_directory!;
  const dir = raw.startsWith("/")
    ? normalize(raw)
    : s.data_directory
    ? normalize(`${s.data_directory}/${raw}`)
    : undefined;
  if (dir === undefined) {
    bad("critical", `log_directory is "${raw}", relative to a data_directory the bot cannot read`);
  } else if (dir !== expected) {
    bad("critical", `log_directory is ${dir}; Fluent Bit reads ${glob}`);
  }
  const destinations = s.log_destination!.split(",").map((d) => d.trim());
  if (!destinations.includes("stderr")) {
    bad(
      "critical",
      `log_destination is "${s.log_destination}": only stderr writes plain-text .log files (csvlog and ` +
        `jsonlog files end in .csv and .json)`,
    );
  }
  if (!s.log_filename!.endsWith(cfg.file_suffix)) {
    bad("critical", `log_filename "${s.log_filename}" does not end in ${cfg.file_suffix}: ${glob} misses it`);
  }
  const missing = cfg.log_line_prefix_fields.filter((f) => !s.log_line_prefix!.includes(f));
  if (missing.length) {
    bad(
      "warning",
      `log_line_prefix "${s.log_line_prefix}" lacks ${missing.join(" ")}, which the pipeline parses ` +
        `(expected ${cfg.log_line_prefix_fields.join(" ")})`,
    );
  }
  if (!out.length) {
    out.push({
      severity: "ok",
      check: member,
      reason: `logging_collector on, files ${dir}/${s.log_filename} (stderr), log_line_prefix ` +
        `"${s.log_line_prefix}" has ${cfg.log_line_prefix_fields.join(" ")}`,
    });
  }
  return out;
}

// --- the search API -----------------------------------------------------------------------------------------

/** Headers and an HTTP client for the search cluster, its secret registered. @throws {NotConfigured} */
function searchClient(
  cfg: LogSearchConfig,
  deps: OpDeps,
  env: (name: string) => string | undefined,
): { headers: Record<string, string>; client?: Deno.HttpClient } {
  const headers: Record<string, string> = { "content-type": "application/json", accept: "application/json" };
  if (cfg.api_key_env) {
    const key = env(cfg.api_key_env);
    if (!key) throw new OpsError("not_configured", `environment variable ${cfg.api_key_env} is not set`);
    deps.secrets.add(key);
    headers.authorization = `ApiKey ${key}`;
  } else if (cfg.username) {
    const pw = cfg.password_env ? env(cfg.password_env) : "";
    if (pw === undefined) {
      throw new OpsError("not_configured", `environment variable ${cfg.password_env} is not set`);
    }
    deps.secrets.add(pw);
    const basic = btoa(`${cfg.username}:${pw}`);
    deps.secrets.add(basic);
    headers.authorization = `Basic ${basic}`;
  }
  const client = cfg.ca_file
    ? Deno.createHttpClient({ caCerts: [Deno.readTextFileSync(cfg.ca_file)] })
    : undefined;
  return { headers, client };
}

/** An error answer of the search cluster: its status and Elasticsearch's error type and reason. */
class SearchError extends Error {
  constructor(readonly status: number, readonly type?: string, readonly reason?: string) {
    super(`HTTP ${status}${type ? ` ${type}` : ""}${reason ? `: ${reason}` : ""}`);
    this.name = "SearchError";
  }
}

/** `_count` of the lines of one server in the index since `now-<minutes>m`. */
async function countLines(
  cfg: LogSearchConfig,
  http: { headers: Record<string, string>; client?: Deno.HttpClient },
  server: string,
  minutes: number,
): Promise<number> {
  const base = cfg.url.replace(/\/+$/, "");
  const url = `${base}/${encodeURIComponent(cfg.index).replaceAll("%2A", "*")}/_count`;
  // match_phrase rather than term: with dynamic mapping the server field is `text` (plus a .keyword), and a
  // term query on analysed text never matches a whole host name; match_phrase matches keyword and text alike.
  const body = {
    query: {
      bool: {
        filter: [
          { range: { [cfg.time_field]: { gte: `now-${minutes}m` } } },
          { match_phrase: { [cfg.server_field]: server } },
        ],
      },
    },
  };
  let res: Response;
  try {
    res = await fetch(url, {
      method: "POST",
      headers: http.headers,
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(cfg.timeout_seconds * 1000),
      ...(http.client ? { client: http.client } : {}),
    });
  } catch (err) {
    throw new OpsError("unreachable", `${base} does not answer: ${failureText(err)}`, { cause: err });
  }
  const json = await res.json().catch(() => undefined) as
    | { count?: number; error?: { type?: string; reason?: string } | string }
    | undefined;
  if (res.ok && typeof json?.count === "number") return json.count;
  const e = typeof json?.error === "object" ? json.error : { reason: json?.error };
  throw new SearchError(res.status, e?.type, e?.reason);
}

/** Lines of each server in the index: findings, or what could not be checked. */
async function readArrivals(
  target: string,
  members: TargetMember[],
  cfg: LogSearchConfig,
  deps: OpDeps,
  env: (name: string) => string | undefined,
): Promise<{ findings: EvidenceFinding[]; unchecked: string[] }> {
  const findings: EvidenceFinding[] = [];
  const unchecked: string[] = [];
  let http: ReturnType<typeof searchClient>;
  try {
    http = searchClient(cfg, deps, env);
  } catch (err) {
    return {
      findings,
      unchecked: [`lines in ${cfg.index}: ${failureText(err)} (targets.${target}.central_logging.search)`],
    };
  }
  try {
    await Promise.all(members.map(async (m) => {
      const server = cfg.server_values[m.name] ?? m.conn.host;
      const what = `${m.name}: lines with ${cfg.server_field} "${server}" in ${cfg.index}`;
      try {
        const recent = await countLines(cfg, http, server, cfg.window_minutes);
        if (recent > 0) {
          findings.push({
            severity: "ok",
            check: m.name,
            reason:
              `${recent} line(s) with ${cfg.server_field} "${server}" in ${cfg.index} in the last ${cfg.window_minutes} min`,
          });
          return;
        }
        const day = await countLines(cfg, http, server, 24 * 60);
        findings.push({
          severity: day > 0 ? "warning" : "critical",
          check: m.name,
          reason:
            `no line with ${cfg.server_field} "${server}" reached ${cfg.index} in the last ${cfg.window_minutes} min` +
            (day > 0
              ? ` (${day} in the last 24 h: the pipeline stalled, or the server has been quiet)`
              : " nor in the last 24 h: Fluent Bit is not shipping this server's log"),
        });
      } catch (err) {
        if (err instanceof SearchError && err.status === 404 && err.type === "index_not_found_exception") {
          findings.push({
            severity: "critical",
            check: m.name,
            reason:
              `the index ${cfg.index} does not exist (404 index_not_found_exception): no line has arrived`,
          });
        } else if (err instanceof SearchError) {
          const why = err.status === 401
            ? `refused the credentials (401 ${err.type ?? ""}: ${err.reason ?? ""})`
            : err.status === 403
            ? `the search user may not read ${cfg.index} (403 ${err.type ?? ""}: ${err.reason ?? ""})`
            : `answered HTTP ${err.status}${err.type ? ` ${err.type}` : ""}${
              err.reason ? `: ${err.reason}` : ""
            }`;
          unchecked.push(`${what}: ${cfg.url} ${why}`);
        } else {
          unchecked.push(`${what}: ${failureText(err)}`);
        }
      }
    }));
  } finally {
    http.client?.close();
  }
  return {
    findings,
    unchecked: unchecked.map((u) => deps.secrets.scrub(u)),
  };
}

/**
 * The centralized-logging evidence of `target`: every server's settings, and where a search cluster is
 * configured, the lines that reached it.
 * @throws {NotConfigured} for an unknown target
 */
export async function readCentralLogging(
  target: string,
  deps: OpDeps,
  env: (name: string) => string | undefined = (n) => deps.targets.variable(n),
): Promise<EvidenceReport> {
  const members = deps.targets.members(target);
  const cfg = deps.config.targets[target].central_logging;
  const source = "server settings (pg_settings)";
  if (!cfg) return notConfigured(target, source, "central_logging");
  const [settings, arrivals] = await Promise.all([
    Promise.all(members.map((m) => settle(readSettings(m, deps)))),
    cfg.search
      ? readArrivals(target, members, cfg.search, deps, env)
      : Promise.resolve({ findings: [], unchecked: [] }),
  ]);
  const findings: EvidenceFinding[] = [];
  const unchecked: string[] = [];
  members.forEach((m, i) => {
    const s = settings[i];
    if (s.ok) findings.push(...judgeLogSettings(m.name, s.value, cfg));
    else unchecked.push(`${m.name}: ${deps.secrets.scrub(failureText(s.error))}`);
  });
  findings.push(...arrivals.findings);
  unchecked.push(...arrivals.unchecked);
  return {
    target,
    source: cfg.search ? `${source} and ${cfg.search.url} (_count in ${cfg.search.index})` : source,
    findings,
    unchecked,
  };
}
