// The message panel and the composer: one open session (or a new one), its history paged
// backwards from the server, sending messages in any session (web, Telegram, scheduled), live
// updates (new messages, the reply as it is written, read marks) and where replies were delivered.

import {
  MARK_SESSION_READ_MUTATION,
  MESSAGE_DELIVERIES_QUERY,
  NEWER_MESSAGES_QUERY,
  OLDER_MESSAGES_QUERY,
  SEND_MESSAGE_MUTATION,
  SESSION_AROUND_QUERY,
  SESSION_QUERY,
  newClientMessageId,
} from "./api.js";
import {
  CHANNEL_LABELS,
  channelBadge,
  channelOf,
  dayKey,
  daySeparator,
  el,
  longTime,
  roleOf,
  show,
} from "./dom.js";
import { renderMarkdown } from "./markdown.js";

const PAGE_SIZE = 30;

// A hint above the composer in sessions of other channels (a web session needs none).
const COMPOSER_HINTS = {
  telegram: "Replies here are also sent to your Telegram chat.",
  scheduled: "Writing here continues this scheduled run's conversation.",
};

// "via web": the door a message came in by, shown when it is not the session's own channel.
const VIA_LABELS = { web: "via web", telegram: "via Telegram", scheduled: "via schedule" };
const DELIVERY_TARGETS = { web: "the web app", telegram: "Telegram", scheduled: "the schedule" };

// Deliveries change without a live event: a pending one is re-read every few seconds, a while.
const DELIVERY_POLL_MS = 2500;
const DELIVERY_POLL_TIMES = 10;

