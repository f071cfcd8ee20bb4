/**
 * Block Kit for alert threads: the parent message of one alert (with its runbook buttons while it fires), the
 * replies that record what happened to it, the parent and detail replies of a storm group, and the answer of a
 * read-only button. Every label and annotation comes from outside the bot, so all of it is escaped and cut to
 * Slack's limits.
 *
 * @module
 */

import type { Button } from "@slack/types";
import type { Block, Reply } from "./reply.ts";
import type { AlertButtonKey } from "../core/config.ts";
import { maskSecretTokens, maskStatement } from "../core/statement_mask.ts";
import {
  ALERT_ACTIONS,
  type AlertButtonRef,
  encodeAlertButton,
  encodeThreadButton,
  SILENCE_HOURS,
  silenceActionId,
  THREAD_ACTIONS,
} from "./actions.ts";
import {
  capBlocks,
  chunkLines,
  context,
  escapeMrkdwn,
  fieldsSection,
  LIMITS,
  mrkdwnSection,
  truncate,
  truncateMrkdwn,
} from "./blocks.ts";

/** An alert as one notification carried it (alerts/threads.ts stores it as the outbox snapshot). */
export interface AlertView {
  fingerprint: string;
  alertname: string;
  status: "firing" | "resolved";
  labels: Record<string, string>;
  annotations: Record<string, string>;
  startsAt: string | null;
  endsAt: string | null;
  generatorURL?: string;
  source: "alertmanager" | "lag_check";
}

/** A button to draw: its key and label. */
export interface ButtonView {
  key: AlertButtonKey;
  label: string;
  gated: boolean;
}

/** A Slack message body: fallback text and blocks. */
export interface MessageBody {
  text: string;
  blocks: Block[];
}

const LABELS_SHOWN_FIRST = ["target", "instance", "replica", "severity", "job", "client_addr"];

function mark(status: AlertView["status"]): string {
  return status === "firing" ? ":red_circle: *FIRING*" : ":white_check_mark: *RESOLVED*";
}

/**
 * A label or annotation value as shown: statement text (postgres_exporter's `query` label, exported with
 * `--collector.stat_statements.include_query`) masked like every statement (core/statement_mask.ts),
 * verifiers masked in any value.
 */
function shownValue(key: string, value: string): string {
  return /^(query|statement|sql)$/i.test(key) ? maskStatement(value) : maskSecretTokens(value);
}

function labelLines(labels: Record<string, string>): string[] {
  const keys = Object.keys(labels).filter((k) => k !== "alertname");
  keys.sort((a, b) => {
    const ia = LABELS_SHOWN_FIRST.indexOf(a);
    const ib = LABELS_SHOWN_FIRST.indexOf(b);
    return (ia < 0 ? 99 : ia) - (ib < 0 ? 99 : ib) || a.localeCompare(b);
  });
  return keys.map((k) =>
    `*${escapeMrkdwn(truncate(k, 60))}*: ${escapeMrkdwn(truncate(shownValue(k, labels[k]), 200))}`
  );
}

/** A one-line description of an alert: its summary annotation, else its labels. */
export function alertOneLine(a: AlertView): string {
  const what = a.annotations.summary ?? a.annotations.description ?? a.labels.instance ?? "";
  return truncate(`${a.alertname}${what ? `: ${what}` : ""}`, 200);
}

/**
 * The actions block of a thread's parent; values point back at the alert or storm. A key listed twice (the
 * config allows it) is drawn once: Slack refuses a repeated action_id in one block.
 */
export function buttonsBlock(buttons: ButtonView[], ref: AlertButtonRef): Block | undefined {
  const once = buttons.filter((b, i) => buttons.findIndex((x) => x.key === b.key) === i);
  if (!once.length) return undefined;
  return {
    type: "actions",
    block_id: "bisman.alert.buttons",
    elements: once.map((b) => ({
      type: "button",
      action_id: ALERT_ACTIONS[b.key],
      text: { type: "plain_text", text: truncate(b.label, LIMITS.buttonText) },
      value: encodeAlertButton(ref),
      ...(b.gated ? { style: "danger" } : {}),
    })),
  };
}

function when(iso: string | null): string {
  return iso ? iso.replace(/\.\d+Z$/, "Z") : "?";
}

/** What a parent message shows besides the alert itself (issue 11: ownership, silences, runbook link). */
export interface ThreadExtras {
  /** The alert's runbook (its runbook_url annotation, else alerts.runbook_urls). */
  runbookUrl?: string;
  /** Who took it with "I'm on it", and when (ISO). */
  owner?: { id: string; at?: string };
  /** The silence the bot made for it. */
  silence?: { id: string; until: string; by?: string };
  /** Draw "I'm on it" (and, when silenceable, the silence buttons) while it fires. */
  threadButtons?: { silenceable: boolean };
}

