/**
 * The "I'm on it" and silence buttons of an alert thread (issue 11).
 *
 * - "I'm on it" records who took the alert (a later click takes it over) and shows the owner on the parent
 *   message; anyone in the workspace may take an alert.
 * - "Silence 1 h / 4 h / 24 h" (operators only) creates a real Alertmanager silence for exactly this alert
 *   (alerts/silences.ts), says so in the thread and on the parent; "Expire silence" removes it.
 *
 * Every click is audited. The parent is redrawn through the alert poster (AlertThreads.refreshParent), so it
 * never races the alert's own notifications.
 *
 * @module
 */

import type { Sql } from "postgres";
import type { AppDeps } from "../core/deps.ts";
import { actorOf, checkWorkspace, type Invoker, requireOperator } from "../core/access.ts";
import { InvalidInput, OpsError } from "../core/errors.ts";
import type { BoltRegistration } from "../slack/bolt_app.ts";
import {
  parseSilenceAction,
  parseThreadButton,
  THREAD_ACTION_PATTERN,
  THREAD_ACTIONS,
} from "../views/actions.ts";
import { alertClick } from "./click.ts";
import { renderError } from "../views/error.ts";
import { toUserError } from "../commands/router.ts";
import {
  alertmanagerBase,
  clearSilence,
  createSilence,
  expireSilence,
  fromConfiguredAlertmanager,
  matchersOf,
  readThreadAlert,
  recordSilence,
  type ThreadAlert,
} from "./silences.ts";

/** What the listener needs from the alert threads. */
export interface ParentRefresher {
  refreshParent(fingerprint: string): Promise<void>;
}

/** Records who took an alert. @returns false when the alert is unknown */
export async function takeAlert(
  sql: Sql,
  fingerprint: string,
  who: { id: string; name?: string; now: Date },
): Promise<boolean> {
  const rows = await sql`
    update bisman_ops.alert_state set owner = ${who.id}, owner_name = ${
    who.name ?? null
  }, owned_at = ${who.now}
     where fingerprint = ${fingerprint}
    returning 1`;
  return rows.length > 0;
}

/** "bob (U0BOB) via bisman-ops": Alertmanager shows createdBy as it is. */
function createdBy(inv: Invoker): string {
  return `${inv.userName ? `${inv.userName} (${inv.userId})` : inv.userId} via bisman-ops`;
}

/** Silences one alert for `hours`; returns the silence ID and its end. */
export async function silenceAlert(
  deps: AppDeps,
  alert: ThreadAlert,
  inv: Invoker,
  hours: number,
): Promise<{ id: string; until: Date; base: string }> {
  if (alert.source !== "alertmanager") {
    throw new InvalidInput(
      "This alert comes from bisman-ops' own lag check, not from Alertmanager: there is nothing to silence",
    );
  }
  const base = alertmanagerBase(deps.config, alert.externalUrl);
  const thread = alert.threadTs ? await deps.slack?.permalink(alert.channel, alert.threadTs) : undefined;
  const now = deps.now();
  const until = new Date(now.getTime() + hours * 3600_000);
  const id = await createSilence(base, {
    matchers: matchersOf(alert.labels),
    startsAt: now,
    endsAt: until,
    createdBy: createdBy(inv),
    comment: `Silenced from Slack for ${hours} h${thread ? `: ${thread}` : ` (alert ${alert.fingerprint})`}`,
  });
  if (!(await recordSilence(deps.state, alert.fingerprint, { id, until, by: inv.userId, now }))) {
    // Someone else silenced it at the same moment: keep theirs, remove ours.
    await expireSilence(base, id).catch(() => undefined);
    throw new OpsError("conflict", "This alert was silenced by someone else a moment ago: see its thread");
  }
  return { id, until, base };
}

