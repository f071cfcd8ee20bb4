/**
 * The bot as a real OS process (`deno run -A main.ts`), for tests that kill it at an exact step and start
 * it again: spawn with a config file and env, wait for a stderr line (a fault point's marker), SIGKILL,
 * restart on the same state database.
 *
 * ```ts
 * const configFile = await writeConfigFile(testConfigDoc(cluster));
 * const p = await spawnBot({ configFile, env: { ...slackEnv, DATABASE_URL, BISMAN_FAILPOINT: "rotate.after_alter" } });
 * await p.waitForLine(/failpoint reached/);
 * await p.kill(); // SIGKILL, waits for the exit
 * ```
 */

import { freePort } from "../../standins/ports.ts";
import { waitFor } from "../../standins/wait.ts";
import type { SlackStandIn } from "../../standins/slack.ts";
import { ACTIONS } from "../../views/actions.ts";
import { REQUEST_EVENT_TYPE } from "../../slack/approval_messages.ts";
import { TEAM } from "./bot.ts";
import { TEST_SIGNING_KEY } from "./bot.ts";

const ROOT = new URL("../../", import.meta.url).pathname;

/** A running bot process. */
export interface BotProcess {
  pid: number;
  port: number;
  /** `http://127.0.0.1:<port>` */
  url: string;
  eventsUrl: string;
  /** Every stderr line so far (the bot logs JSON lines there). */
  stderr: string[];
  /** Resolves with the first stderr line (since start) matching `re`. */
  waitForLine(re: RegExp, timeoutMs?: number): Promise<string>;
  /** SIGKILL, then waits for the exit. */
  kill(): Promise<void>;
  /** SIGTERM (graceful shutdown), then waits for the exit; SIGKILL after `timeoutMs`. */
  stop(timeoutMs?: number): Promise<void>;
  exited: Promise<Deno.CommandStatus>;
}

/** Writes a config document (YAML is a superset of JSON) to a temp file and returns its path. */
export async function writeConfigFile(doc: Record<string, unknown>): Promise<string> {
  const file = await Deno.makeTempFile({ prefix: "bisman-config-", suffix: ".yaml" });
  await Deno.writeTextFile(file, JSON.stringify(doc, null, 2));
  return file;
}

/**
 * Starts `deno run -A main.ts` with only the given environment (plus PATH, HOME and DENO_DIR), on a free
 * port, and waits until `/readyz` answers 200.
 */
