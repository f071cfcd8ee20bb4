// The sandbox console: renders #ops from the Slack stand-in's state as the selected user sees it, and
// sends slash commands, button clicks and modal submissions as that user. Plain JS, no build step.
"use strict";

const state = {
  meta: null,
  user: localStorage.getItem("bisman-sandbox-user") || "",
  feed: { version: -1, entries: [], dm: { entries: [] }, modals: [] },
  view: "channel", // "channel" (#ops) or "dm" (the bot's direct messages with the acting person)
  dmSeen: {}, // user → newest DM ts they have looked at (for the unread badge)
  thread: null, // ts of the open thread
  completionIndex: 0,
  shownModal: "", // key of the modal on screen, so typing is not lost on refresh
  pollAbort: null,
};

const $ = (sel) => document.querySelector(sel);

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") node.className = v;
    else if (k === "html") node.innerHTML = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

// --- mrkdwn -----------------------------------------------------------------------------------

// Slack draws emoji as images. The console keeps a small explicit table (emoji.json, loaded at start): every
// code the bot's messages use (tests/sandbox/console_emoji_test.ts fails when the bot uses one the table lacks)
// and some common ones. A library (e.g. an emoji-name package with thousands of entries, or image sets) would
// be far larger than the page and still need a colour emoji font, which this machine and many servers lack:
// so the codes the bot uses are drawn with CSS ("dot", "shape") or with symbols ordinary fonts have ("glyph");
// the common extras are Unicode characters ("char"), shown where a colour emoji font exists and otherwise left
// as their code rather than as empty boxes. An unknown code stays as typed, :like_this:, as Slack shows a code
// it does not know.
let EMOJI_TABLE = {};
let COLOUR_EMOJI = false;

/** Whether the browser draws emoji in colour: a colour emoji font paints pixels that are not grey. */
function colourEmojiFont() {
  try {
    const ctx = document.createElement("canvas").getContext("2d", { willReadFrequently: true });
    ctx.canvas.width = ctx.canvas.height = 32;
    ctx.font = '24px "Noto Color Emoji", "Apple Color Emoji", "Segoe UI Emoji", sans-serif';
    ctx.textBaseline = "top";
    ctx.fillText("\u{1F525}", 2, 2);
    const px = ctx.getImageData(0, 0, 32, 32).data;
    for (let i = 0; i < px.length; i += 4) {
      if (px[i + 3] > 0 && (Math.abs(px[i] - px[i + 1]) > 30 || Math.abs(px[i + 1] - px[i + 2]) > 30)) {
        return true;
      }
    }
  } catch {
    // no canvas: assume no emoji font
  }
  return false;
}

/** An emoji by name, as HTML: drawn, or its character, or `whole` (the code as typed) when unknown. */
function emoji(name, whole) {
  const e = Object.hasOwn(EMOJI_TABLE, name) ? EMOJI_TABLE[name] : undefined;
  if (!Array.isArray(e)) return whole;
  const [kind, a = "", b = ""] = e;
  const label = escapeHtml(name.replace(/_/g, " "));
  const attrs = `data-emoji="${escapeHtml(name)}" title=":${
    escapeHtml(name)
  }:" role="img" aria-label="${label}"`;
  if (kind === "dot") {
    return `<span class="emoji dot ${escapeHtml(b)}" style="--c:${escapeHtml(a)}" ${attrs}></span>`;
  }
  if (kind === "shape") return `<span class="emoji ${escapeHtml(a)}" ${attrs}>${escapeHtml(b)}</span>`;
  if (kind === "glyph") return `<span class="emoji glyph ${escapeHtml(b)}" ${attrs}>${escapeHtml(a)}</span>`;
  if (kind === "char") {
    return COLOUR_EMOJI ? `<span class="emoji char" ${attrs}>${escapeHtml(a)}</span>` : whole;
  }
  return whole;
}

function escapeHtml(s) {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
}

/** Slack's three escapes back to characters (Slack text arrives with &amp; &lt; &gt;). */
function unescapeSlack(s) {
  return s.replace(/&lt;/g, "<").replace(/&gt;/g, ">").replace(/&amp;/g, "&");
}

function userName(id) {
  const u = state.meta?.users.find((x) => x.id === id);
  return u ? u.name : id;
}

