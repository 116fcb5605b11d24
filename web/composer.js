// The composer (the message box, its Send button and the hint above it) and the reply on its
// way below the messages: "Thinking…" while a send waits, then the reply as the agent writes it.

import { el, show } from "./dom.js";
import { renderMarkdown } from "./markdown.js";

// A hint above the composer in sessions of other channels (a web session needs none).
const COMPOSER_HINTS = {
  telegram: "Replies here are also sent to your Telegram chat.",
  scheduled: "Writing here continues this scheduled run's conversation.",
};
const NEWER_HIDDEN_HINT = "Jump to the latest messages to write in this session.";

/**
 * Wire the composer: Enter sends (Shift+Enter, a modifier or an input method composing makes a
 * new line), and the box grows with its text.
 */
export function wireComposer({ form, composer }, onSend) {
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    onSend();
  });
  composer.addEventListener("keydown", (event) => {
    if (event.key !== "Enter" || event.shiftKey || event.isComposing) return;
    if (event.altKey || event.ctrlKey || event.metaKey) return;
    event.preventDefault();
    form.requestSubmit();
  });
  composer.addEventListener("input", () => fitComposer(composer));
}

export function fitComposer(composer) {
  composer.style.height = "auto";
  composer.style.height = `${composer.scrollHeight}px`;
}

/**
 * The composer's state. `channel`: the open session's (null: none loaded yet); `newerHidden`:
 * opened at a search hit with newer messages not shown, so nothing can be written yet.
 */
export function renderComposer(
  { composer, send, composerHint },
  { writable, sending, newSession, channel, newerHidden },
) {
  composer.disabled = !writable;
  send.disabled = !writable || sending;
  send.textContent = sending ? "Sending…" : "Send";
  const hint = newerHidden ? NEWER_HIDDEN_HINT : channel ? COMPOSER_HINTS[channel] : null;
  composerHint.textContent = hint || "";
  show(composerHint, Boolean(hint));
  composer.placeholder = newSession ? "Start a new session…" : "Write a message…";
}

/** The reply on its way, kept below the messages of `list` until the stored one arrives. */
export class ReplyOnItsWay {
  constructor(list) {
    this.list = list;
    this.typing = null; // the "Thinking…" line while a send waits
    this.draft = null; // the reply being written (REPLY_PROGRESS)
  }

  thinking() {
    this.typing = el("li", { class: "typing", "data-testid": "reply-pending" }, "Thinking…");
    this.list.append(this.typing);
  }

  /** The reply so far, growing as the agent writes it. */
  write(text) {
    if (!this.draft) {
      this.draft = el(
        "li",
        {
          class: "message message-assistant draft",
          "data-testid": "reply-draft",
          "data-role": "assistant",
          "aria-live": "polite",
          "aria-busy": "true",
        },
        el("div", { class: "message-content" }),
      );
    }
    this.draft.firstChild.replaceChildren(renderMarkdown(text));
    if (this.typing) this.typing.remove();
    if (!this.draft.isConnected) this.list.append(this.draft);
  }

  /** A new message goes above the "Thinking…" line and the reply being written. */
  insertAbove(node) {
    const tail = [this.typing, this.draft].find((n) => n && n.isConnected);
    if (tail) tail.before(node);
    else this.list.append(node);
  }

  dropDraft() {
    if (this.draft) this.draft.remove();
    this.draft = null;
  }

  /** The reply arrived (or the send ended): neither line is shown any more. */
  done() {
    this.dropDraft();
    if (this.typing) this.typing.remove();
    this.typing = null;
  }
}