export async function spawnBot(opts: {
  configFile: string;
  env: Record<string, string>;
  readyTimeoutMs?: number;
  /** false: return as soon as the process is spawned (tests of start-up failures and of readiness itself). */
  waitReady?: boolean;
  /** Extra flags for `deno run` (the benchmarks' `--inspect` for a CPU profile, `--v8-flags`). */
  denoFlags?: string[];
}): Promise<BotProcess> {
  const port = await freePort();
  const base: Record<string, string> = {};
  for (const k of ["PATH", "HOME", "DENO_DIR", "TMPDIR"]) {
    const v = Deno.env.get(k);
    if (v) base[k] = v;
  }
  const child = new Deno.Command(Deno.execPath(), {
    // Named permissions among the flags (the image's CMD) replace -A, which conflicts with them.
    args: [
      "run",
      ...(opts.denoFlags?.some((f) => f.startsWith("--allow-")) ? ["--no-prompt"] : ["-A"]),
      ...(opts.denoFlags ?? []),
      "main.ts",
    ],
    cwd: ROOT,
    env: {
      ...base,
      BISMAN_SIGNING_KEY: TEST_SIGNING_KEY,
      ...opts.env,
      BISMAN_CONFIG: opts.configFile,
      PORT: String(port),
    },
    clearEnv: true,
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const stderr: string[] = [];
  const watchers: { re: RegExp; resolve: (l: string) => void }[] = [];
  const reading = (async () => {
    let buf = "";
    for await (const chunk of child.stderr.pipeThrough(new TextDecoderStream())) {
      buf += chunk;
      let i;
      while ((i = buf.indexOf("\n")) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        stderr.push(line);
        for (const w of [...watchers]) {
          if (w.re.test(line)) {
            watchers.splice(watchers.indexOf(w), 1);
            w.resolve(line);
          }
        }
      }
    }
    if (buf) stderr.push(buf);
  })();
  const exited = child.status.then(async (s) => {
    await reading.catch(() => undefined);
    return s;
  });
  let done = false;
  void exited.then(() => (done = true));
  const url = `http://127.0.0.1:${port}`;
  const p: BotProcess = {
    pid: child.pid,
    port,
    url,
    eventsUrl: `${url}/slack/events`,
    stderr,
    exited,
    waitForLine: (re, timeoutMs = 20_000) => {
      const hit = stderr.find((l) => re.test(l));
      if (hit) return Promise.resolve(hit);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          watchers.splice(watchers.indexOf(w), 1);
          reject(
            new Error(
              `Timed out after ${timeoutMs} ms waiting for ${re} on the bot's stderr:\n${tail(stderr)}`,
            ),
          );
        }, timeoutMs);
        const w = {
          re,
          resolve: (l: string) => {
            clearTimeout(timer);
            resolve(l);
          },
        };
        watchers.push(w);
        void exited.then((s) => {
          if (!watchers.includes(w)) return;
          clearTimeout(timer);
          watchers.splice(watchers.indexOf(w), 1);
          reject(new Error(`The bot exited (code ${s.code}) before ${re}:\n${tail(stderr)}`));
        });
      });
    },
    kill: async () => {
      if (!done) child.kill("SIGKILL");
      await exited;
    },
    stop: async (timeoutMs = 10_000) => {
      if (done) return;
      child.kill("SIGTERM");
      const timer = setTimeout(() => !done && child.kill("SIGKILL"), timeoutMs);
      await exited;
      clearTimeout(timer);
    },
  };
  if (opts.waitReady === false) return p;
  try {
    await waitFor(async () => {
      if (done) throw new Error(`The bot exited during start-up:\n${tail(stderr)}`);
      const res = await fetch(`${url}/readyz`).catch(() => undefined);
      await res?.body?.cancel();
      return res?.status === 200;
    }, { what: "the bot process's /readyz", timeoutMs: opts.readyTimeoutMs ?? 30_000, intervalMs: 100 });
  } catch (err) {
    await p.kill();
    throw err;
  }
  return p;
}

function tail(lines: string[], n = 20): string {
  return lines.slice(-n).join("\n");
}

/**
 * Sends `/bisman <text>` to a bot process as `user` and waits for the answer that names a request;
 * returns the request id.
 */
export async function requestVia(
  slack: SlackStandIn,
  p: BotProcess,
  text: string,
  user: string,
): Promise<number> {
  const before = slack.responses.length;
  const res = await slack.sendCommand(p.eventsUrl, {
    text,
    user_id: user,
    team_id: TEAM,
    channel_id: "C0OPS",
  });
  await res.body?.cancel();
  const answer = await waitFor(
    () =>
      slack.responses.slice(before).map((r) => String(r.body.text ?? "")).find((t) =>
        /Request #\d+/.test(t) || /:x:|:warning:|:gear:/.test(t)
      ),
    { what: `the answer to /bisman ${text}` },
  );
  const m = /Request #(\d+)/.exec(answer);
  if (!m) throw new Error(`/bisman ${text} did not create a request: ${answer}`);
  return Number(m[1]);
}

/** Clicks Approve on request `id`'s approval message as `user`; returns the HTTP status of the ack. */
export async function approveVia(
  slack: SlackStandIn,
  p: BotProcess,
  id: number,
  user: string,
): Promise<number> {
  const m = await waitFor(() =>
    slack.messages.findLast((x) => {
      const meta = x.metadata as { event_type?: string; event_payload?: { request_id?: number } } | undefined;
      return meta?.event_type === REQUEST_EVENT_TYPE && meta.event_payload?.request_id === id;
    }), { what: `the approval message of request #${id}` });
  let value: string | undefined;
  for (const b of (m.blocks ?? []) as { elements?: { action_id?: string; value?: string }[] }[]) {
    for (const e of b.elements ?? []) if (e.action_id === ACTIONS.approve) value = e.value;
  }
  if (!value) throw new Error(`Request #${id}'s message has no Approve button (it is no longer pending)`);
  const res = await slack.sendBlockAction(p.eventsUrl, {
    user_id: user,
    team_id: TEAM,
    action_id: ACTIONS.approve,
    value,
    channel_id: m.channel,
    message_ts: m.ts,
  });
  await res.body?.cancel();
  return res.status;
}