/** Formats an escaped text run: bold, italic, strike, emoji. */
function inline(s) {
  // \uE000n\uE001 (private-use characters) marks a code span or link put back afterwards;
  // it counts as a word boundary here.
  const open = "(^|[\\s(\\[\\uE001])";
  const close = "(?=$|[\\s.,;:!?)\\]\\uE000])";
  return s
    .replace(new RegExp(`${open}\\*([^*\\n]+?)\\*${close}`, "g"), "$1<b>$2</b>")
    .replace(new RegExp(`${open}_([^\\n]+?)_${close}`, "g"), "$1<i>$2</i>")
    .replace(new RegExp(`${open}~([^~\\n]+?)~${close}`, "g"), "$1<s>$2</s>")
    .replace(/:([a-z0-9_+\-]+):/g, (m, name) => emoji(name, m));
}

/** A `<…>` sequence: link, channel, user, special mention or date. */
function special(inner) {
  const [target, label] = inner.split("|", 2);
  if (target.startsWith("#C") || target.startsWith("#G")) {
    const name = label ||
      (target.slice(1) === state.meta?.channel.id ? state.meta.channel.name : target.slice(1));
    return `<span class="mention">#${escapeHtml(unescapeSlack(name))}</span>`;
  }
  if (target.startsWith("@U") || target.startsWith("@W")) {
    return `<span class="mention">@${escapeHtml(label || userName(target.slice(1)))}</span>`;
  }
  if (target.startsWith("!subteam^")) {
    return `<span class="mention">@${escapeHtml(unescapeSlack(label || target.slice(9)))}</span>`;
  }
  if (target.startsWith("!date^")) {
    const [, secs] = target.split("^");
    const when = new Date(Number(secs) * 1000);
    return escapeHtml(Number.isNaN(when.getTime()) ? unescapeSlack(label || "") : when.toLocaleString());
  }
  if (target.startsWith("!")) return `<span class="mention">@${escapeHtml(target.slice(1))}</span>`;
  const href = unescapeSlack(target);
  const safe = /^(https?:|mailto:)/i.test(href) ? href : "#";
  return `<a href="${escapeHtml(safe)}" target="_blank" rel="noopener">${
    escapeHtml(unescapeSlack(label || target))
  }</a>`;
}

/** Slack mrkdwn to HTML. Everything is escaped first; only known constructs become markup. */
function mrkdwn(text) {
  const out = [];
  // Code blocks first: nothing inside them is formatted.
  const parts = String(text).split(/```/);
  parts.forEach((part, i) => {
    if (i % 2 === 1) {
      out.push(`<pre>${escapeHtml(unescapeSlack(part.replace(/^\n/, "")))}</pre>`);
      return;
    }
    const lines = part.split("\n").map((line) => {
      let quote = false;
      if (line.startsWith("&gt; ") || line.startsWith("> ")) {
        quote = true;
        line = line.replace(/^(&gt;|>) /, "");
      }
      // Code spans and <…> sequences are set aside, so formatting can span them (*bold `code` text*) but
      // never reach inside them.
      const kept = [];
      const rest = line.replace(/`([^`\n]+)`|<([^<>\n]+)>/g, (_m, code, sp) => {
        kept.push(code !== undefined ? `<code>${escapeHtml(unescapeSlack(code))}</code>` : special(sp));
        return `\uE000${kept.length - 1}\uE001`;
      });
      const html = inline(escapeHtml(unescapeSlack(rest))).replace(
        /\uE000(\d+)\uE001/g,
        (_m, i) => kept[Number(i)],
      );
      return quote ? `<blockquote>${html}</blockquote>` : html;
    });
    out.push(lines.join("<br>").replace(/<\/blockquote><br>/g, "</blockquote>"));
  });
  return out.join("");
}

function textObject(t) {
  if (!t) return el("span");
  if (t.type === "mrkdwn") return el("div", { class: "mrkdwn", html: mrkdwn(t.text ?? "") });
  const escaped = escapeHtml(t.text ?? "");
  const plain = t.emoji === false ? escaped : escaped.replace(/:([a-z0-9_+\-]+):/g, (m, n) => emoji(n, m));
  return el("span", { html: plain });
}

