/**
 * The remediation buttons of alert threads: which buttons an alert name gets (the seed's incident runbook,
 * overridable per alert name in `alerts.buttons`), what each one does, and the Bolt listener that runs a click.
 *
 * A read-only button runs the same subcommand a person would type (`/bisman lag main`) and answers in the
 * alert's thread. A gated button asks the approval gate (`deps.gate.request`) with the alert's thread, so the
 * approval message and its outcome stay in the thread. A button whose operation or subcommand is not in this
 * build answers "not available yet" instead of failing.
 *
 * @module
 */

import { z } from "zod";
import type { AlertButtonKey, Config } from "../core/config.ts";
import { resolveTargetName } from "../core/config.ts";
import type { AppDeps } from "../core/deps.ts";
import { actorOf, checkWorkspace, type Invoker } from "../core/access.ts";
import { InvalidInput } from "../core/errors.ts";
import { getOperation } from "../ops/registry.ts";
import { allSubcommands } from "../commands/registry.ts";
import { prepareCommand, runPrepared, toUserError } from "../commands/router.ts";
import type { BoltRegistration } from "../slack/bolt_app.ts";
import {
  ALERT_ACTION_PATTERN,
  alertButtonOf,
  type AlertButtonRef,
  parseAlertButton,
} from "../views/actions.ts";
import { alertClick } from "./click.ts";
import { renderButtonAnswer } from "../views/alerts.ts";
import { renderError } from "../views/error.ts";
import { renderRequestCreated } from "../views/approval.ts";
import { buttonLabel, BUTTONS, buttonsFor } from "../core/runbook_buttons.ts";
import { own } from "../core/lookup.ts";

export { buttonLabel, BUTTONS, buttonsFor };

/** The parts of an alert a button needs. */
export interface AlertLabels {
  alertname: string;
  labels: Record<string, string>;
}

/** Host and port of an `instance` label (`db1:5432`, `db1`, `[::1]:5432`). */
function hostPort(instance: string): { host: string; port?: number } {
  const m = /^\[([^\]]+)\](?::(\d+))?$/.exec(instance) ?? /^([^:]+)(?::(\d+))?$/.exec(instance);
  if (!m) return { host: instance };
  return { host: m[1], port: m[2] ? Number(m[2]) : undefined };
}

/**
 * The configured member an alert is about: its `target` (and `replica`) labels when configured, else the
 * member whose host (and port) matches the `instance` label.
 */
export function memberOf(
  config: Config,
  labels: Record<string, string>,
): { target?: string; member?: string } {
  const t = labels.target ? own(config.targets, labels.target) : undefined;
  if (t) {
    const member = labels.replica && t.replicas.some((r) => r.name === labels.replica)
      ? labels.replica
      : undefined;
    return { target: labels.target, member };
  }
  if (labels.instance) {
    const { host, port } = hostPort(labels.instance);
    for (const [name, t] of Object.entries(config.targets)) {
      const members = [{ name: "primary", c: t.primary }, ...t.replicas.map((r) => ({ name: r.name, c: r }))];
      const hit = members.find((m) => m.c.host === host && (port === undefined || m.c.port === port));
      if (hit) return { target: name, member: hit.name };
    }
  }
  return { target: resolveTargetName(config, undefined) };
}

const ipAddress = z.union([z.ipv4(), z.ipv6()]);

/** The client address an alert names (`client_addr`, `client_address` or `address` label), when it is an IP. */
export function clientAddressOf(labels: Record<string, string> | undefined): string | undefined {
  const raw = labels?.client_addr ?? labels?.client_address ?? labels?.address;
  const r = ipAddress.safeParse(raw);
  return r.success ? r.data : undefined;
}

/** Which subcommands and operations a build has (the registries; a test may describe another build). */
export interface BuildContents {
  hasSubcommand(name: string): boolean;
  hasOperation(name: string): boolean;
}

/** This process's registries. */
export const thisBuild: BuildContents = {
  hasSubcommand: (name) => allSubcommands().some((s) => s.name === name),
  hasOperation: (name) => getOperation(name) !== undefined,
};

/** What a click will do, decided from the alert's labels and what this build has. */
export type ButtonAction =
  | { kind: "read"; text: string; subcommand: string }
  | { kind: "gated"; action: string; args: Record<string, unknown> }
  | { kind: "unavailable"; message: string };

/**
 * Decides what button `key` does for the alert(s) of a thread (a storm lists several: the first one names the
 * target). Pure apart from looking up which subcommands and operations are registered.
 */
