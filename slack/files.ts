/**
 * Slack calls that commands need beyond their reply: a message's permalink, and sending a file to one
 * person (an audit-log export, audit search results) through Slack's external upload flow:
 *
 * 1. `files.getUploadURLExternal` (filename, length) → an upload URL and a file ID;
 * 2. the file's bytes POSTed to that URL;
 * 3. `files.completeUploadExternal` shares the file in a channel: here the direct message with the asker
 *    (`conversations.open`), because the results are the asker's and a channel upload cannot be ephemeral.
 *
 * https://docs.slack.dev/messaging/working-with-files#uploading_files
 *
 * @module
 */

import type { WebClient } from "@slack/web-api";
import type { FileToSend, SlackApi } from "../core/deps.ts";
import type { Secrets } from "../core/log.ts";

/** Files larger than this are refused before any call (Slack's own limit is far higher; ours is a guard). */
export const MAX_FILE_BYTES = 50 * 1024 * 1024;

/** Thrown when a step of the upload fails; `step` names it. */
export class UploadFailed extends Error {
  constructor(readonly step: string, message: string) {
    super(`Uploading the file failed at ${step}: ${message}`);
    this.name = "UploadFailed";
  }
}

/**
 * Sends `file` to `file.user` privately: upload, then share in their direct message with the bot.
 * The content is scrubbed of registered secrets first.
 * @throws {UploadFailed} naming the step that failed
 */
export async function sendFile(
  client: WebClient,
  secrets: Secrets,
  file: FileToSend,
  opts: { fetch?: typeof fetch } = {},
): Promise<{ fileId: string; channel: string }> {
  const bytes = new TextEncoder().encode(secrets.scrub(file.content));
  if (bytes.length > MAX_FILE_BYTES) {
    throw new UploadFailed("size check", `${bytes.length} bytes is more than ${MAX_FILE_BYTES}`);
  }
  const step = async <T>(name: string, fn: () => Promise<T>): Promise<T> => {
    try {
      return await fn();
    } catch (err) {
      if (err instanceof UploadFailed) throw err;
      const e = err as { data?: { error?: string }; message?: string };
      throw new UploadFailed(name, e.data?.error ?? e.message?.split("\n")[0] ?? String(err));
    }
  };
  const dm = await step("conversations.open", () => client.conversations.open({ users: file.user }));
  const channel = dm.channel?.id;
  if (!channel) throw new UploadFailed("conversations.open", "no direct-message channel came back");
  const url = await step(
    "files.getUploadURLExternal",
    () => client.files.getUploadURLExternal({ filename: file.filename, length: bytes.length }),
  );
  if (!url.upload_url || !url.file_id) {
    throw new UploadFailed("files.getUploadURLExternal", "no upload_url or file_id came back");
  }
  const res = await step("the upload", () =>
    (opts.fetch ?? fetch)(url.upload_url!, {
      method: "POST",
      headers: { "content-type": "application/octet-stream" },
      body: bytes,
    }));
  await res.body?.cancel();
  if (!res.ok) throw new UploadFailed("the upload", `HTTP ${res.status}`);
  const done = await step("files.completeUploadExternal", () =>
    client.files.completeUploadExternal({
      files: [{ id: url.file_id!, title: file.title }],
      channel_id: channel,
      ...(file.comment ? { initial_comment: secrets.scrub(file.comment) } : {}),
    }));
  if (!done.ok) throw new UploadFailed("files.completeUploadExternal", String(done.error ?? "not ok"));
  return { fileId: url.file_id, channel };
}

/** The {@link SlackApi} of one bot process, on its Web API client. */
export function slackApiOf(client: WebClient, secrets: Secrets): SlackApi {
  return {
    permalink: async (channel, ts) => {
      try {
        const r = await client.chat.getPermalink({ channel, message_ts: ts });
        return r.permalink;
      } catch {
        // A deleted message or a channel the bot left: the list shows no link rather than failing.
        return undefined;
      }
    },
    sendFile: (file) => sendFile(client, secrets, file),
  };
}