/** Plain text for places that take no markup (button labels, titles): emoji become their symbol. */
function plainText(t) {
  if (!t) return "";
  return String(t.text ?? "").replace(/:([a-z0-9_+\-]+):/g, (m, n) => {
    const html = emoji(n, m);
    return html.startsWith("<") ? html.replace(/<[^>]*>/g, "") || "●" : html;
  });
}

// --- Block Kit ----------------------------------------------------------------------------------

/** Renders an interactive element; `ctx` knows where a click goes. */
function element(e, ctx, blockId) {
  if (e.type === "button") {
    const b = el("button", {
      type: "button",
      class: `btn ${e.style ?? ""}`,
      "data-action-id": e.action_id,
      onclick: () => clickButton(e, ctx, blockId, b),
    }, plainText(e.text));
    if (e.url) {
      b.title = e.url;
    }
    return b;
  }
  if (e.type === "static_select" || e.type === "overflow") {
    const options = e.options ?? e.option_groups?.flatMap((g) => g.options) ?? [];
    const select = el(
      "select",
      {
        class: "element",
        "data-action-id": e.action_id,
        onchange: (ev) => {
          const opt = options[Number(ev.target.value)];
          if (opt) sendAction(ctx, { action_id: e.action_id, block_id: blockId, value: opt.value });
        },
      },
      el("option", { value: "" }, e.type === "overflow" ? "⋯" : plainText(e.placeholder) || "Choose…"),
      options.map((o, i) => el("option", { value: String(i) }, plainText(o.text))),
    );
    return select;
  }
  if (e.type === "image") return el("span", { class: "block-image" }, `[image: ${e.alt_text ?? ""}]`);
  return el("span", { class: "muted" }, `[${e.type}]`);
}

function renderBlocks(blocks, ctx) {
  const wrap = el("div", { class: "blocks" });
  for (const b of blocks ?? []) {
    let node;
    switch (b.type) {
      case "header":
        // plain_text, with emoji drawn like Slack's (a header is where the state's emoji sits).
        node = el("div", { class: "block block-header" }, textObject({ ...b.text, type: "plain_text" }));
        break;
      case "section": {
        const main = el("div", { class: "section-main" });
        if (b.text) main.append(textObject(b.text));
        if (b.fields?.length) main.append(el("div", { class: "fields" }, b.fields.map(textObject)));
        node = el("div", { class: "block block-section" }, main);
        if (b.accessory) node.append(element(b.accessory, ctx, b.block_id));
        break;
      }
      case "context":
        node = el(
          "div",
          { class: "block block-context" },
          (b.elements ?? []).map((e) =>
            e.type === "image" ? el("span", {}, `[${e.alt_text ?? "image"}]`) : textObject(e)
          ),
        );
        break;
      case "divider":
        node = el("hr", { class: "block-divider" });
        break;
      case "actions":
        node = el(
          "div",
          { class: "block block-actions" },
          (b.elements ?? []).map((e) => element(e, ctx, b.block_id)),
        );
        break;
      case "image":
        node = el("div", { class: "block block-image" }, `[image: ${b.alt_text ?? ""}]`);
        break;
      case "markdown":
        node = el("div", { class: "block mrkdwn", html: mrkdwn(b.text ?? "") });
        break;
      case "rich_text":
        node = el("div", { class: "block" }, richText(b));
        break;
      case "input":
        node = inputBlock(b, ctx?.modalErrors ?? {});
        break;
      default:
        node = el("div", { class: "block muted" }, `[${b.type} block]`);
    }
    wrap.append(node);
  }
  return wrap;
}

function richText(b) {
  const html = (b.elements ?? []).map((sec) =>
    (sec.elements ?? []).map((e) => {
      if (e.type === "emoji") return emoji(e.name ?? "", `:${escapeHtml(e.name ?? "")}:`);
      if (e.type === "user") return escapeHtml(`@${userName(e.user_id)}`);
      return escapeHtml(e.text ?? "");
    }).join("")
  ).join("\n");
  return el("div", { class: "mrkdwn", html: html.replace(/\n/g, "<br>") });
}

