/**
 * Slack mrkdwn as terminal text, for the break-glass CLI: links and mentions unwrapped, emoji codes and bold
 * markers dropped, HTML entities decoded.
 *
 * @module
 */

/**
 * @example
 * plainText(":white_check_mark: *main* <#C0OPS|ops> &lt;ok&gt;") // "main #ops <ok>"
 */
export function plainText(text: string): string {
  return text
    .replace(/<([#@!])([^|>]+)\|([^>]+)>/g, (_m, k, _id, label) => `${k === "!" ? "@" : k}${label}`)
    .replace(/<([#@])([^>]+)>/g, "$1$2")
    .replace(/<!([^>]+)>/g, "@$1")
    .replace(/<(https?:[^|>]+)\|([^>]+)>/g, "$2 ($1)")
    .replace(/<(https?:[^>]+)>/g, "$1")
    .replace(/(^|\s):[a-z0-9_+-]+:\s?/g, "$1")
    .replace(/(^|[\s(])\*([^*\n]+)\*/g, "$1$2")
    .replace(/&lt;/g, "<").replace(/&gt;/g, ">").replace(/&amp;/g, "&");
}
