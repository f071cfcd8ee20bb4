/**
 * What Slack refuses in a message or a modal, as a pure function: the Slack stand-in runs it on every
 * chat.postMessage, chat.update, chat.postEphemeral, response_url post, views.open and views.update, and
 * tests call it directly on every message the bot can render (tests/views/every_message_test.ts).
 *
 * Each rule names the page it comes from. Pages (docs.slack.dev, read through the search tool):
 * - [blocks] https://docs.slack.dev/reference/block-kit/blocks (and /blocks/<name>-block for each block)
 * - [section] …/blocks/section-block: `text` 3,000 characters, `fields` at most 10 of 2,000 each; one of
 *   `text` or `fields` is required; `accessory` one element.
 * - [actions] …/blocks/actions-block: `elements` at most 25 interactive elements.
 * - [context] …/blocks/context-block: `elements` at most 10 image elements and text objects.
 * - [header] …/blocks/header-block: `text` a plain_text object of at most 150 characters.
 * - [input] …/blocks/input-block: `label` and `hint` plain_text of at most 2,000 characters; `element` required.
 * - [image] …/blocks/image-block: `alt_text` 2,000, `image_url` 3,000, `title` plain_text 2,000.
 * - [markdown] …/blocks/markdown-block: `text` 12,000 characters, the sum over a message's markdown blocks.
 * - [block_id] every block page: "Maximum length for this field is 255 characters. block_id should be
 *   unique for each message and each iteration of a message" (the input block page: "each message or view").
 * - [text] …/composition-objects/text-object: `type` plain_text or mrkdwn, `text` "minimum length is 1 and
 *   maximum length is 3000 characters"; `emoji` only on plain_text, `verbatim` only on mrkdwn.
 * - [confirm] …/composition-objects/confirmation-dialog-object: `title` plain_text 100, `text` plain_text
 *   300, `confirm` and `deny` plain_text 30, all four required; `style` primary or danger.
 * - [option] …/composition-objects/option-object: `text` 75 (plain_text in selects and overflow menus),
 *   `value` 150, `description` plain_text 75, `url` (overflow menus only) 3,000.
 * - [option_group] …/composition-objects/option-group-object: `label` plain_text 75, at most 100 options.
 * - [button] …/block-elements/button-element: `text` plain_text 75, `action_id` 255 "unique among all other
 *   action_ids in the containing block", `url` 3,000, `value` 2,000, `style` primary or danger,
 *   `accessibility_label` 75.
 * - [select] …/block-elements/select-menu-element: `placeholder` plain_text 150, `options` at most 100 or
 *   `option_groups` at most 100 (one of them, not both).
 * - [overflow] …/block-elements/overflow-menu-element: "An array of up to five option objects".
 * - [plain_text_input] …/block-elements/plain-text-input-element: `min_length` 0–3000, `max_length` 1–3000,
 *   `placeholder` plain_text 150.
 * - [modal] https://docs.slack.dev/reference/views/modal-views: `title` plain_text 24 (required), `close`
 *   and `submit` plain_text 24, "submit is required when an input block is within the blocks array",
 *   `blocks` at most 100, `private_metadata` 3,000, `callback_id` 255, `external_id` 255.
 * - [postMessage] https://docs.slack.dev/reference/methods/chat.postMessage: at most 50 blocks; errors
 *   `invalid_blocks`, `invalid_blocks_format`, `msg_too_long`, `no_text`, `invalid_metadata_format`;
 *   `metadata` carries `event_type` and `event_payload`.
 *
 * How Slack answers: `{ok:false, error:"invalid_blocks", errors:[…], response_metadata:{messages:[…]}}` at
 * HTTP 200, each error a sentence followed by a JSON pointer, e.g. "must be less than 3001 characters
 * [json-pointer:/blocks/0/text/text]" or "must define either `text` or `fields`" (as Slack's own SDK
 * maintainers quote them, slackapi/java-slack-sdk#1017). views.* answer the same problems as
 * `invalid_arguments` with the sentences in `response_metadata.messages` (slack-go/slack#725 shows a duplicate
 * input block_id answered that way). The docs give no wording for a repeated action_id or block_id: the
 * sentences for those are the stand-in's own, in the same shape.
 *
 * Lengths are counted in UTF-16 code units (JavaScript's `length`), which is never fewer than the characters
 * Slack counts, so a message this accepts is within Slack's limits however Slack counts.
 *
 * @module
 */