export function resolveButton(
  config: Config,
  key: AlertButtonKey,
  alerts: AlertLabels[],
  built: BuildContents = thisBuild,
): ButtonAction {
  const def = BUTTONS[key];
  const first = alerts[0];
  const { target, member } = first
    ? memberOf(config, first.labels)
    : { target: resolveTargetName(config, undefined) };
  if (def.kind === "read") {
    if (!built.hasSubcommand(def.subcommand!)) {
      return { kind: "unavailable", message: `"${def.label}" is not available yet in this bisman-ops build` };
    }
    let text = target ? `${def.subcommand} ${target}` : def.subcommand!;
    // The audit trail of a suspicious client is the trail of its address (validated: it goes into a command).
    const address = key === "show_audit" ? clientAddressOf(first?.labels) : undefined;
    if (address) text += ` address=${address}`;
    return { kind: "read", subcommand: def.subcommand!, text };
  }
  if (!built.hasOperation(def.action!)) {
    return { kind: "unavailable", message: `"${def.label}" is not available yet in this bisman-ops build` };
  }
  if (!target) {
    return {
      kind: "unavailable",
      message: `Cannot tell which target this alert is about: give it a \`target\` label (one of ${
        Object.keys(config.targets).join(", ")
      })`,
    };
  }
  switch (key) {
    case "promote_replica": {
      const replicas = own(config.targets, target)!.replicas.map((r) => r.name);
      const replica = member && member !== "primary"
        ? member
        : replicas.length === 1
        ? replicas[0]
        : undefined;
      if (!replica) {
        return {
          kind: "unavailable",
          message: `Which replica? Target ${target} has ${
            replicas.length ? replicas.join(", ") : "no replicas"
          }: use \`/bisman promote <replica> ${target}\``,
        };
      }
      return { kind: "gated", action: def.action!, args: { replica, target } };
    }
    case "terminate_idle":
      return {
        kind: "gated",
        action: def.action!,
        args: { target, older_than_minutes: config.thresholds.idle_in_transaction_minutes },
      };
    case "rotate_all":
      return { kind: "gated", action: def.action!, args: { role: "all", target } };
    case "terminate_client": {
      const address = clientAddressOf(first?.labels);
      if (!address) {
        return {
          kind: "unavailable",
          message: "This alert names no client address: it needs a `client_addr` label holding an IP address",
        };
      }
      return { kind: "gated", action: def.action!, args: { address, target } };
    }
    default:
      return { kind: "gated", action: def.action!, args: { target } };
  }
}

/** The alerts a button points at, and the thread they live in (unknown only while its parent is being posted). */
export interface AlertLookupResult {
  channel: string;
  threadTs?: string;
  alerts: AlertLabels[];
}

/** What the click listener needs from the alert store. */
export interface AlertLookup {
  lookup(ref: AlertButtonRef): Promise<AlertLookupResult | undefined>;
}

/**
 * The Bolt listener of every alert button. It acks at once; the answer goes to the alert's thread (read-only)
 * or to the approval gate with that thread (gated); refusals go to the clicker only.
 */
export function alertButtonRegistration(store: AlertLookup): BoltRegistration {
  return (app, deps) => {
    app.action(ALERT_ACTION_PATTERN, async (args) => {
      await args.ack();
      const { client } = args;
      const click = alertClick(args, deps, "an alert button");
      const { inv, action: a } = click;
      const tellClicker = click.tell;
      try {
        checkWorkspace(deps.config, inv);
        const key = alertButtonOf(a.action_id);
        const ref = parseAlertButton(a.value);
        if (!key || !ref) throw new InvalidInput("This button is not one of bisman-ops' alert buttons");
        const hit = await store.lookup(ref);
        if (!hit) throw new InvalidInput("This alert is no longer known to bisman-ops: nothing was done");
        // The button sits on the thread's parent, so the clicked message is the thread when none is recorded yet.
        const thread = hit.threadTs ?? click.messageTs;
        if (!thread) throw new InvalidInput("This alert has no thread yet: try again in a moment");
        const found = { ...hit, threadTs: thread };
        click.threadTs = thread;
        const what = resolveButton(deps.config, key, found.alerts);
        await auditClick(deps, inv, key, ref, what);
        if (what.kind === "unavailable") return await tellClicker(`:construction: ${what.message}`);
        if (what.kind === "read") {
          const prepared = prepareCommand(what.text, inv, deps);
          const reply = await runPrepared(prepared, inv, deps);
          const answer = renderButtonAnswer(reply, inv.userId, buttonLabel(deps.config, key));
          await client.chat.postMessage({
            channel: found.channel,
            thread_ts: found.threadTs,
            text: answer.text,
            blocks: answer.blocks,
          });
          return;
        }
        if (!deps.gate) {
          return await tellClicker(
            `:construction: "${BUTTONS[key].label}" is not available yet: the approval gate is not running`,
          );
        }
        const reply = renderRequestCreated(
          await deps.gate.request({
            action: what.action,
            args: what.args,
            invoker: inv,
            thread: { channel: found.channel, ts: found.threadTs },
          }),
        );
        await tellClicker(reply.text, reply.blocks);
      } catch (err) {
        const e = toUserError(err, deps);
        await tellClicker(renderError(e).text);
      }
    });
  };
}

async function auditClick(
  deps: AppDeps,
  inv: Invoker,
  key: AlertButtonKey,
  ref: AlertButtonRef,
  what: ButtonAction,
): Promise<void> {
  await deps.audit.append({
    actor: actorOf(inv),
    actorName: inv.userName,
    action: "alert.button_clicked",
    outcome: what.kind === "unavailable" ? "refused" : "ok",
    target: what.kind === "gated" ? (what.args.target as string | undefined) : undefined,
    details: {
      button: key,
      ...("fingerprint" in ref ? { fingerprint: ref.fingerprint } : { storm: ref.storm }),
      does: what.kind === "read"
        ? `/bisman ${what.text}`
        : what.kind === "gated"
        ? what.action
        : what.message,
    },
  }).catch((err) => deps.log.error("audit append failed", { error: err }));
}
