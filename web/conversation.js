// The message panel and the composer: one open session (or a new one), its history paged
// backwards from the server, sending messages in any session (web, Telegram, scheduled), live
// updates (new messages, the reply as it is written, read marks) and where replies were delivered.

import {
  NEWER_MESSAGES_QUERY,
  OLDER_MESSAGES_QUERY,
  SEND_MESSAGE_MUTATION,
  SESSION_AROUND_QUERY,
  SESSION_QUERY,
  newClientMessageId,
} from "./api.js";
import {
  DeliveryPolls,
  expectsDelivery,
  hasPendingDelivery,
  messageNode,
  renderDays,
  renderMessage,
} from "./bubbles.js";
import { ReplyOnItsWay, fitComposer, renderComposer, wireComposer } from "./composer.js";
import { channelOf, roleOf, show } from "./dom.js";
import { renderHeader, renderStatus } from "./panel.js";
import { ReadMarks } from "./read-marks.js";

const PAGE_SIZE = 30;

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
    this.deliveries = new DeliveryPolls(graphql, elements.list);
    this.reply = new ReplyOnItsWay(elements.list);
    this.reads = new ReadMarks(graphql, (sessionId) => events.onRead(sessionId));
    this.reset(null);
    elements.loadOlder.addEventListener("click", () => this.loadOlder());
    elements.loadNewer.addEventListener("click", () => this.loadNewer());
    wireComposer(elements, () => this.send());
  }

  reset(sessionId) {
    this.generation += 1;
    this.deliveries.stop();
    this.reads.reset();
    if (this.unfollow) this.unfollow();
    this.unfollow = null;
    this.cursor = null; // the newest message cursor shown: live events resume after it
    this.pending = null; // { node, content }: the message being sent, until it is stored
    this.reply.done();
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
    const node = edge && messageNode(this.els.list, edge.node.id);
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
      this.reply.dropDraft();
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
    const node = this.bubble(message);
    this.shownIds.add(message.id);
    const pending = this.pending;
    if (pending && roleOf(message) === "user" && pending.content === message.content) {
      pending.node.replaceWith(node); // our own message, stored: no second copy
      this.pending = null;
    } else {
      this.reply.insertAbove(node);
    }
    if (roleOf(message) === "assistant") {
      this.reply.done();
      // Its delivery is queued just after the reply is stored: look again for it shortly.
      if (expectsDelivery(message, this.channel())) this.deliveries.poll(message.id, { expect: true });
    }
    renderDays(this.els.list);
    this.renderEmptyNote();
    if (stick) this.scrollToBottom();
    this.markRead();
  }

  /** The reply so far, growing as the agent writes it. */
  showDraft(text) {
    const stick = this.nearBottom();
    this.reply.write(text);
    this.renderEmptyNote();
    if (stick) this.scrollToBottom();
  }

  /** Move the person's read mark to the newest message shown. */
  markRead() {
    if (this.sessionId === null || this.session === null) return;
    this.reads.mark(this.sessionId, this.cursor);
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
    this.els.list.append(...nodes.map((message) => this.bubble(message)));
    nodes.forEach((message) => this.shownIds.add(message.id));
    renderDays(this.els.list);
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
    const items = nodes.map((message) => this.bubble(message));
    nodes.forEach((message) => this.shownIds.add(message.id));
    if (where === "start") this.els.list.prepend(...items);
    else this.els.list.append(...items);
    renderDays(this.els.list);
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

  async send() {
    const content = this.els.composer.value;
    if (this.sending || !this.canWrite() || !content.trim()) return;
    // A retry of a send that may not have arrived reuses its id: the server stores it once.
    const clientMessageId =
      this.retry && this.retry.content === content ? this.retry.clientMessageId : newClientMessageId();
    const generation = this.generation;
    const pending = this.bubble({ role: "USER", content, createdAt: null, via: "WEB" });
    this.els.list.append(pending);
    this.reply.thinking();
    this.pending = { node: pending, content };
    renderDays(this.els.list);
    this.els.composer.value = "";
    fitComposer(this.els.composer);
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
    this.reply.done();
    this.sending = false;
    if (payload) {
      this.retry = null;
      this.confirm(pending, payload);
      if (failure) this.setNotice(`The agent did not answer: ${failure.message}`);
    } else {
      pending.remove();
      this.pending = null;
      renderDays(this.els.list);
      this.retry = { content, clientMessageId };
      if (!this.els.composer.value) this.els.composer.value = content;
      fitComposer(this.els.composer);
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
      pending.replaceWith(this.bubble(payload.userMessage));
      this.shownIds.add(payload.userMessage.id);
    }
    this.pending = null;
    if (payload.reply && !this.shownIds.has(payload.reply.id)) {
      this.els.list.append(this.bubble(payload.reply));
      this.shownIds.add(payload.reply.id);
    } else if (payload.reply) {
      // Shown by its live event, maybe before its delivery was queued: show the one we got.
      const deliveries = payload.reply.deliveries || [];
      this.deliveries.show(payload.reply.id, deliveries);
      if (hasPendingDelivery(deliveries)) this.deliveries.poll(payload.reply.id);
    }
    renderDays(this.els.list);
    this.renderHeader();
    if (created) {
      this.events.onSessionCreated(this.sessionId);
      this.follow();
    }
    this.markRead();
  }

  // --- rendering ------------------------------------------------------------------------------

  /** A message's bubble; its pending deliveries are re-read until they settle. */
  bubble(message) {
    const node = renderMessage(message, this.channel());
    if (message.id && hasPendingDelivery(message.deliveries)) this.deliveries.poll(message.id);
    return node;
  }

  renderHeader() {
    const { sessionId, session, loading } = this;
    renderHeader(this.els, { sessionId, session, loading });
    if (this.events.onHeader) this.events.onHeader(session);
  }

  renderComposer() {
    renderComposer(this.els, {
      writable: this.canWrite() && !this.loading,
      sending: this.sending,
      newSession: this.sessionId === null,
      channel: this.session ? this.channel() : null,
      newerHidden: this.newerHidden,
    });
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
  setStatus(text, options = {}) {
    this.status = text;
    renderStatus(this.els.status, text, options);
  }

  /** An error about the last action (a failed send, a failed page), above the composer. */
  setNotice(text) {
    this.els.notice.textContent = text || "";
    show(this.els.notice, Boolean(text));
  }
}