type Json = Record<string, unknown>;

/** Where blocks are shown: the limits differ (50 blocks in a message, 100 in a modal). */
export type Surface = "message" | "modal";

/** The refusal Slack answers (HTTP 200, `ok: false`). */
export interface SlackRefusal {
  ok: false;
  error: string;
  errors?: string[];
  response_metadata?: { messages: string[] };
}

export const LIMITS = {
  /** [postMessage] "a maximum of 50 blocks"; [modal] "Max of 100 blocks". */
  messageBlocks: 50,
  modalBlocks: 100,
  /** chat.postMessage's `text`: past it Slack truncates or answers msg_too_long (chat.update, postEphemeral). */
  messageText: 40_000,
  /** [block_id], [button] action_id. */
  id: 255,
  /** [text] */
  text: 3000,
  sectionFields: 10,
  field: 2000,
  header: 150,
  actionsElements: 25,
  contextElements: 10,
  buttonText: 75,
  buttonValue: 2000,
  url: 3000,
  inputLabel: 2000,
  optionText: 75,
  optionValue: 150,
  selectOptions: 100,
  overflowOptions: 5,
  placeholder: 150,
  confirmTitle: 100,
  confirmText: 300,
  confirmButton: 30,
  modalText: 24,
  privateMetadata: 3000,
  markdownTotal: 12_000,
} as const;

