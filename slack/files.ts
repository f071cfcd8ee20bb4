/**
 * Slack calls that commands need beyond their reply: a message's permalink, and sending a file to one
 * person (an audit-log export, audit search results) in their direct message with the bot
 * (`conversations.open`), because the results are the asker's and a channel upload cannot be ephemeral.
 *
 * The upload is `@slack/web-api`'s `files.uploadV2`, which runs Slack's external upload flow
 * (files.getUploadURLExternal, the bytes POSTed to the upload URL, files.completeUploadExternal):
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
 * @throws {UploadFailed} naming the step that failed (`conversations.open` or `files.uploadV2`, with
 *   Slack's error code when Slack gave one)
 */
export async function sendFile(
  client: WebClient,
  secrets: Secrets,
  file: FileToSend,
): Promise<{ fileId: string; channel: string }> {
  const content = secrets.scrub(file.content);
  const bytes = new TextEncoder().encode(content).length;
  if (bytes > MAX_FILE_BYTES) {
    throw new UploadFailed("size check", `${bytes} bytes is more than ${MAX_FILE_BYTES}`);
  }
  const step = async <T>(name: string, fn: () => Promise<T>): Promise<T> => {
    try {
      return await fn();
    } catch (err) {
      const e = err as { data?: { error?: string }; message?: string };
      throw new UploadFailed(name, e.data?.error ?? e.message?.split("\n")[0] ?? String(err));
    }
  };
  const dm = await step("conversations.open", () => client.conversations.open({ users: file.user }));
  const channel = dm.channel?.id;
  if (!channel) throw new UploadFailed("conversations.open", "no direct-message channel came back");
  const done = await step("files.uploadV2", () =>
    client.filesUploadV2({
      channel_id: channel,
      content,
      filename: file.filename,
      title: file.title,
      ...(file.comment ? { initial_comment: secrets.scrub(file.comment) } : {}),
    }));
  // One completeUploadExternal answer per upload job, each listing its files.
  const completed = (done.files as { files?: { id?: string }[] }[] | undefined)?.[0]?.files?.[0]?.id;
  if (!completed) throw new UploadFailed("files.uploadV2", "Slack named no completed file");
  return { fileId: completed, channel };
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
