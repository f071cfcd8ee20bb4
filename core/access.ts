/**
 * Who may do what. Identity is Slack's IDs only (users `U...`/`W...`, groups `S...`, workspace `T...`/`E...`);
 * display names are shown, never compared.
 *
 * @module
 */

import type { Config, Principals } from "./config.ts";
import { NotPermitted } from "./errors.ts";

/** Looks up the members of a Slack user group (`usergroups.users.list`); absent when Slack is not reachable. */
export type GroupMembers = (groupId: string) => Promise<string[]>;

/** The person or process asking. */
export interface Invoker {
  userId: string;
  userName?: string;
  teamId?: string;
  enterpriseId?: string;
  channelId?: string;
  via: "slack" | "cli" | "scheduler" | "alertmanager";
}

/**
 * The audit actor string of an invoker (`U...`, `cli:<name>`, `scheduler`, `alertmanager`). A CLI invoker's
 * `userId` is the Slack ID its login maps to (access.cli_operators), so rights and "not the requester" are
 * judged on the person; the actor names the login it came from.
 */
export function actorOf(inv: Invoker): string {
  if (inv.via === "cli") return `cli:${inv.userName ?? inv.userId}`;
  if (inv.via === "scheduler" || inv.via === "alertmanager") return inv.via;
  return inv.userId;
}

/**
 * Refuses requests from another workspace.
 * @throws {NotPermitted}
 */
export function checkWorkspace(config: Config, inv: Invoker): void {
  if (inv.via !== "slack") return;
  if (inv.teamId !== config.workspace.team_id) {
    throw new NotPermitted(
      `Request refused: it comes from workspace ${inv.teamId ?? "(none)"}, not the configured one`,
    );
  }
  if (
    config.workspace.enterprise_id && inv.enterpriseId && inv.enterpriseId !== config.workspace.enterprise_id
  ) {
    throw new NotPermitted(
      `Request refused: it comes from enterprise ${inv.enterpriseId}, not the configured one`,
    );
  }
}

/** Channels where commands may be typed: the ops channel and `slack.command_channels`. */
export function allowedChannels(config: Config): string[] {
  return [config.slack.ops_channel, ...config.slack.command_channels];
}

/** @throws {NotPermitted} when a Slack command comes from a channel that is not allowed */
export function checkChannel(config: Config, inv: Invoker): void {
  if (inv.via !== "slack") return;
  const allowed = allowedChannels(config);
  if (!inv.channelId || !allowed.includes(inv.channelId)) {
    throw new NotPermitted(
      `bisman-ops answers only in ${allowed.map((c) => `<#${c}>`).join(", ")}: ask there`,
    );
  }
}

/** Caches user-group membership for a minute, so a burst of clicks makes one Slack call. */
export class GroupCache {
  #cache = new Map<string, { at: number; members: string[] }>();
  constructor(private readonly lookup: GroupMembers, private readonly ttlMs = 60_000) {}

  /** Members of `groupId`; a failed lookup is an error (never "empty group"), so nobody gains access by an outage. */
  async members(groupId: string): Promise<string[]> {
    const hit = this.#cache.get(groupId);
    if (hit && Date.now() - hit.at < this.ttlMs) return hit.members;
    const members = await this.lookup(groupId);
    this.#cache.set(groupId, { at: Date.now(), members });
    return members;
  }
}

/** True when `userId` is listed in `p.users` or belongs to one of `p.groups`. */
export async function isMember(p: Principals, userId: string, groups: GroupMembers): Promise<boolean> {
  if (p.users.includes(userId)) return true;
  for (const g of p.groups) {
    if ((await groups(g)).includes(userId)) return true;
  }
  return false;
}

/**
 * @throws {NotPermitted} unless the invoker is a configured operator. CLI and scheduler identities are
 * checked by their own entry points.
 */
export async function requireOperator(
  config: Config,
  inv: Invoker,
  groups: GroupMembers,
  what: string,
): Promise<void> {
  if (inv.via === "scheduler" || inv.via === "alertmanager") return;
  if (await isMember(config.access.operators, inv.userId, groups)) return;
  throw new NotPermitted(
    `${what} is for operators: ask one of them, or an admin to add you to access.operators`,
  );
}
