// The message panel and the composer: one open session (or a new one), its history paged
// backwards from the server, and sending messages in web sessions.

import {
  OLDER_MESSAGES_QUERY,
  SEND_MESSAGE_MUTATION,
  SESSION_QUERY,
  newClientMessageId,
} from "./api.js";
import { CHANNEL_LABELS, channelBadge, channelOf, el, roleOf, show, timeElement } from "./dom.js";

const PAGE_SIZE = 30;

const READ_ONLY_NOTES = {
  telegram: "Telegram sessions are read-only here: reply in the Telegram chat.",
  scheduled: "Scheduled runs are read-only: their messages come from the schedule.",
};

export class Conversation {
  /**
   * @param graphql   the API client
   * @param elements  the panel's elements (see app.js)
   * @param events    { onSessionChanged(session), onSessionCreated(sessionId) }
   */
  constructor(graphql, elements, events) {
    this.graphql = graphql;
    this.els = elements;
    this.events = events;
    this.generation = 0; // bumped whenever another session opens: late answers are dropped
    this.reset(null);
    elements.loadOlder.addEventListener("click", () => this.loadOlder());
    elements.form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.send();
    });
    elements.composer.addEventListener("keydown", (event) => this.onComposerKey(event));
    elements.composer.addEventListener("input", () => this.fitComposer());
  }

  reset(sessionId) {
    this.generation += 1;
    this.sessionId = sessionId; // null: a new session, created by the first message
    this.session = null;
    this.loading = false;
    this.sending = false;
    this.olderCursor = null;
    this.hasOlder = false;
    this.loadingOlder = false;
    this.shownIds = new Set();
    this.retry = null; // { content, clientMessageId } of a send that did not reach the server
    this.els.list.replaceChildren();
    this.setNotice(null);
    this.setStatus(null);
    this.renderLoadOlder();
  }

  // --- opening --------------------------------------------------------------------------------

  startNew() {
    this.reset(null);
    this.renderHeader();
    this.renderEmptyNote();
    this.renderComposer();
    this.els.composer.focus();
  }

  async open(sessionId) {
    this.reset(sessionId);
    const generation = this.generation;
    this.loading = true;
    this.renderHeader();
    this.renderEmptyNote();
    this.renderComposer();
    this.setStatus("Loading messages…", { busy: true });
    let data;
    try {
      data = await this.graphql(SESSION_QUERY, { sessionId, last: PAGE_SIZE });
    } catch (error) {
      if (generation !== this.generation) return;
      this.loading = false;
      this.setStatus(`Could not load this session: ${error.message}`, {
        error: true,
        retry: () => this.open(sessionId),
      });
      this.renderComposer();
      return;
    }
    if (generation !== this.generation) return;
    this.loading = false;
    this.setStatus(null);
    if (data.session === null) {
      this.setStatus("There is no session with this id in your account.", { error: true });
      this.renderHeader();
      this.renderComposer();
      return;
    }
    this.session = data.session;
    this.renderHeader();
    this.renderComposer();
    this.addPage(data.session.messages, "end");
    if (data.session.lastError) this.setNotice(`The last turn failed: ${data.session.lastError}`);
    this.scrollToBottom();
  }

  // --- history --------------------------------------------------------------------------------

  async loadOlder() {
    if (!this.hasOlder || this.loadingOlder || !this.sessionId) return;
    const generation = this.generation;
    this.loadingOlder = true;
    this.renderLoadOlder();
    try {
      const data = await this.graphql(OLDER_MESSAGES_QUERY, {
        sessionId: this.sessionId,
        last: PAGE_SIZE,
        before: this.olderCursor,
      });
      if (generation !== this.generation) return;
      this.keepScrollPosition(() => this.addPage(data.messages, "start"));
    } catch (error) {
      if (generation !== this.generation) return;
      this.setNotice(`Could not load older messages: ${error.message}`);
    }
    this.loadingOlder = false;
    this.renderLoadOlder();
  }

  /** Show a page of messages at the start (older) or end (newer); known ids are skipped. */
  addPage(connection, where) {
    const nodes = connection.edges.map((edge) => edge.node).filter((m) => !this.shownIds.has(m.id));
    const items = nodes.map((message) => this.renderMessage(message));
    nodes.forEach((message) => this.shownIds.add(message.id));
    if (where === "start") this.els.list.prepend(...items);
    else this.els.list.append(...items);
    this.olderCursor = connection.pageInfo.startCursor || this.olderCursor;
    this.hasOlder = connection.pageInfo.hasPreviousPage;
    this.renderLoadOlder();
    this.renderEmptyNote();
  }

  /** Prepending moves what the person is reading: keep it where it was. */
  keepScrollPosition(change) {
    const scroller = this.els.scroller;
    const fromBottom = scroller.scrollHeight - scroller.scrollTop;
    change();
    scroller.scrollTop = scroller.scrollHeight - fromBottom;
  }

  scrollToBottom() {
    this.els.scroller.scrollTop = this.els.scroller.scrollHeight;
  }

  // --- sending --------------------------------------------------------------------------------

  canWrite() {
    if (this.sessionId === null) return true;
    return this.session !== null && channelOf(this.session) === "web";
  }

  onComposerKey(event) {
    if (event.key !== "Enter" || event.shiftKey || event.isComposing) return;
    if (event.altKey || event.ctrlKey || event.metaKey) return;
    event.preventDefault(); // Enter sends; Shift+Enter makes a new line
    this.els.form.requestSubmit();
  }

  async send() {
    const content = this.els.composer.value;
    if (this.sending || !this.canWrite() || !content.trim()) return;
    // A retry of a send that may not have arrived reuses its id: the server stores it once.
    const clientMessageId =
      this.retry && this.retry.content === content ? this.retry.clientMessageId : newClientMessageId();
    const generation = this.generation;
    const pending = this.renderMessage({ role: "USER", content, createdAt: null });
    const typing = el("li", { class: "typing", "data-testid": "reply-pending" }, "Thinking…");
    this.els.list.append(pending, typing);
    this.els.composer.value = "";
    this.fitComposer();
    this.sending = true;
    this.setNotice(null);
    this.renderEmptyNote();
    this.renderComposer();
    this.scrollToBottom();

    const input = { content, clientMessageId };
    if (this.sessionId !== null) input.sessionId = this.sessionId;
    let payload = null;
    let failure = null;
    try {
      payload = (await this.graphql(SEND_MESSAGE_MUTATION, { input })).sendMessage;
    } catch (error) {
      failure = error;
      payload = error.has && error.has("AGENT_FAILED") ? error.data?.sendMessage ?? null : null;
    }
    if (payload) this.events.onSessionChanged(payload.session);
    if (generation !== this.generation) {
      return; // the person opened another session meanwhile; the list is up to date
    }
    typing.remove();
    this.sending = false;
    if (payload) {
      this.retry = null;
      this.confirm(pending, payload);
      if (failure) this.setNotice(`The agent did not answer: ${failure.message}`);
    } else {
      pending.remove();
      this.retry = { content, clientMessageId };
      if (!this.els.composer.value) this.els.composer.value = content;
      this.fitComposer();
      this.setNotice(`Your message was not sent: ${failure.message}`);
    }
    this.renderEmptyNote();
    this.renderComposer();
    this.scrollToBottom();
  }

  /** The server stored the message: show it as stored, and the reply if there is one. */
  confirm(pending, payload) {
    const created = this.sessionId === null;
    this.session = payload.session;
    this.sessionId = payload.session.sessionId;
    pending.replaceWith(this.renderMessage(payload.userMessage));
    this.shownIds.add(payload.userMessage.id);
    if (payload.reply && !this.shownIds.has(payload.reply.id)) {
      this.els.list.append(this.renderMessage(payload.reply));
      this.shownIds.add(payload.reply.id);
    }
    this.renderHeader();
    if (created) this.events.onSessionCreated(this.sessionId);
  }

  // --- rendering ------------------------------------------------------------------------------

  renderMessage(message) {
    const role = roleOf(message);
    return el(
      "li",
      {
        class: `message message-${role}` + (message.id ? "" : " pending"),
        "data-testid": "message",
        "data-role": role,
        "data-message-id": message.id || null,
      },
      el("div", { class: "message-content" }, message.content),
      message.createdAt
        ? timeElement(message.createdAt, "message-time")
        : el("span", { class: "message-time" }, "sending…"),
    );
  }

  renderHeader() {
    const { title, badge, meta } = this.els;
    badge.replaceChildren();
    if (this.sessionId === null) {
      badge.append(channelBadge("web"));
      title.textContent = "New session";
      meta.textContent = "Your first message starts a new web session.";
    } else if (this.session === null) {
      title.textContent = this.loading ? "Loading…" : "Session not found";
      meta.textContent = this.sessionId;
    } else {
      const channel = channelOf(this.session);
      badge.append(channelBadge(channel));
      title.textContent = `${CHANNEL_LABELS[channel] || channel} session · ${this.session.agentName}`;
      const running = channel === "scheduled" && this.session.isActive ? " · running" : "";
      meta.textContent = this.session.sessionId + running;
    }
  }

  renderComposer() {
    const writable = this.canWrite() && !this.loading;
    const { composer, send, readOnlyNote } = this.els;
    composer.disabled = !writable;
    send.disabled = !writable || this.sending;
    send.textContent = this.sending ? "Sending…" : "Send";
    const channel = this.session ? channelOf(this.session) : "web";
    const note = READ_ONLY_NOTES[channel];
    readOnlyNote.textContent = note || "";
    show(readOnlyNote, Boolean(note));
    composer.placeholder = note
      ? "Read-only session"
      : this.sessionId === null
        ? "Start a new session…"
        : "Write a message…";
  }

  renderLoadOlder() {
    const button = this.els.loadOlder;
    show(button, this.hasOlder);
    button.disabled = !this.hasOlder || this.loadingOlder;
    button.textContent = this.loadingOlder ? "Loading older messages…" : "Load older messages";
  }

  renderEmptyNote() {
    const empty = this.els.list.children.length === 0 && !this.loading && this.status === null;
    const note = this.els.emptyNote;
    note.textContent =
      this.sessionId === null
        ? "Type a message below to start a new conversation."
        : "No messages in this session yet.";
    show(note, empty);
  }

  /** The panel's status line: loading, or an error with an optional retry. */
  setStatus(text, { busy = false, error = false, retry = null } = {}) {
    this.status = text;
    const status = this.els.status;
    status.replaceChildren();
    status.classList.toggle("error", error);
    show(status, text !== null);
    if (text === null) return;
    if (busy) status.append(el("span", { class: "spinner", "aria-hidden": "true" }));
    status.append(text);
    if (retry) {
      const button = el("button", { type: "button", class: "link-button" }, "Try again");
      button.addEventListener("click", retry);
      status.append(" ", button);
    }
  }

  /** An error about the last action (a failed send, a failed page), above the composer. */
  setNotice(text) {
    this.els.notice.textContent = text || "";
    show(this.els.notice, Boolean(text));
  }

  fitComposer() {
    const composer = this.els.composer;
    composer.style.height = "auto";
    composer.style.height = `${composer.scrollHeight}px`;
  }
}