/** The Bolt listeners of the thread buttons. */
export function alertThreadRegistration(threads: ParentRefresher): BoltRegistration {
  return (app, deps) => {
    app.action(THREAD_ACTION_PATTERN, async (args) => {
      await args.ack();
      const { client } = args;
      const click = alertClick(args, deps, "a thread button");
      const { channel, inv, action: a } = click;
      const tellClicker = (text: string) => click.tell(text);
      const inThread = async (text: string) => {
        if (!click.threadTs) return;
        await client.chat.postMessage({ channel, thread_ts: click.threadTs, text }).catch((err) =>
          deps.log.error("could not post in an alert thread", { error: err })
        );
      };
      try {
        checkWorkspace(deps.config, inv);
        const ref = parseThreadButton(a.value);
        if (!ref) throw new InvalidInput("This button is not one of bisman-ops' alert-thread buttons");
        const alert = await readThreadAlert(deps.state, ref.fingerprint);
        if (!alert) throw new InvalidInput("This alert is no longer known to bisman-ops: nothing was done");
        click.threadTs = alert.threadTs ?? click.threadTs;
        const base = {
          actor: actorOf(inv),
          actorName: inv.userName,
          details: { fingerprint: alert.fingerprint, alertname: alert.alertname },
        };
        if (a.action_id === THREAD_ACTIONS.take) {
          await takeAlert(deps.state, alert.fingerprint, {
            id: inv.userId,
            name: inv.userName,
            now: deps.now(),
          });
          await deps.audit.append({
            ...base,
            action: "alert.taken",
            outcome: "ok",
            details: { ...base.details, previous_owner: alert.owner },
          });
          await inThread(
            `:technologist: <@${inv.userId}> is on it${
              alert.owner && alert.owner !== inv.userId ? ` (taking over from <@${alert.owner}>)` : ""
            }`,
          );
          await threads.refreshParent(alert.fingerprint);
          return;
        }
        await requireOperator(deps.config, inv, deps.groupMembers, "Silencing alerts");
        const silence = parseSilenceAction(a.action_id);
        if (silence) {
          // Each length has its own action_id (views/actions.ts silenceActionId); parents posted before that
          // carry the plain id, with the hours only in the value. Both must agree when both are there.
          const hours = silence.hours ?? ref.hours;
          if (!hours) throw new InvalidInput("This silence button names no duration");
          if (silence.hours && ref.hours && silence.hours !== ref.hours) {
            throw new InvalidInput(
              "This silence button's duration does not match its value: nothing was done",
            );
          }
          const s = await silenceAlert(deps, alert, inv, hours);
          await deps.audit.append({
            ...base,
            action: "alert.silenced",
            outcome: "ok",
            details: {
              ...base.details,
              silence_id: s.id,
              hours,
              until: s.until.toISOString(),
              alertmanager: s.base,
              // Whether the alert's own externalURL named this Alertmanager (it is never used otherwise).
              external_url_matched: fromConfiguredAlertmanager(deps.config, alert.externalUrl),
              matchers: matchersOf(alert.labels).map((m) => `${m.name}="${m.value}"`),
            },
          });
          await inThread(
            `:no_bell: <@${inv.userId}> silenced this alert in Alertmanager for ${hours} h, until ${
              s.until.toISOString().slice(0, 16).replace("T", " ")
            } UTC (silence \`${s.id}\`)`,
          );
          await threads.refreshParent(alert.fingerprint);
          return;
        }
        if (a.action_id === THREAD_ACTIONS.unsilence) {
          if (!alert.silenceId) {
            throw new OpsError("conflict", "This alert has no silence from bisman-ops to expire");
          }
          const amBase = alertmanagerBase(deps.config, alert.externalUrl);
          await expireSilence(amBase, alert.silenceId);
          await clearSilence(deps.state, alert.fingerprint, alert.silenceId);
          await deps.audit.append({
            ...base,
            action: "alert.silence_expired",
            outcome: "ok",
            details: { ...base.details, silence_id: alert.silenceId, alertmanager: amBase },
          });
          await inThread(
            `:bell: <@${inv.userId}> expired silence \`${alert.silenceId}\`: notifications are back on`,
          );
          await threads.refreshParent(alert.fingerprint);
          return;
        }
        throw new InvalidInput("This button is not one of bisman-ops' alert-thread buttons");
      } catch (err) {
        const e = toUserError(err, deps);
        await deps.audit.append({
          actor: actorOf(inv),
          actorName: inv.userName,
          action: "alert.thread_refused",
          outcome: "refused",
          details: { button: a.action_id, code: e.code, reason: e.userMessage },
        }).catch((auditErr) => deps.log.error("audit append failed", { error: auditErr }));
        await tellClicker(renderError(e).text);
      }
    });
  };
}
