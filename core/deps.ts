/**
 * The dependencies every entry point and operation receives, as one object: no singletons, so tests and
 * the CLI build their own.
 *
 * @module
 */

import type { Sql } from "postgres";
import type { Config } from "./config.ts";
import type { BotEnv } from "./env.ts";
import type { Logger, Secrets } from "./log.ts";
import type { Metrics } from "./metrics.ts";
import type { AuditLog } from "./audit.ts";
import type { Targets } from "./targets.ts";
import type { GroupMembers, Invoker } from "./access.ts";

export type { GroupMembers };
import type { JobService } from "./job_service.ts";
import type { VaultClient } from "./vault.ts";
import type { IntegrityKeys } from "./keys.ts";
import type { AuditWitness } from "./witness.ts";

/** A request for a destructive operation, as an entry point hands it to the approval gate. */
export interface GateRequest {
  /** The operation's name (ops/registry.ts). */
  action: string;
  /** Arguments, validated again by the operation's zod schema. */
  args: unknown;
  invoker: Invoker;
  /** Post the approval message as a reply in this thread (alert threads) instead of the ops channel. */
  thread?: { channel: string; ts: string };
}

/** What the gate tells the asker once a request is recorded (views/approval.ts renders it). */
export interface RequestCreated {
  id: number;
  /** The plan's one-line summary. */
  summary: string;
  /** The short plan hash shown on the approval message. */
  planHash: string;
  expiresAt: Date;
  approvalsNeeded: number;
  /** The channel of the approval message, or undefined when it could not be posted. */
  postedIn?: string;
}

/** The approval gate as entry points see it: plan, persist, post for approval, and say what was recorded. */
export interface Gate {
  request(req: GateRequest): Promise<RequestCreated>;
}

/** A file to send to one person (slack/files.ts: Slack's external upload flow, shared in a direct message). */
export interface FileToSend {
  /** The Slack user who gets it. */
  user: string;
  filename: string;
  title: string;
  content: string;
  /** The message that goes with it. */
  comment?: string;
}

/** Slack calls that commands need beyond their reply (slack/files.ts); absent where Slack is not used. */
export interface SlackApi {
  /** A message's permalink (chat.getPermalink), or undefined when Slack cannot give one. */
  permalink(channel: string, ts: string): Promise<string | undefined>;
  /** Uploads a file and shares it with `user` privately; returns its file ID. */
  sendFile(file: FileToSend): Promise<{ fileId: string; channel: string }>;
}

/** Shared services of one bot process. */
export interface AppDeps {
  config: Config;
  env: BotEnv;
  state: Sql;
  targets: Targets;
  audit: AuditLog;
  log: Logger;
  metrics: Metrics;
  secrets: Secrets;
  groupMembers: GroupMembers;
  now: () => Date;
  /** Absent only in processes that cannot run destructive work (set by bot.ts once the gate exists). */
  gate?: Gate;
  /** The scheduler (jobs/scheduler.ts): schedules, last runs, manual runs; absent where no jobs run. */
  jobs?: JobService;
  /** The Vault client; absent when `VAULT_ADDR` is not set (Vault features answer "not configured"). */
  vault?: VaultClient;
  /** Permalinks and file uploads (set by bot.ts); absent in the CLI. */
  slack?: SlackApi;
  /**
   * The key outside the state database (`BISMAN_SIGNING_KEY`) that seals requests and approvals and keys the
   * audit chain; the gate refuses to start without it.
   */
  keys?: IntegrityKeys;
  /** Where audit anchors go besides Slack (`audit_log.witness`); absent when not configured. */
  witness?: AuditWitness;
}