function inputBlock(b, errors) {
  const e = b.element ?? {};
  const id = `in-${b.block_id}`;
  let field;
  if (e.type === "plain_text_input") {
    const attrs = {
      id,
      "data-block-id": b.block_id,
      "data-action-id": e.action_id,
      "data-type": e.type,
      placeholder: plainText(e.placeholder),
    };
    field = e.multiline ? el("textarea", { ...attrs, rows: 3 }) : el("input", { ...attrs, type: "text" });
    if (e.initial_value) field.value = e.initial_value;
  } else if (e.type === "static_select") {
    field = el(
      "select",
      { id, "data-block-id": b.block_id, "data-action-id": e.action_id, "data-type": e.type },
      el("option", { value: "" }, plainText(e.placeholder) || "Choose…"),
      (e.options ?? []).map((o) => el("option", { value: o.value }, plainText(o.text))),
    );
  } else {
    field = el("div", { class: "muted" }, `[${e.type}]`);
  }
  return el(
    "div",
    { class: "input-block" },
    el(
      "label",
      { for: id },
      plainText(b.label),
      b.optional ? el("span", { class: "muted" }, " (optional)") : "",
    ),
    field,
    b.hint ? el("div", { class: "hint" }, plainText(b.hint)) : "",
    errors[b.block_id] ? el("div", { class: "error" }, errors[b.block_id]) : "",
  );
}

// --- messages -------------------------------------------------------------------------------

const EYE = '<svg width="14" height="14" viewBox="0 0 24 24" aria-hidden="true"><path fill="currentColor" ' +
  'd="M12 5C6.5 5 2.7 9.3 1.5 12c1.2 2.7 5 7 10.5 7s9.3-4.3 10.5-7C21.3 9.3 17.5 5 12 5zm0 11.5a4.5 4.5 0 1 1 0-9 ' +
  '4.5 4.5 0 0 1 0 9zm0-2.5a2 2 0 1 0 0-4 2 2 0 0 0 0 4z"/></svg>';

function colorOf(id) {
  const u = state.meta?.users.find((x) => x.id === id);
  return u?.color ?? "#4a154b";
}

function timeOf(ts) {
  const d = new Date(Number(ts) * 1000);
  return d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
}

function renderEntry(entry, { inThread = false } = {}) {
  const isBot = entry.author === "bot";
  const name = isBot ? "bisman-ops" : userName(entry.author);
  const avatar = el(
    "div",
    { class: "avatar", style: `background:${isBot ? "#4a154b" : colorOf(entry.author)}` },
    isBot ? "B" : name.slice(0, 1).toUpperCase(),
  );
  const ctx = { source: entry.source, thread_ts: entry.thread_ts };
  const body = el(
    "div",
    { class: "msg-body" },
    el(
      "div",
      { class: "msg-meta" },
      el("span", { class: "msg-name" }, name),
      isBot ? el("span", { class: "app-badge" }, "APP") : "",
      el("span", { class: "msg-time" }, timeOf(entry.ts)),
      entry.edited ? el("span", { class: "edited" }, "(edited)") : "",
    ),
  );
  if (entry.blocks?.length) body.append(renderBlocks(entry.blocks, ctx));
  else if (entry.text) body.append(el("div", { class: "msg-text mrkdwn", html: mrkdwn(entry.text) }));
  if (entry.file) body.append(fileCard(entry.file));
  if (entry.ephemeral) body.append(el("div", { class: "only-you", html: `${EYE} Only visible to you` }));
  if (!inThread && entry.replies > 0) {
    body.append(el("button", {
      type: "button",
      class: "replies",
      "data-thread": entry.ts,
      onclick: () => openThread(entry.ts),
    }, `${entry.replies} ${entry.replies === 1 ? "reply" : "replies"}`));
  }
  const cls = ["msg", entry.ephemeral ? "ephemeral" : "", entry.kind === "command" ? "command" : ""].join(
    " ",
  );
  return el("div", { class: cls, "data-ts": entry.ts, "data-key": entry.key }, avatar, body);
}