function isObj(v: unknown): v is Json {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** Block types Slack documents for each surface ([blocks]: "Available in surfaces"). */
const BLOCK_TYPES: Record<Surface, Set<string>> = {
  message: new Set([
    "actions",
    "context",
    "context_actions",
    "divider",
    "file",
    "header",
    "image",
    "input",
    "markdown",
    "rich_text",
    "section",
    "table",
    "video",
  ]),
  modal: new Set([
    "actions",
    "context",
    "divider",
    "header",
    "image",
    "input",
    "rich_text",
    "section",
    "video",
  ]),
};

/** Interactive elements an actions block takes ([actions]). */
const ACTIONS_ELEMENTS = new Set([
  "button",
  "checkboxes",
  "datepicker",
  "datetimepicker",
  "multi_static_select",
  "multi_external_select",
  "multi_users_select",
  "multi_conversations_select",
  "multi_channels_select",
  "overflow",
  "radio_buttons",
  "static_select",
  "external_select",
  "users_select",
  "conversations_select",
  "channels_select",
  "timepicker",
  "workflow_button",
  "rich_text_input",
]);

/** Elements a section's accessory takes ([section]: "one of the compatible element objects"). */
const ACCESSORY_ELEMENTS = new Set([...ACTIONS_ELEMENTS, "image"]);

/** Elements an input block takes ([input]). */
const INPUT_ELEMENTS = new Set([
  "checkboxes",
  "datepicker",
  "datetimepicker",
  "email_text_input",
  "file_input",
  "multi_static_select",
  "multi_external_select",
  "multi_users_select",
  "multi_conversations_select",
  "multi_channels_select",
  "number_input",
  "plain_text_input",
  "radio_buttons",
  "rich_text_input",
  "static_select",
  "external_select",
  "users_select",
  "conversations_select",
  "channels_select",
  "timepicker",
  "url_text_input",
]);

/** A URL Slack will open: absolute http(s), no spaces ([button] `url`; Slack refuses other schemes). */
function isHttpUrl(s: string): boolean {
  if (/\s/.test(s)) return false;
  try {
    const u = new URL(s);
    return (u.protocol === "http:" || u.protocol === "https:") && u.hostname.length > 0;
  } catch {
    return false;
  }
}

/** Collects the errors of one message or view, with Slack's pointer style. */
class Checker {
  readonly errors: string[] = [];
  private readonly blockIds = new Map<string, string>();
  private markdownChars = 0;

  constructor(private readonly surface: Surface) {}

  err(msg: string, ptr: string): void {
    this.errors.push(`${msg} [json-pointer:${ptr}]`);
  }

  private str(v: unknown, ptr: string, opts: { max: number; min?: number; required?: boolean }): v is string {
    if (v === undefined) {
      if (opts.required) this.err("missing required field", ptr);
      return false;
    }
    if (typeof v !== "string") {
      this.err("must be a string", ptr);
      return false;
    }
    if (opts.min !== undefined && v.length < opts.min) {
      this.err(`must be more than ${opts.min - 1} characters`, ptr);
      return false;
    }
    if (v.length > opts.max) {
      this.err(`must be less than ${opts.max + 1} characters`, ptr);
      return false;
    }
    return true;
  }

  private bool(v: unknown, ptr: string): void {
    if (v !== undefined && typeof v !== "boolean") this.err("must be a boolean", ptr);
  }

  private url(v: unknown, ptr: string): void {
    if (!this.str(v, ptr, { max: LIMITS.url, min: 1 })) return;
    if (!isHttpUrl(v)) this.err("must be a valid URL", ptr);
  }

  private array(v: unknown, ptr: string, max: number, min = 1): v is unknown[] {
    if (!Array.isArray(v)) {
      this.err("must be an array", ptr);
      return false;
    }
    if (v.length < min) this.err(`must provide at least ${min} item${min === 1 ? "" : "s"}`, ptr);
    if (v.length > max) this.err(`no more than ${max} items allowed`, ptr);
    return true;
  }

  /** [text] A text object; `plain` where only plain_text is allowed; `max` the field's own limit. */
  text(t: unknown, ptr: string, max: number, plain = false): void {
    if (!isObj(t)) return this.err("must be an object", ptr);
    if (t.type !== "plain_text" && (plain || t.type !== "mrkdwn")) {
      return this.err(
        plain ? "must be a valid enum value: plain_text" : "must be a valid enum value",
        `${ptr}/type`,
      );
    }
    // [text]: emoji is "only usable when type is plain_text", verbatim "only usable when type is mrkdwn".
    if (t.type === "mrkdwn" && t.emoji !== undefined) {
      this.err("is not a valid field for mrkdwn", `${ptr}/emoji`);
    }
    if (t.type === "plain_text" && t.verbatim !== undefined) {
      this.err("is not a valid field for plain_text", `${ptr}/verbatim`);
    }
    this.bool(t.emoji, `${ptr}/emoji`);
    this.bool(t.verbatim, `${ptr}/verbatim`);
    this.str(t.text, `${ptr}/text`, { max: Math.min(max, LIMITS.text), min: 1, required: true });
  }

  /** [confirm] */
  private confirm(c: unknown, ptr: string): void {
    if (!isObj(c)) return this.err("must be an object", ptr);
    this.text(c.title, `${ptr}/title`, LIMITS.confirmTitle, true);
    this.text(c.text, `${ptr}/text`, LIMITS.confirmText, true);
    this.text(c.confirm, `${ptr}/confirm`, LIMITS.confirmButton, true);
    this.text(c.deny, `${ptr}/deny`, LIMITS.confirmButton, true);
    if (c.style !== undefined && c.style !== "primary" && c.style !== "danger") {
      this.err("must be a valid enum value", `${ptr}/style`);
    }
  }

  /** [option]; `plain` in selects and overflow menus, `urlAllowed` only in overflow menus. */
  private option(o: unknown, ptr: string, plain: boolean, urlAllowed: boolean): void {
    if (!isObj(o)) return this.err("must be an object", ptr);
    this.text(o.text, `${ptr}/text`, LIMITS.optionText, plain);
    this.str(o.value, `${ptr}/value`, { max: LIMITS.optionValue, min: 1, required: true });
    if (o.description !== undefined) this.text(o.description, `${ptr}/description`, LIMITS.optionText, true);
    if (o.url !== undefined) {
      if (!urlAllowed) this.err("url is only allowed in overflow menus", `${ptr}/url`);
      else this.url(o.url, `${ptr}/url`);
    }
  }

  private options(list: unknown, ptr: string, max: number, plain: boolean, urlAllowed = false): void {
    if (!this.array(list, ptr, max)) return;
    list.forEach((o, i) => this.option(o, `${ptr}/${i}`, plain, urlAllowed));
  }

  /** One block element; `where` says which block holds it (the allowed types differ). */
  element(e: unknown, ptr: string, where: "actions" | "accessory" | "input"): void {
    if (!isObj(e)) return this.err("must be an object", ptr);
    if (typeof e.type !== "string") return this.err("missing required field: type", ptr);
    const allowed = where === "actions"
      ? ACTIONS_ELEMENTS
      : where === "accessory"
      ? ACCESSORY_ELEMENTS
      : INPUT_ELEMENTS;
    if (!allowed.has(e.type)) return this.err(`unsupported type: ${e.type}`, `${ptr}/type`);
    if (e.action_id !== undefined) this.str(e.action_id, `${ptr}/action_id`, { max: LIMITS.id, min: 1 });
    if (e.confirm !== undefined) this.confirm(e.confirm, `${ptr}/confirm`);
    this.bool(e.focus_on_load, `${ptr}/focus_on_load`);
    switch (e.type) {
      case "button":
        this.text(e.text, `${ptr}/text`, LIMITS.buttonText, true);
        if (e.value !== undefined) this.str(e.value, `${ptr}/value`, { max: LIMITS.buttonValue });
        if (e.url !== undefined) this.url(e.url, `${ptr}/url`);
        if (e.style !== undefined && e.style !== "primary" && e.style !== "danger") {
          this.err("must be a valid enum value", `${ptr}/style`);
        }
        if (e.accessibility_label !== undefined) {
          this.str(e.accessibility_label, `${ptr}/accessibility_label`, { max: LIMITS.buttonText, min: 1 });
        }
        break;
      case "static_select":
      case "multi_static_select":
        if (e.placeholder !== undefined) {
          this.text(e.placeholder, `${ptr}/placeholder`, LIMITS.placeholder, true);
        }
        if ((e.options === undefined) === (e.option_groups === undefined)) {
          this.err("must provide exactly one of `options` or `option_groups`", ptr);
        } else if (e.options !== undefined) {
          this.options(e.options, `${ptr}/options`, LIMITS.selectOptions, true);
        } else if (this.array(e.option_groups, `${ptr}/option_groups`, LIMITS.selectOptions)) {
          (e.option_groups as unknown[]).forEach((g, i) => {
            const gp = `${ptr}/option_groups/${i}`;
            if (!isObj(g)) return this.err("must be an object", gp);
            this.text(g.label, `${gp}/label`, LIMITS.optionText, true);
            this.options(g.options, `${gp}/options`, LIMITS.selectOptions, true);
          });
        }
        break;
      case "overflow":
        this.options(e.options, `${ptr}/options`, LIMITS.overflowOptions, true, true);
        break;
      case "checkboxes":
      case "radio_buttons":
        // Their options may use mrkdwn text ([option]).
        this.options(e.options, `${ptr}/options`, 10, false);
        break;
      case "plain_text_input": {
        if (e.placeholder !== undefined) {
          this.text(e.placeholder, `${ptr}/placeholder`, LIMITS.placeholder, true);
        }
        const min = e.min_length;
        const max = e.max_length;
        if (min !== undefined && (!Number.isInteger(min) || (min as number) < 0 || (min as number) > 3000)) {
          this.err("must be an integer between 0 and 3000", `${ptr}/min_length`);
        }
        if (max !== undefined && (!Number.isInteger(max) || (max as number) < 1 || (max as number) > 3000)) {
          this.err("must be an integer between 1 and 3000", `${ptr}/max_length`);
        }
        if (typeof min === "number" && typeof max === "number" && min > max) {
          this.err("must not be greater than max_length", `${ptr}/min_length`);
        }
        this.bool(e.multiline, `${ptr}/multiline`);
        break;
      }
      case "image":
        this.str(e.alt_text, `${ptr}/alt_text`, { max: LIMITS.field, min: 1, required: true });
        if (e.image_url !== undefined) this.url(e.image_url, `${ptr}/image_url`);
        else if (e.slack_file === undefined) this.err("must provide `image_url` or `slack_file`", ptr);
        break;
    }
  }

  /** Every block of a message or view, then the rules across them (block count, unique block_id). */
  blocks(blocks: unknown, base: string): void {
    if (!Array.isArray(blocks)) return this.err("must be an array", base);
    const max = this.surface === "modal" ? LIMITS.modalBlocks : LIMITS.messageBlocks;
    if (blocks.length > max) this.err(`no more than ${max} items allowed`, base);
    blocks.forEach((b, i) => this.block(b, `${base}/${i}`));
    if (this.markdownChars > LIMITS.markdownTotal) {
      this.err(`markdown blocks must have less than ${LIMITS.markdownTotal + 1} characters in total`, base);
    }
  }

  private block(b: unknown, ptr: string): void {
    if (!isObj(b)) return this.err("must be an object", ptr);
    if (typeof b.type !== "string") return this.err("missing required field: type", ptr);
    if (!BLOCK_TYPES[this.surface].has(b.type)) return this.err(`unsupported type: ${b.type}`, `${ptr}/type`);
    if (b.block_id !== undefined && this.str(b.block_id, `${ptr}/block_id`, { max: LIMITS.id, min: 1 })) {
      // [block_id] "should be unique for each message"; Slack answers a repeat with invalid_blocks.
      const first = this.blockIds.get(b.block_id);
      if (first !== undefined) {
        this.err(`duplicate block_id "${b.block_id}", first used at ${first}`, `${ptr}/block_id`);
      } else this.blockIds.set(b.block_id, ptr);
    }
    switch (b.type) {
      case "section": {
        if (b.text === undefined && b.fields === undefined) {
          this.err("must define either `text` or `fields`", ptr);
        }
        if (b.text !== undefined) this.text(b.text, `${ptr}/text`, LIMITS.text);
        if (b.fields !== undefined && this.array(b.fields, `${ptr}/fields`, LIMITS.sectionFields)) {
          (b.fields as unknown[]).forEach((f, j) => this.text(f, `${ptr}/fields/${j}`, LIMITS.field));
        }
        if (b.accessory !== undefined) this.element(b.accessory, `${ptr}/accessory`, "accessory");
        this.bool(b.expand, `${ptr}/expand`);
        break;
      }
      case "header":
        this.text(b.text, `${ptr}/text`, LIMITS.header, true);
        break;
      case "actions": {
        if (!this.array(b.elements, `${ptr}/elements`, LIMITS.actionsElements)) break;
        const seen = new Map<string, number>();
        (b.elements as unknown[]).forEach((e, j) => {
          const p = `${ptr}/elements/${j}`;
          this.element(e, p, "actions");
          // [button] action_id "should be unique among all other action_ids in the containing block".
          if (isObj(e) && typeof e.action_id === "string") {
            const first = seen.get(e.action_id);
            if (first !== undefined) {
              this.err(
                `duplicate action_id "${e.action_id}" in this block, first used by element ${first}`,
                `${p}/action_id`,
              );
            } else seen.set(e.action_id, j);
          }
        });
        break;
      }
      case "context": {
        if (!this.array(b.elements, `${ptr}/elements`, LIMITS.contextElements)) break;
        (b.elements as unknown[]).forEach((e, j) => {
          const p = `${ptr}/elements/${j}`;
          if (isObj(e) && (e.type === "plain_text" || e.type === "mrkdwn")) this.text(e, p, LIMITS.text);
          else if (isObj(e) && e.type === "image") this.element(e, p, "accessory");
          else this.err("must be a text object or an image element", p);
        });
        break;
      }
      case "input":
        this.text(b.label, `${ptr}/label`, LIMITS.inputLabel, true);
        if (b.hint !== undefined) this.text(b.hint, `${ptr}/hint`, LIMITS.inputLabel, true);
        if (b.element === undefined) this.err("missing required field: element", ptr);
        else this.element(b.element, `${ptr}/element`, "input");
        this.bool(b.optional, `${ptr}/optional`);
        this.bool(b.dispatch_action, `${ptr}/dispatch_action`);
        break;
      case "image":
        this.str(b.alt_text, `${ptr}/alt_text`, { max: LIMITS.field, min: 1, required: true });
        if (b.image_url !== undefined) this.url(b.image_url, `${ptr}/image_url`);
        else if (b.slack_file === undefined) this.err("must provide `image_url` or `slack_file`", ptr);
        if (b.title !== undefined) this.text(b.title, `${ptr}/title`, LIMITS.field, true);
        break;
      case "markdown":
        if (this.str(b.text, `${ptr}/text`, { max: LIMITS.markdownTotal, min: 1, required: true })) {
          this.markdownChars += (b.text as string).length;
        }
        break;
      case "rich_text":
        this.array(b.elements, `${ptr}/elements`, Number.MAX_SAFE_INTEGER);
        break;
    }
  }
}

/**
 * Block Kit errors of `blocks` shown on `surface`, each as Slack words it ("… [json-pointer:/blocks/3/…]");
 * empty when Slack would accept them.
 *
 * @example
 * blockKitErrors([{ type: "header", text: { type: "mrkdwn", text: "x" } }], "message");
 * // ["must be a valid enum value: plain_text [json-pointer:/blocks/0/text/type]"]
 */
export function blockKitErrors(blocks: unknown, surface: Surface = "message", base = "/blocks"): string[] {
  const c = new Checker(surface);
  c.blocks(blocks, base);
  return c.errors;
}

/** `{ok:false, error:"invalid_blocks", errors}` as chat.* answer it. */
export function invalidBlocks(errors: string[]): SlackRefusal {
  return {
    ok: false,
    error: "invalid_blocks",
    errors,
    response_metadata: { messages: errors.map((e) => `[ERROR] ${e}`) },
  };
}

/** What a chat.postMessage / chat.update / chat.postEphemeral / response_url body carries. */
export interface MessageContent {
  text?: unknown;
  blocks?: unknown;
  attachments?: unknown;
  metadata?: unknown;
}

/**
 * What Slack answers a message's content: undefined when it is accepted, else the refusal. `requireContent`:
 * chat.postMessage and chat.postEphemeral need text, blocks or attachments ("no_text"); chat.update takes
 * any one field and keeps the others.
 */
export function validateMessage(
  m: MessageContent,
  opts: { requireContent?: boolean } = {},
): SlackRefusal | undefined {
  const { text, blocks } = m;
  if (text !== undefined && typeof text !== "string") return { ok: false, error: "invalid_arguments" };
  if (blocks !== undefined && !Array.isArray(blocks)) return { ok: false, error: "invalid_blocks_format" };
  const hasText = typeof text === "string" && text.length > 0;
  const hasBlocks = Array.isArray(blocks) && blocks.length > 0;
  const hasAttachments = Array.isArray(m.attachments) && m.attachments.length > 0;
  if ((opts.requireContent ?? true) && !hasText && !hasBlocks && !hasAttachments) {
    return { ok: false, error: "no_text" };
  }
  // The chat.postMessage reference says text past 40,000 characters risks truncation; chat.update and
  // chat.postEphemeral document msg_too_long. Refused everywhere so the bot stays under the limit.
  if (typeof text === "string" && text.length > LIMITS.messageText) {
    return { ok: false, error: "msg_too_long" };
  }
  if (m.metadata !== undefined) {
    // [postMessage] metadata "must contain event_type and event_payload".
    const md = m.metadata;
    if (
      !isObj(md) || typeof md.event_type !== "string" || !/^[a-zA-Z0-9_]{1,255}$/.test(md.event_type) ||
      !isObj(md.event_payload)
    ) {
      return { ok: false, error: "invalid_metadata_format" };
    }
  }
  if (Array.isArray(blocks)) {
    const errors = blockKitErrors(blocks, "message");
    if (errors.length) return invalidBlocks(errors);
  }
  return undefined;
}

/**
 * What views.open / views.update answer a modal view: undefined when accepted, else `invalid_arguments`
 * with Slack's sentences in `response_metadata.messages` (views.* do not use invalid_blocks).
 */
export function validateView(view: unknown): SlackRefusal | undefined {
  if (!isObj(view)) return { ok: false, error: "invalid_arguments" };
  const c = new Checker("modal");
  if (view.type !== "modal") c.err("must be a valid enum value: modal", "/view/type");
  // [modal] title required, plain_text, 24; close and submit plain_text, 24.
  c.text(view.title, "/view/title", LIMITS.modalText, true);
  if (view.close !== undefined) c.text(view.close, "/view/close", LIMITS.modalText, true);
  if (view.submit !== undefined) c.text(view.submit, "/view/submit", LIMITS.modalText, true);
  c.blocks(view.blocks, "/view/blocks");
  if (
    view.submit === undefined && Array.isArray(view.blocks) &&
    view.blocks.some((b) => isObj(b) && b.type === "input")
  ) {
    c.err("submit is required when an input block is within the blocks array", "/view/submit");
  }
  const lim: [string, number][] = [["private_metadata", LIMITS.privateMetadata], ["callback_id", LIMITS.id], [
    "external_id",
    LIMITS.id,
  ]];
  for (const [k, max] of lim) {
    const v = view[k];
    if (v === undefined) continue;
    if (typeof v !== "string") c.err("must be a string", `/view/${k}`);
    else if (v.length > max) c.err(`must be less than ${max + 1} characters`, `/view/${k}`);
  }
  if (!c.errors.length) return undefined;
  return {
    ok: false,
    error: "invalid_arguments",
    response_metadata: { messages: c.errors.map((e) => `[ERROR] ${e}`) },
  };
}