function userMention(id: string): string {
  return /^[UW][A-Z0-9]+$/.test(id) ? `<@${id}>` : escapeMrkdwn(id);
}

/** The "I'm on it" and silence buttons of an alert's parent. */
export function threadButtonsBlock(fingerprint: string, x: ThreadExtras, now = new Date()): Block {
  const silenced = x.silence && Date.parse(x.silence.until) > now.getTime();
  const elements: Button[] = [{
    type: "button",
    action_id: THREAD_ACTIONS.take,
    text: { type: "plain_text", text: x.owner ? "I'm on it (take over)" : "I'm on it" },
    value: encodeThreadButton({ fingerprint }),
    ...(x.owner ? {} : { style: "primary" }),
  }];
  if (x.threadButtons?.silenceable) {
    if (silenced) {
      elements.push({
        type: "button",
        action_id: THREAD_ACTIONS.unsilence,
        text: { type: "plain_text", text: "Expire silence" },
        value: encodeThreadButton({ fingerprint }),
      });
    } else {
      for (const h of SILENCE_HOURS) {
        elements.push({
          type: "button",
          // One id per length: Slack refuses the same action_id twice in one block.
          action_id: silenceActionId(h),
          text: { type: "plain_text", text: `Silence ${h} h` },
          value: encodeThreadButton({ fingerprint, hours: h }),
        });
      }
    }
  }
  return { type: "actions", block_id: "bisman.thread.buttons", elements };
}

/** The parent message of one alert's thread. Buttons are shown while it fires. */
export function renderAlertParent(
  a: AlertView,
  buttons: ButtonView[],
  opts: { alertmanagerUrl?: string } & ThreadExtras = {},
): MessageBody {
  const blocks: Block[] = [
    mrkdwnSection(`${mark(a.status)} *${escapeMrkdwn(truncate(a.alertname, 150))}*`),
  ];
  const summary = a.annotations.summary ?? a.annotations.description;
  if (summary) blocks.push(mrkdwnSection(escapeMrkdwn(truncate(summary, 2500))));
  const lines = labelLines(a.labels);
  if (lines.length) blocks.push(...fieldsSection(lines.slice(0, 10)));
  const other = Object.entries(a.annotations).filter(([k]) =>
    k !== "summary" && k !== (a.annotations.summary ? "description" : "summary")
  );
  for (
    const chunk of chunkLines(
      other.map(([k, v]) =>
        `*${escapeMrkdwn(truncate(k, 60))}*: ${escapeMrkdwn(truncate(shownValue(k, v), 500))}`
      ),
    ).slice(0, 3)
  ) {
    blocks.push(mrkdwnSection(chunk));
  }
  const time = a.status === "firing"
    ? `firing since ${when(a.startsAt)}`
    : `resolved at ${when(a.endsAt)} (fired since ${when(a.startsAt)})`;
  const links = [
    opts.runbookUrl && /^https?:\/\/[^\s|<>]+$/.test(opts.runbookUrl)
      ? `<${opts.runbookUrl}|Runbook>`
      : undefined,
    a.generatorURL && /^https?:\/\//.test(a.generatorURL) ? `<${a.generatorURL}|source>` : undefined,
    opts.alertmanagerUrl ? `<${opts.alertmanagerUrl}|Alertmanager>` : undefined,
  ].filter(Boolean).join(" · ");
  const who = [
    opts.owner
      ? `:technologist: Owner: ${userMention(opts.owner.id)}${
        opts.owner.at ? ` since ${when(opts.owner.at)}` : ""
      }`
      : undefined,
    opts.silence && Date.parse(opts.silence.until) > Date.now()
      ? `:no_bell: Silenced until ${when(opts.silence.until)}${
        opts.silence.by ? ` by ${userMention(opts.silence.by)}` : ""
      } (silence \`${escapeMrkdwn(truncate(opts.silence.id, 40))}\`)`
      : undefined,
  ].filter(Boolean);
  if (who.length) blocks.push(mrkdwnSection(who.join("\n")));
  blocks.push(
    context(
      `${time} · fingerprint \`${a.fingerprint}\` · ${
        a.source === "lag_check" ? "bisman-ops lag check" : "Alertmanager"
      }${links ? ` · ${links}` : ""}`,
    ),
  );
  if (a.status === "firing") {
    const actions = buttonsBlock(buttons, { fingerprint: a.fingerprint });
    if (actions) blocks.push(actions);
    if (opts.threadButtons) blocks.push(threadButtonsBlock(a.fingerprint, opts));
  }
  return {
    text: `${a.status === "firing" ? "FIRING" : "RESOLVED"}: ${alertOneLine(a)}`,
    blocks: capBlocks(blocks),
  };
}