/** Size as Slack shows it: 683 B, 66.6 KB. */
function formatSize(n) {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KB`;
  return `${(n / 1024 / 1024).toFixed(1)} MB`;
}

/** A shared file: its name, size and where it was shared, and a link that downloads its bytes. */
function fileCard(f) {
  const href = `/api/files/${encodeURIComponent(f.id)}?user=${encodeURIComponent(state.user)}`;
  const ext = (/\.([a-z0-9]{1,5})$/i.exec(f.name)?.[1] ?? "file").toUpperCase();
  return el(
    "div",
    { class: "file-card", "data-file-id": f.id, "data-file-name": f.name },
    el("div", { class: "file-icon", "aria-hidden": "true" }, ext),
    el(
      "div",
      { class: "file-info" },
      el("a", { class: "file-name", href, download: f.name }, f.title),
      el("div", { class: "file-meta" }, `${f.name} · ${formatSize(f.size)} · shared in ${f.where}`),
    ),
    el(
      "a",
      { class: "btn file-download", href, download: f.name, "aria-label": `Download ${f.name}` },
      "Download",
    ),
  );
}

/** The entries of the conversation on screen. */
function currentEntries() {
  return state.view === "dm" ? state.feed.dm?.entries ?? [] : state.feed.entries;
}

const EMPTY = {
  channel: "Nothing here yet. Type /bisman help below, or make some trouble.",
  dm: "No direct messages yet. Files the bot sends you (/bisman audit … format=csv, /bisman audit-log " +
    "export) and answers it could not post in #ops appear here, to you alone.",
};

function renderFeed() {
  const feed = $("#feed");
  const atBottom = feed.scrollHeight - feed.scrollTop - feed.clientHeight < 40;
  const top = currentEntries().filter((e) => !e.thread_ts || e.thread_ts === e.ts);
  feed.replaceChildren(
    ...(top.length ? top.map((e) => renderEntry(e)) : [el("div", { class: "empty" }, EMPTY[state.view])]),
  );
  if (state.view === "dm") markDmSeen();
  renderUnread();
  if (atBottom || state.scrollToEnd) {
    feed.scrollTop = feed.scrollHeight;
    state.scrollToEnd = false;
  }
  renderThread();
}

function openThread(ts) {
  state.thread = ts;
  renderThread();
}

function closeThread() {
  state.thread = null;
  renderThread();
}

function renderThread() {
  const pane = $("#thread");
  if (!state.thread) {
    pane.hidden = true;
    document.body.classList.remove("thread-open");
    return;
  }
  const entries = currentEntries();
  const parent = entries.find((e) => e.ts === state.thread);
  const replies = entries.filter((e) => e.thread_ts === state.thread && e.ts !== state.thread);
  pane.hidden = false;
  // Below a wide screen the thread takes the channel's place (style.css), as in Slack's narrow layouts.
  document.body.classList.add("thread-open");
  $("#thread-where").textContent = state.view === "dm" ? "bisman-ops" : `# ${state.meta.channel.name}`;
  const feed = $("#thread-feed");
  const atBottom = feed.scrollHeight - feed.scrollTop - feed.clientHeight < 40;
  feed.replaceChildren(
    ...(parent ? [renderEntry(parent, { inThread: true })] : []),
    el("div", { class: "thread-divider" }, `${replies.length} ${replies.length === 1 ? "reply" : "replies"}`),
    ...replies.map((e) => renderEntry(e, { inThread: true })),
  );
  if (atBottom) feed.scrollTop = feed.scrollHeight;
}

// --- conversations: #ops and the direct messages with the bot -----------------------------------

function newestDmTs() {
  return (state.feed.dm?.entries ?? []).reduce((m, e) => Math.max(m, Number(e.ts)), 0);
}

function markDmSeen() {
  state.dmSeen[state.user] = Math.max(state.dmSeen[state.user] ?? 0, newestDmTs());
}

function renderUnread() {
  const seen = state.dmSeen[state.user] ?? 0;
  const n = (state.feed.dm?.entries ?? []).filter((e) => Number(e.ts) > seen).length;
  const badge = $("#dm-unread");
  badge.hidden = n === 0 || state.view === "dm";
  badge.textContent = String(n);
}