export class Conversation {
  /**
   * @param graphql   the API client
   * @param elements  the panel's elements (see app.js)
   * @param events    { onSessionChanged(session), onSessionCreated(sessionId), onRead(sessionId) }
   * @param live      the live connection (live.js), or null for none
   */
  constructor(graphql, elements, events, live = null) {
    this.graphql = graphql;
    this.els = elements;
    this.events = events;
    this.live = live;
    this.generation = 0; // bumped whenever another session opens: late answers are dropped
    this.unfollow = null;
    this.polls = new Map(); // message id -> timer: deliveries being re-read
    this.reset(null);
    document.addEventListener("visibilitychange", () => {
      if (document.visibilityState === "visible" && this.unreadShown) this.markRead();
    });
    elements.loadOlder.addEventListener("click", () => this.loadOlder());
    elements.loadNewer.addEventListener("click", () => this.loadNewer());
    elements.form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.send();
    });
    elements.composer.addEventListener("keydown", (event) => this.onComposerKey(event));
    elements.composer.addEventListener("input", () => this.fitComposer());
  }

  reset(sessionId) {
    this.generation += 1;
    for (const timer of this.polls.values()) clearTimeout(timer);
    this.polls.clear();
    if (this.unfollow) this.unfollow();
    this.unfollow = null;
    this.cursor = null; // the newest message cursor shown: live events resume after it
    this.pending = null; // { node, content }: the message being sent, until it is stored
    this.typing = null; // the "Thinking…" line while a send waits
    this.draft = null; // the reply being written (REPLY_PROGRESS)
    this.reading = false; // a markSessionRead request is under way
    this.readAgain = false;
    this.unreadShown = false; // shown while the page was hidden: mark read when it shows
    this.sessionId = sessionId; // null: a new session, created by the first message
    this.session = null;
    this.loading = false;
    this.sending = false;
    this.olderCursor = null;
    this.hasOlder = false;
    this.loadingOlder = false;
    this.shownIds = new Set();
    this.retry = null; // { content, clientMessageId } of a send that did not reach the server
    this.newerHidden = false; // opened at a search hit, with newer messages not shown
    this.newerCursor = null; // the newest message shown then: newer pages come after it
    this.loadingNewer = false;
    this.renderNewer();
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

  /**
   * Open a session: its newest messages, or (`at`: a message cursor, e.g. a search hit's) the
   * page around that message, marked and scrolled into view (`hitId`: its id, if known).
   */
  async open(sessionId, { at = null, hitId = null } = {}) {
    this.reset(sessionId);
    const generation = this.generation;
    this.loading = true;
    this.renderHeader();
    this.renderEmptyNote();
    this.renderComposer();
    this.setStatus("Loading messages…", { busy: true });
    let data;
    try {
      data = at
        ? await this.graphql(SESSION_AROUND_QUERY, { sessionId, around: at, last: PAGE_SIZE })
        : await this.graphql(SESSION_QUERY, { sessionId, last: PAGE_SIZE });
    } catch (error) {
      if (generation !== this.generation) return;
      if (at) {
        // A stale or foreign hit (the message is gone): the session as usual, and say so.
        await this.open(sessionId);
        if (this.sessionId !== sessionId) return;
        this.setNotice(`Could not open the session at that message: ${error.message}`);
        return;
      }
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
    const page = at ? data.messages : data.session.messages;
    this.addPage(page, "end");
    const edges = page.edges;
    if (edges.length) this.cursor = edges[edges.length - 1].cursor;
    if (data.session.lastError) this.setNotice(`The last turn failed: ${data.session.lastError}`);
    if (at) {
      this.showHit(edges, at, hitId);
      // Newer messages than the page exist: no live replay of all of them, a way to the end.
      this.newerHidden = Boolean(page.pageInfo.hasNextPage);
      this.newerCursor = page.pageInfo.endCursor;
      this.renderNewer();
      this.renderComposer();
      if (this.newerHidden) return;
    } else {
      this.scrollToBottom();
    }
    this.follow();
    this.markRead();
  }

  /** Mark the hit's message and bring it into view. */
  showHit(edges, at, hitId) {
    const edge = edges.find((e) => e.cursor === at) || edges.find((e) => e.node.id === hitId);
    const node = edge && this.messageNode(edge.node.id);
    if (!node) return;
    node.classList.add("hit");
    node.dataset.hit = "true";
    node.tabIndex = -1;
    // Centred in the message panel (scrollIntoView would scroll the page as well).
    const scroller = this.els.scroller;
    const box = node.getBoundingClientRect();
    const view = scroller.getBoundingClientRect();
    scroller.scrollTop += box.top - view.top - (scroller.clientHeight - box.height) / 2;
    node.focus({ preventScroll: true });
  }

  // --- live -----------------------------------------------------------------------------------

  /** A live session event: the open session's header follows it (a run ending, an error). */
  sessionChanged(session) {
    if (this.session === null || session.sessionId !== this.sessionId) return;
    this.session = { ...this.session, ...session };
    this.renderHeader();
  }

  /** Subscribe to the open session's events, from the newest message shown on. */
  follow() {
    if (!this.live || this.sessionId === null || this.unfollow) return;
    const generation = this.generation;
    this.unfollow = this.live.messageEvents(
      this.sessionId,
      this.cursor,
      (event) => {
        if (generation === this.generation) this.onLiveEvent(event);
      },
      (error) => {
        if (generation !== this.generation) return;
        this.unfollow = null;
        this.setNotice(`Live updates stopped: ${error.message || error}`);
      },
    );
  }

  onLiveEvent(event) {
    if (event.kind === "ADDED") {
      this.onAdded(event.message, event.cursor);
    } else if (event.kind === "REPLY_PROGRESS") {
      this.showDraft(event.text || "");
    } else if (event.kind === "REPLY_FAILED") {
      this.clearDraft();
      // A send of ours reports its own failure when its answer comes.
      if (!this.sending) this.setNotice(`The agent did not answer: ${event.text || "unknown error"}`);
    }
  }

  /**
   * The socket came back. A subscription with a cursor resumes after it by itself; one without
   * (the session was empty) only sees what comes next, so read what came meanwhile.
   */
  async onReconnected() {
    if (this.sessionId === null || this.session === null || this.cursor !== null) return;
    const generation = this.generation;
    let data;
    try {
      data = await this.graphql(OLDER_MESSAGES_QUERY, { sessionId: this.sessionId, last: PAGE_SIZE });
    } catch {
      return;
    }
    if (generation !== this.generation) return;
    for (const edge of data.messages.edges) this.onAdded(edge.node, edge.cursor);
    if (this.cursor !== null && this.unfollow) {
      this.unfollow(); // follow from the cursor now, so a later drop resumes from it too
      this.unfollow = null;
      this.follow();
    }
  }

  /** A message was stored (here, in another tab, on another channel): show it once. */
  onAdded(message, cursor) {
    if (cursor) this.cursor = cursor;
    if (!message || this.shownIds.has(message.id)) return;
    const stick = this.nearBottom();
    const node = this.renderMessage(message);
    this.shownIds.add(message.id);
    const pending = this.pending;
    if (pending && roleOf(message) === "user" && pending.content === message.content) {
      pending.node.replaceWith(node); // our own message, stored: no second copy
      this.pending = null;
    } else {
      this.insertLive(node);
    }
    if (roleOf(message) === "assistant") {
      this.clearDraft();
      if (this.typing) this.typing.remove();
      // Its delivery is queued just after the reply is stored: look again for it shortly.
      if (this.expectsDelivery(message)) this.pollDeliveries(message.id, { expect: true });
    }
    this.renderDays();
    this.renderEmptyNote();
    if (stick) this.scrollToBottom();
    this.markRead();
  }

  /** New messages go above the "Thinking…" line and the reply being written. */
  insertLive(node) {
    const tail = [this.typing, this.draft].find((n) => n && n.isConnected);
    if (tail) tail.before(node);
    else this.els.list.append(node);
  }

  /** The reply so far, growing as the agent writes it. */
  showDraft(text) {
    const stick = this.nearBottom();
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
    if (!this.draft.isConnected) this.els.list.append(this.draft);
    this.renderEmptyNote();
    if (stick) this.scrollToBottom();
  }

  clearDraft() {
    if (this.draft) this.draft.remove();
    this.draft = null;
  }

  /** Move the person's read mark to the newest message shown (one request at a time). */
  markRead() {
    if (this.sessionId === null || this.session === null) return;
    if (document.visibilityState === "hidden") {
      this.unreadShown = true;
      return;
    }
    this.unreadShown = false;
    this.events.onRead(this.sessionId);
    if (this.reading) {
      this.readAgain = true;
      return;
    }
    const generation = this.generation;
    this.reading = true;
    const input = { sessionId: this.sessionId };
    if (this.cursor) input.upTo = this.cursor;
    this.graphql(MARK_SESSION_READ_MUTATION, { input })
      .catch(() => {}) // a missed mark only leaves a badge; the next message marks again
      .finally(() => {
        if (generation !== this.generation) return;
        this.reading = false;
        if (this.readAgain) {
          this.readAgain = false;
          this.markRead();
        }
      });
  }

  nearBottom() {
    const scroller = this.els.scroller;
    return scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < 80;
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

  /** Opened at a search hit: the next page of newer messages; at the newest, live again. */
  async loadNewer() {
    if (!this.newerHidden || this.loadingNewer) return;
    const generation = this.generation;
    this.loadingNewer = true;
    this.renderNewer();
    let data;
    try {
      data = await this.graphql(NEWER_MESSAGES_QUERY, {
        sessionId: this.sessionId,
        last: PAGE_SIZE,
        after: this.newerCursor,
      });
    } catch (error) {
      if (generation !== this.generation) return;
      this.loadingNewer = false;
      this.renderNewer();
      this.setNotice(`Could not load newer messages: ${error.message}`);
      return;
    }
    if (generation !== this.generation) return;
    const { edges, pageInfo } = data.messages;
    const nodes = edges.map((edge) => edge.node).filter((m) => !this.shownIds.has(m.id));
    this.els.list.append(...nodes.map((message) => this.renderMessage(message)));
    nodes.forEach((message) => this.shownIds.add(message.id));
    this.renderDays();
    if (edges.length) this.cursor = edges[edges.length - 1].cursor;
    this.newerCursor = pageInfo.endCursor || this.newerCursor;
    this.newerHidden = pageInfo.hasNextPage;
    this.loadingNewer = false;
    this.renderNewer();
    this.renderComposer();
    if (!this.newerHidden) {
      this.follow(); // the newest is shown: follow from it, as an ordinary open does
      this.markRead();
    }
  }

  renderNewer() {
    show(this.els.newer, this.newerHidden);
    const button = this.els.loadNewer;
    button.disabled = this.loadingNewer;
    button.textContent = this.loadingNewer ? "Loading newer messages…" : "Load newer messages";
  }

  /** Show a page of messages at the start (older) or end (newer); known ids are skipped. */
  addPage(connection, where) {
    const nodes = connection.edges.map((edge) => edge.node).filter((m) => !this.shownIds.has(m.id));
    const items = nodes.map((message) => this.renderMessage(message));
    nodes.forEach((message) => this.shownIds.add(message.id));
    if (where === "start") this.els.list.prepend(...items);
    else this.els.list.append(...items);
    this.renderDays();
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

  /** Any session of the person's can be written in (the server runs an ordinary turn). */
  canWrite() {
    if (this.sessionId === null) return true;
    return this.session !== null && !this.newerHidden; // a reply goes after the newest message
  }

  /** The open session's channel ("web" for a new session). */
  channel() {
    return this.session ? channelOf(this.session) : "web";
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
    const pending = this.renderMessage({ role: "USER", content, createdAt: null, via: "WEB" });
    const typing = el("li", { class: "typing", "data-testid": "reply-pending" }, "Thinking…");
    this.els.list.append(pending, typing);
    this.pending = { node: pending, content };
    this.typing = typing;
    this.renderDays();
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
    this.typing = null;
    this.clearDraft();
    this.sending = false;
    if (payload) {
      this.retry = null;
      this.confirm(pending, payload);
      if (failure) this.setNotice(`The agent did not answer: ${failure.message}`);
    } else {
      pending.remove();
      this.pending = null;
      this.renderDays();
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
    if (this.shownIds.has(payload.userMessage.id)) {
      pending.remove(); // already shown by its live event
    } else {
      pending.replaceWith(this.renderMessage(payload.userMessage));
      this.shownIds.add(payload.userMessage.id);
    }
    this.pending = null;
    if (payload.reply && !this.shownIds.has(payload.reply.id)) {
      this.els.list.append(this.renderMessage(payload.reply));
      this.shownIds.add(payload.reply.id);
    } else if (payload.reply) {
      // Shown by its live event, maybe before its delivery was queued: show the one we got.
      this.updateDeliveries(payload.reply.id, payload.reply.deliveries || []);
    }
    this.renderDays();
    this.renderHeader();
    if (created) {
      this.events.onSessionCreated(this.sessionId);
      this.follow();
    }
    this.markRead();
  }

  // --- rendering ------------------------------------------------------------------------------

  /** A message bubble: its Markdown, sanitized; its time on hover (the day is a separator). */
  renderMessage(message) {
    const role = roleOf(message);
    const created = message.createdAt;
    const content = el("div", { class: "message-content" });
    content.append(renderMarkdown(message.content));
    const via = message.via ? String(message.via).toLowerCase() : null;
    const viaLabel =
      via && via !== this.channel()
        ? el(
            "span",
            { class: "message-via", "data-testid": "message-via", "data-via": via },
            VIA_LABELS[via] || `via ${via}`,
          )
        : null;
    const deliveries = el("span", { class: "message-deliveries" });
    this.fillDeliveries(deliveries, message.deliveries || []);
    if (message.id && (message.deliveries || []).some((d) => d.status === "PENDING")) {
      this.pollDeliveries(message.id);
    }
    const meta = el("div", { class: "message-meta" }, viaLabel, deliveries);
    return el(
      "li",
      {
        class: `message message-${role}` + (message.id ? "" : " pending"),
        "data-testid": "message",
        "data-role": role,
        "data-message-id": message.id || null,
        "data-created-at": created || null,
        title: created ? longTime(created) : "Sending…",
      },
      content,
      meta,
      created
        ? el("time", { class: "visually-hidden", datetime: created }, longTime(created))
        : el("span", { class: "visually-hidden" }, "sending…"),
    );
  }

  /** "Sent to Telegram", "Sending to Telegram…", "Not delivered to Telegram: <why>" (as text). */
  fillDeliveries(container, deliveries) {
    container.replaceChildren(
      ...deliveries.map((delivery) => {
        const channel = String(delivery.channel).toLowerCase();
        const status = String(delivery.status).toLowerCase();
        const target = DELIVERY_TARGETS[channel] || channel;
        let text;
        let title = null;
        if (status === "sent") {
          text = `Sent to ${target}`;
          title = delivery.sentAt ? longTime(delivery.sentAt) : null;
        } else if (status === "failed") {
          text = `Not delivered to ${target}: ${delivery.lastError || "unknown error"}`;
        } else {
          text = `Sending to ${target}…`;
          if (delivery.attempts > 0 && delivery.lastError) title = `Retrying: ${delivery.lastError}`;
        }
        return el(
          "span",
          {
            class: `message-delivery delivery-${status}`,
            "data-testid": "message-delivery",
            "data-channel": channel,
            "data-status": status,
            title,
          },
          text,
        );
      }),
    );
  }

  /** Show a message's deliveries as they are now (and keep re-reading a pending one). */
  updateDeliveries(messageId, deliveries) {
    const node = this.messageNode(messageId);
    if (!node) return;
    const container = node.querySelector(".message-deliveries");
    if (container) this.fillDeliveries(container, deliveries);
    if (deliveries.some((d) => d.status === "PENDING")) this.pollDeliveries(messageId);
  }

  /** The shown bubble of a stored message, or null. */
  messageNode(messageId) {
    const id = CSS.escape(messageId);
    return this.els.list.querySelector(`:scope > [data-testid="message"][data-message-id="${id}"]`);
  }

  /** A reply written here in another channel's session is delivered there too. */
  expectsDelivery(message) {
    const via = message.via ? String(message.via).toLowerCase() : null;
    return (
      this.channel() === "telegram" &&
      via !== null &&
      via !== "telegram" &&
      !(message.deliveries || []).length
    );
  }

  /**
   * Re-read a message's deliveries every few seconds (at most DELIVERY_POLL_TIMES times) while
   * one is pending, or (`expect`) while none is there yet.
   */
  pollDeliveries(messageId, { expect = false } = {}) {
    if (this.polls.has(messageId)) return;
    const generation = this.generation;
    let times = 0;
    const tick = async () => {
      times += 1;
      let deliveries = null;
      try {
        const data = await this.graphql(MESSAGE_DELIVERIES_QUERY, { id: messageId });
        const found = data.node && data.node.deliveries;
        deliveries = Array.isArray(found) ? found : null;
      } catch {
        // a missed look is only a stale label; the next one may work
      }
      if (generation !== this.generation) return;
      if (deliveries !== null) {
        const node = this.messageNode(messageId);
        const container = node && node.querySelector(".message-deliveries");
        if (container) this.fillDeliveries(container, deliveries);
      }
      const again =
        deliveries === null ||
        deliveries.some((d) => d.status === "PENDING") ||
        (expect && deliveries.length === 0);
      if (again && times < DELIVERY_POLL_TIMES) {
        this.polls.set(messageId, setTimeout(tick, DELIVERY_POLL_MS));
      } else {
        this.polls.delete(messageId);
      }
    };
    this.polls.set(messageId, setTimeout(tick, DELIVERY_POLL_MS));
  }

  /** A day separator above the first message of each day (a message being sent is today). */
  renderDays() {
    const list = this.els.list;
    for (const node of list.querySelectorAll(":scope > .day-separator")) node.remove();
    let previous = null;
    for (const node of Array.from(list.children)) {
      if (node.dataset.testid !== "message") continue;
      const created = node.dataset.createdAt || null;
      const day = dayKey(created);
      if (day !== previous) node.before(daySeparator(created));
      previous = day;
    }
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
      title.textContent =
        this.session.title || `${CHANNEL_LABELS[channel] || channel} session · ${this.session.agentName}`;
      const running = channel === "scheduled" && this.session.isActive ? " · running" : "";
      const archived = this.session.archivedAt ? " · archived" : "";
      meta.textContent = this.session.sessionId + running + archived;
    }
    if (this.events.onHeader) this.events.onHeader(this.session);
  }

  renderComposer() {
    const writable = this.canWrite() && !this.loading;
    const { composer, send, composerHint } = this.els;
    composer.disabled = !writable;
    send.disabled = !writable || this.sending;
    send.textContent = this.sending ? "Sending…" : "Send";
    const hint = this.newerHidden
      ? "Jump to the latest messages to write in this session."
      : this.session
        ? COMPOSER_HINTS[this.channel()]
        : null;
    composerHint.textContent = hint || "";
    show(composerHint, Boolean(hint));
    composer.placeholder = this.sessionId === null ? "Start a new session…" : "Write a message…";
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