/** The thread reply recording one change of an alert. */
export function renderAlertEvent(
  event: "firing" | "refiring" | "updated" | "resolved",
  a: AlertView,
): MessageBody {
  const line = {
    firing: `:red_circle: Firing since ${when(a.startsAt)}`,
    refiring: `:red_circle: Firing again since ${when(a.startsAt)}`,
    updated: `:pencil2: Updated: ${escapeMrkdwn(alertOneLine(a))}`,
    resolved: `:white_check_mark: Resolved at ${when(a.endsAt)}`,
  }[event];
  return { text: line.replace(/:[a-z_0-9]+: /, ""), blocks: [mrkdwnSection(line)] };
}

/** The figures a storm parent shows. */
export interface StormView {
  id: number;
  alertname: string;
  groupKey: string;
  firing: number;
  resolved: number;
  /** The first alerts of the group (the thread has them all). */
  sample: AlertView[];
}

/** The parent message of a storm group: counts, the first alerts, and the group's buttons. */
export function renderStormParent(s: StormView, buttons: ButtonView[]): MessageBody {
  const total = s.firing + s.resolved;
  const head = s.firing
    ? `:rotating_light: *Alert storm: ${s.firing} of ${total} ${
      escapeMrkdwn(truncate(s.alertname, 100))
    } alerts firing*`
    : `:white_check_mark: *Alert storm over: all ${total} ${
      escapeMrkdwn(truncate(s.alertname, 100))
    } alerts resolved*`;
  const sample = s.sample.map((a) =>
    `${a.status === "firing" ? ":red_circle:" : ":white_check_mark:"} \`${a.fingerprint}\` ${
      escapeMrkdwn(truncate(alertOneLine(a), 120))
    }`
  );
  const blocks: Block[] = [
    mrkdwnSection(head),
    mrkdwnSection(
      `Alerts of one Alertmanager group arrived together, so they are listed here instead of one thread each; ` +
        `each alert's detail is in this thread.`,
    ),
  ];
  for (const chunk of chunkLines(sample).slice(0, 2)) blocks.push(mrkdwnSection(chunk));
  if (total > s.sample.length) {
    blocks.push(context(`\u2026and ${total - s.sample.length} more in the thread`));
  }
  blocks.push(context(`group \`${escapeMrkdwn(truncate(s.groupKey, 300))}\` · storm #${s.id}`));
  if (s.firing) {
    const actions = buttonsBlock(buttons, { storm: s.id });
    if (actions) blocks.push(actions);
  }
  return {
    text: s.firing
      ? `Alert storm: ${s.firing} of ${total} ${s.alertname} alerts firing`
      : `Alert storm over: all ${total} ${s.alertname} alerts resolved`,
    blocks: capBlocks(blocks),
  };
}

/** One thread reply of a storm listing several alerts' changes, each with its labels. */
export function renderStormDetail(entries: { event: string; alert: AlertView }[]): MessageBody {
  const lines = entries.map(({ event, alert: a }) => {
    const status = event === "resolved"
      ? ":white_check_mark: resolved"
      : event === "refiring"
      ? ":red_circle: firing again"
      : event === "updated"
      ? ":pencil2: updated"
      : ":red_circle: firing";
    const labels = labelLines(a.labels).map((l) => l.replace(/^\*([^*]+)\*: /, "$1=")).join(", ");
    return `${status} \`${a.fingerprint}\` ${escapeMrkdwn(truncate(alertOneLine(a), 150))} (${
      truncateMrkdwn(labels, 400)
    })`;
  });
  const blocks = chunkLines(lines).slice(0, LIMITS.blocks).map((c) => mrkdwnSection(c));
  return {
    // Every fingerprint stays in the fallback text (notifications, search): each line is cut, not the list.
    text: entries.map(({ event, alert }) =>
      `${event}: ${alert.fingerprint} ${truncate(alertOneLine(alert), 100)}`
    )
      .join("\n"),
    blocks,
  };
}

/** A read-only button's answer, posted in the alert's thread for everyone. */
export function renderButtonAnswer(reply: Reply, userId: string, label: string): MessageBody {
  return {
    text: truncate(reply.text, 3000),
    blocks: capBlocks([
      context(`<@${userId}> pressed *${escapeMrkdwn(label)}*`),
      ...(reply.blocks ?? [mrkdwnSection(escapeMrkdwn(reply.text))]),
    ]),
  };
}

/**
 * The reply in an alert's old thread when it fires again after it resolved: the new episode has a thread of
 * its own at the bottom of the channel, where people look.
 */
export function renderContinuedBelow(a: AlertView): MessageBody {
  const line = `:repeat: Fired again since ${when(a.startsAt)}: followed in a new thread at the bottom of ` +
    `the channel; this thread is the earlier episode`;
  return { text: line.replace(/:[a-z_0-9]+: /, ""), blocks: [mrkdwnSection(line)] };
}