function selectView(view) {
  if (view !== "channel" && view !== "dm") return;
  state.view = view;
  state.thread = null;
  for (const b of document.querySelectorAll("[data-view]")) {
    const on = b.getAttribute("data-view") === view;
    b.classList.toggle("active", on);
    if (on) b.setAttribute("aria-current", "page");
    else b.removeAttribute("aria-current");
  }
  const ch = state.meta.channel.name;
  $("#conversation-title").textContent = view === "dm" ? "bisman-ops" : `# ${ch}`;
  $("#conversation-topic").innerHTML = view === "dm"
    ? `Direct messages with the bot: files and answers for you alone. Commands still run in #${
      escapeHtml(ch)
    }.`
    : `PostgreSQL runbook of BISMAN ERP: <code>/bisman help</code> to start`;
  $("#command").placeholder = view === "dm" ? `/bisman help (runs in #${ch})` : "/bisman help";
  document.body.dataset.view = view;
  state.scrollToEnd = true;
  renderFeed();
}

// --- actions ----------------------------------------------------------------------------------

async function api(path, body) {
  const res = await fetch(path, {
    method: body === undefined ? "GET" : "POST",
    headers: body === undefined ? {} : { "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  let data;
  try {
    data = text ? JSON.parse(text) : {};
  } catch {
    data = { error: text };
  }
  if (!res.ok) throw new Error(data.error ?? `HTTP ${res.status}`);
  return data;
}

function clickButton(e, ctx, blockId, button) {
  const send = () => {
    button.disabled = true;
    sendAction(ctx, { action_id: e.action_id, block_id: blockId, value: e.value ?? "" })
      .finally(() => (button.disabled = false));
  };
  if (e.confirm) confirmDialog(e.confirm, send);
  else send();
}

async function sendAction(ctx, action) {
  try {
    await api("/api/action", { user: state.user, source: ctx.source, thread_ts: ctx.thread_ts, ...action });
    poke();
  } catch (err) {
    flash(`Could not send the click: ${err.message}`);
  }
}

function confirmDialog(c, onConfirm) {
  const overlay = $("#overlay");
  const close = () => {
    overlay.hidden = true;
    overlay.replaceChildren();
  };
  const dialog = el(
    "div",
    { class: "dialog", role: "dialog", "aria-modal": "true", "data-kind": "confirm" },
    el("header", {}, plainText(c.title) || "Are you sure?"),
    el("div", { class: "dialog-body" }, textObject(c.text)),
    el(
      "footer",
      {},
      el("button", { type: "button", class: "btn", onclick: close }, plainText(c.deny) || "Cancel"),
      el("button", {
        type: "button",
        class: `btn ${c.style === "danger" ? "danger" : "primary"}`,
        "data-confirm": "yes",
        onclick: () => {
          close();
          onConfirm();
        },
      }, plainText(c.confirm) || "Yes"),
    ),
  );
  overlay.replaceChildren(dialog);
  overlay.hidden = false;
}

function renderModal() {
  const overlay = $("#overlay");
  const modal = state.feed.modals.at(-1);
  if (overlay.querySelector('[data-kind="confirm"]')) return;
  const key = modal ? `${modal.id}:${modal.hash}:${JSON.stringify(modal.errors ?? {})}` : "";
  if (key === state.shownModal) return;
  state.shownModal = key;
  if (!modal) {
    overlay.hidden = true;
    overlay.replaceChildren();
    return;
  }
  const v = modal.view;
  const ctx = { source: { type: "view", id: modal.id }, modalErrors: modal.errors ?? {} };
  const form = el("form", { class: "dialog", role: "dialog", "aria-modal": "true", "data-kind": "modal" });
  form.append(
    el(
      "header",
      {},
      plainText(v.title) || "bisman-ops",
      el("button", {
        type: "button",
        class: "btn link",
        "aria-label": "Close",
        onclick: () => closeModal(modal),
      }, "×"),
    ),
    el("div", { class: "dialog-body" }, renderBlocks(v.blocks, ctx)),
    el(
      "footer",
      {},
      el(
        "button",
        { type: "button", class: "btn", onclick: () => closeModal(modal) },
        plainText(v.close) || "Cancel",
      ),
      v.submit ? el("button", { type: "submit", class: "btn primary" }, plainText(v.submit)) : "",
    ),
  );
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    submitModal(modal, form);
  });
  overlay.replaceChildren(form);
  overlay.hidden = false;
  form.querySelector("input,textarea,select")?.focus();
}

async function submitModal(modal, form) {
  const values = {};
  for (const f of form.querySelectorAll("[data-block-id]")) {
    const block = f.getAttribute("data-block-id");
    const action = f.getAttribute("data-action-id");
    const type = f.getAttribute("data-type");
    values[block] ??= {};
    values[block][action] = type === "static_select"
      ? {
        type,
        selected_option: f.value ? { value: f.value, text: { type: "plain_text", text: f.value } } : null,
      }
      : { type, value: f.value };
  }
  try {
    await api("/api/view", { user: state.user, id: modal.id, values });
    poke();
  } catch (err) {
    flash(`Could not submit: ${err.message}`);
  }
}

async function closeModal(modal) {
  await api("/api/view/close", { user: state.user, id: modal.id }).catch(() => {});
  poke();
}

function flash(text) {
  const f = el("div", { class: "flash" }, text);
  $("#feed").append(f);
  setTimeout(() => f.remove(), 6000);
}

// --- composer and completion -------------------------------------------------------------------

function completions() {
  const value = $("#command").value;
  const subs = state.meta?.subcommands ?? [];
  const m = /^\/(b(i(s(m(a(n)?)?)?)?)?)?$/.exec(value);
  if (value.startsWith("/") && m) return [{ insert: "/bisman ", usage: "/bisman", summary: "bisman-ops" }];
  const sm = /^\/bisman\s+([a-z-]*)$/.exec(value);
  if (!sm) return [];
  return subs
    .filter((s) => s.name.startsWith(sm[1]) && s.name !== sm[1])
    .map((s) => ({ insert: `/bisman ${s.name} `, usage: s.usage, summary: s.summary, tag: s.destructive }));
}

function renderCompletions() {
  const list = completions();
  const box = $("#completions");
  if (!list.length) {
    box.hidden = true;
    return;
  }
  state.completionIndex = Math.min(state.completionIndex, list.length - 1);
  box.replaceChildren(...list.map((c, i) =>
    el(
      "div",
      {
        class: `completion ${i === state.completionIndex ? "active" : ""}`,
        role: "option",
        onmousedown: (ev) => {
          ev.preventDefault();
          applyCompletion(c);
        },
      },
      el("span", { class: "usage" }, c.usage),
      c.tag ? el("span", { class: "tag" }, "needs approval") : "",
      el("span", { class: "summary" }, c.summary),
    )
  ));
  box.hidden = false;
}

function applyCompletion(c) {
  const input = $("#command");
  input.value = c.insert;
  state.completionIndex = 0;
  input.focus();
  renderCompletions();
}

async function sendCommand(text) {
  let line = text.trim();
  if (!line) return;
  if (!line.startsWith("/")) line = `/bisman ${line}`;
  const m = /^\/bisman(?:\s+([\s\S]*))?$/.exec(line);
  if (!m) {
    flash(`Only /bisman is installed in this workspace.`);
    return;
  }
  $("#command").value = "";
  renderCompletions();
  // Commands run in #ops, where their answers appear.
  if (state.view !== "channel") selectView("channel");
  state.scrollToEnd = true;
  try {
    await api("/api/command", { user: state.user, text: (m[1] ?? "").trim() });
    poke();
  } catch (err) {
    flash(`Could not send the command: ${err.message}`);
  }
}

// --- users and trouble -------------------------------------------------------------------------

function renderUsers() {
  const list = $("#user-list");
  list.replaceChildren(...state.meta.users.map((u) =>
    el(
      "button",
      {
        type: "button",
        role: "radio",
        "aria-checked": String(u.id === state.user),
        class: `user-option ${u.id === state.user ? "selected" : ""}`,
        "data-user": u.name,
        onclick: () => selectUser(u.id),
      },
      el("span", { class: "avatar small", style: `background:${u.color}` }, u.name.slice(0, 1).toUpperCase()),
      el("span", {}, u.name, el("span", { class: "role" }, u.role)),
    )
  ));
  const me = state.meta.users.find((u) => u.id === state.user);
  $("#acting-name").textContent = me?.name ?? "?";
  $("#acting-role").textContent = me ? `(${me.role})` : "";
}

function selectUser(id) {
  state.user = id;
  localStorage.setItem("bisman-sandbox-user", id);
  state.shownModal = "";
  renderUsers();
  state.feed.version = -1;
  restartPoll();
}

function renderTrouble() {
  const list = $("#trouble-list");
  list.replaceChildren(...state.meta.trouble.map((t) =>
    el(
      "div",
      { class: "trouble-item" },
      el("button", {
        type: "button",
        "data-trouble": t.id,
        disabled: !t.enabled,
        title: t.description,
        onclick: () => makeTrouble(t),
      }, t.label),
      t.enabled ? "" : el("div", { class: "why" }, t.reason),
    )
  ));
}

async function makeTrouble(t) {
  const out = $("#trouble-result");
  out.className = "trouble-result";
  out.textContent = `${t.label}…`;
  try {
    const r = await api(`/api/trouble/${t.id}`, { user: state.user });
    out.textContent = r.message;
    if (r.meta) {
      state.meta = r.meta;
      renderTrouble();
    }
    poke();
  } catch (err) {
    out.className = "trouble-result error";
    out.textContent = err.message;
  }
}

// --- live updates: long poll -------------------------------------------------------------------

let wake = null;
function poke() {
  wake?.();
}

function restartPoll() {
  state.pollAbort?.abort();
}

async function pollLoop() {
  for (;;) {
    const ctrl = new AbortController();
    state.pollAbort = ctrl;
    try {
      const user = state.user;
      const since = document.body.dataset.feedUser === user ? state.feed.version : -1;
      const res = await fetch(`/api/feed?user=${encodeURIComponent(user)}&since=${since}`, {
        signal: ctrl.signal,
      });
      if (res.ok) {
        const data = await res.json();
        if (user !== state.user) continue; // switched while waiting: ask again for the new user
        if (data.version !== state.feed.version || document.body.dataset.feedUser !== user) {
          state.feed = data;
          renderFeed();
          renderModal();
          document.body.dataset.version = String(data.version);
          // Whose view is on screen (the browser test waits on it after switching users).
          document.body.dataset.feedUser = user;
        }
        continue;
      }
    } catch {
      // aborted (user switched) or the sandbox is restarting: retry shortly
    }
    await new Promise((r) => {
      wake = r;
      setTimeout(r, 1000);
    });
  }
}

async function main() {
  state.meta = await api("/api/meta");
  if (!state.meta.users.some((u) => u.id === state.user)) state.user = state.meta.users[0].id;
  EMOJI_TABLE = await api("/emoji.json");
  COLOUR_EMOJI = colourEmojiFont();
  document.body.dataset.colourEmoji = String(COLOUR_EMOJI);
  $("#channel-name").textContent = state.meta.channel.name;
  for (const b of document.querySelectorAll("[data-view]")) {
    b.addEventListener("click", () => selectView(b.getAttribute("data-view")));
  }
  // On a narrow screen the trouble panel starts folded, so the channel keeps the screen (style.css).
  if (matchMedia("(max-width: 760px)").matches) $("#trouble-box").open = false;
  selectView("channel");
  renderUsers();
  renderTrouble();
  const input = $("#command");
  input.addEventListener("input", () => {
    state.completionIndex = 0;
    renderCompletions();
  });
  input.addEventListener("keydown", (ev) => {
    const list = completions();
    if (ev.key === "Tab" && list.length) {
      ev.preventDefault();
      applyCompletion(list[state.completionIndex] ?? list[0]);
    } else if (ev.key === "ArrowDown" && list.length) {
      ev.preventDefault();
      state.completionIndex = (state.completionIndex + 1) % list.length;
      renderCompletions();
    } else if (ev.key === "ArrowUp" && list.length) {
      ev.preventDefault();
      state.completionIndex = (state.completionIndex - 1 + list.length) % list.length;
      renderCompletions();
    } else if (ev.key === "Escape") {
      $("#completions").hidden = true;
    }
  });
  input.addEventListener("blur", () => setTimeout(() => ($("#completions").hidden = true), 100));
  $("#composer").addEventListener("submit", (ev) => {
    ev.preventDefault();
    sendCommand(input.value);
  });
  $("#thread-close").addEventListener("click", closeThread);
  document.body.dataset.ready = "true";
  input.focus();
  pollLoop();
}

main().catch((err) => {
  document.body.textContent = `The console could not start: ${err.message}`;
});
