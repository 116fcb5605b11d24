// The session list: newest activity first, filtered by channel, more pages as it scrolls; live
// events move a session to its place, and each shows how many messages are unread.

import { SESSIONS_QUERY } from "./api.js";
import { CHANNEL_LABELS, channelBadge, channelOf, el, roleOf, timeElement } from "./dom.js";

const PAGE_SIZE = 20;
const PREVIEW_LENGTH = 140;
const UNREAD_CAP = 100; // the server counts up to 100

export class SessionList {
  /**
   * @param graphql   the API client
   * @param elements  { scroller, list, status, sentinel }: the scrolling box, the <ul>, the
   *                  status line under it, and the element whose visibility loads the next page
   * @param onOpen    called with a sessionId when the person picks a session
   */
  constructor(graphql, elements, onOpen) {
    this.graphql = graphql;
    this.els = elements;
    this.onOpen = onOpen;
    this.filter = "all";
    this.archived = false; // true: the archived sessions instead of the default list
    this.activeId = null;
    this.items = new Map(); // sessionId -> <li>
    this.sessions = new Map(); // sessionId -> the session as last heard
    this.generation = 0; // bumped on every reset: answers for an older list are dropped
    this.cursor = null;
    this.hasMore = true;
    this.loading = false;
    this.error = null;
    this.observer = new IntersectionObserver(
      (entries) => {
        if (entries.some((entry) => entry.isIntersecting)) this.loadMore();
      },
      { root: elements.scroller, rootMargin: "200px" },
    );
    this.observer.observe(elements.sentinel);
  }

  /** Show the archived sessions (true) or the default list (false). */
  setArchived(archived) {
    this.archived = archived;
    this.reload();
  }

  /** Whether a session belongs in the list as filtered now (channel and archived or not). */
  admits(session) {
    const channel = channelOf(session);
    if (this.filter !== "all" && this.filter !== channel) return false;
    return Boolean(session.archivedAt) === this.archived;
  }

  setFilter(filter) {
    this.filter = filter;
    this.reload();
  }

  /** Start again from the newest session. */
  reload() {
    this.generation += 1;
    this.items.clear();
    this.sessions.clear();
    this.els.list.replaceChildren();
    this.els.scroller.scrollTop = 0;
    this.cursor = null;
    this.hasMore = true;
    this.loading = false;
    this.error = null;
    this.loadMore();
  }

  async loadMore() {
    if (this.loading || !this.hasMore) return;
    const generation = this.generation;
    this.loading = true;
    this.error = null;
    this.renderStatus();
    try {
      const data = await this.graphql(SESSIONS_QUERY, {
        channel: this.filter === "all" ? null : this.filter.toUpperCase(),
        archived: this.archived,
        first: PAGE_SIZE,
        after: this.cursor,
      });
      if (generation !== this.generation) return;
      for (const { node } of data.sessions.edges) this.add(node);
      this.cursor = data.sessions.pageInfo.endCursor;
      this.hasMore = data.sessions.pageInfo.hasNextPage;
    } catch (error) {
      if (generation !== this.generation) return;
      this.error = error;
    }
    this.loading = false;
    this.renderStatus();
    if (!this.error) this.recheckSentinel();
  }

  /** The observer only reports changes: if the sentinel is still in view, ask again. */
  recheckSentinel() {
    this.observer.unobserve(this.els.sentinel);
    if (this.hasMore) this.observer.observe(this.els.sentinel);
  }

  /** Append a session from a page (skipped if it is already listed). */
  add(session) {
    if (this.items.has(session.sessionId)) return;
    const item = this.renderItem(session);
    this.items.set(session.sessionId, item);
    this.sessions.set(session.sessionId, session);
    this.els.list.append(item);
  }

  /** A session just changed (a message was sent): show it first, if the filter lets it in. */
  bringToTop(session) {
    if (!this.admits(session)) return;
    this.items.get(session.sessionId)?.remove();
    const item = this.renderItem(session);
    this.items.set(session.sessionId, item);
    this.sessions.set(session.sessionId, session);
    this.els.list.prepend(item);
    this.renderStatus();
  }

  /** A live event: the session goes to its place by last activity (newest first). */
  upsert(session) {
    if (!this.admits(session)) {
      this.remove(session.sessionId); // archived (or brought back) elsewhere: not this list's
      return;
    }
    const id = session.sessionId;
    if (id === this.activeId) session = { ...session, unreadCount: 0 }; // it is being read
    const known = this.items.get(id);
    const when = Date.parse(session.updatedAt);
    let before = null;
    for (const item of this.els.list.children) {
      const other = this.sessions.get(item.dataset.sessionId);
      if (item !== known && other && Date.parse(other.updatedAt) < when) {
        before = item;
        break;
      }
    }
    if (!before && !known && this.hasMore) return; // older than every loaded one: a later page
    const item = this.renderItem(session);
    if (known) known.remove();
    this.items.set(id, item);
    this.sessions.set(id, session);
    if (before) before.before(item);
    else this.els.list.append(item);
    this.renderStatus();
  }

  /** A session was deleted. */
  remove(sessionId) {
    this.items.get(sessionId)?.remove();
    this.items.delete(sessionId);
    this.sessions.delete(sessionId);
    this.renderStatus();
  }

  /** After a lost connection: the first page again, merged in (events may have been missed). */
  async refresh() {
    const generation = this.generation;
    let data;
    try {
      data = await this.graphql(SESSIONS_QUERY, {
        channel: this.filter === "all" ? null : this.filter.toUpperCase(),
        archived: this.archived,
        first: PAGE_SIZE,
        after: null,
      });
    } catch {
      return; // the list stays as it is; the next event or reload brings it up to date
    }
    if (generation !== this.generation) return;
    for (const { node } of data.sessions.edges) {
      const known = this.sessions.get(node.sessionId);
      if (!known || known.updatedAt !== node.updatedAt || known.unreadCount !== node.unreadCount) {
        this.upsert(node);
      }
    }
  }

  /** The person has read the session: no badge. */
  markRead(sessionId) {
    this.setUnread(sessionId, 0);
  }

  setUnread(sessionId, count) {
    const session = this.sessions.get(sessionId);
    const item = this.items.get(sessionId);
    if (!session || !item) return;
    if (sessionId === this.activeId) count = 0;
    this.sessions.set(sessionId, { ...session, unreadCount: count });
    const old = item.querySelector('[data-testid="unread-badge"]');
    const badge = unreadBadge(count);
    if (old && badge) old.replaceWith(badge);
    else if (old) old.remove();
    else if (badge) item.querySelector(".session-bottom").append(badge);
  }

  setActive(sessionId) {
    this.activeId = sessionId;
    for (const [id, item] of this.items) {
      const link = item.querySelector("a");
      if (id === sessionId) link.setAttribute("aria-current", "true");
      else link.removeAttribute("aria-current");
    }
  }

  renderItem(session) {
    const channel = channelOf(session);
    const link = el(
      "a",
      {
        class: "session-link",
        href: "?session=" + encodeURIComponent(session.sessionId),
        title: session.sessionId,
        "aria-current": session.sessionId === this.activeId ? "true" : null,
      },
      el(
        "span",
        { class: "session-top" },
        channelBadge(channel),
        // Named by its first message (or renamed); untitled ones show their agent.
        el("span", { class: "session-agent" }, session.title || session.agentName),
        channel === "scheduled" && session.isActive ? el("span", { class: "pill" }, "running") : null,
        timeElement(session.updatedAt, "session-time"),
      ),
      el(
        "span",
        { class: "session-bottom" },
        el("span", { class: "session-preview" }, previewOf(session)),
        unreadBadge(session.sessionId === this.activeId ? 0 : session.unreadCount),
      ),
    );
    link.addEventListener("click", (event) => {
      if (event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) {
        return; // let the browser open it in a new tab
      }
      event.preventDefault();
      this.onOpen(session.sessionId);
    });
    return el(
      "li",
      {
        class: "session-item",
        "data-testid": "session-item",
        "data-session-id": session.sessionId,
        "data-channel": channel,
      },
      link,
    );
  }

  renderStatus() {
    const status = this.els.status;
    status.replaceChildren();
    status.classList.toggle("error", Boolean(this.error));
    if (this.loading) {
      status.append(el("span", { class: "spinner", "aria-hidden": "true" }), "Loading sessions…");
    } else if (this.error) {
      const retry = el("button", { type: "button", class: "link-button" }, "Try again");
      retry.addEventListener("click", () => this.loadMore());
      status.append(`Could not load sessions: ${this.error.message} `, retry);
    } else if (this.items.size === 0 && this.archived) {
      status.append(
        this.filter === "all"
          ? "No archived sessions."
          : `No archived ${CHANNEL_LABELS[this.filter]} sessions.`,
      );
    } else if (this.items.size === 0) {
      status.append(
        this.filter === "all"
          ? "No sessions yet. Start one with “New session”."
          : `No ${CHANNEL_LABELS[this.filter]} sessions.`,
      );
    }
  }
}

/** The unread count, "99+" from the cap on; nothing when there is none. */
function unreadBadge(count) {
  if (!count) return null;
  const text = count >= UNREAD_CAP ? "99+" : String(count);
  return el(
    "span",
    {
      class: "unread",
      "data-testid": "unread-badge",
      title: `${text} unread`,
      "aria-label": `${text} unread`,
    },
    text,
  );
}

function previewOf(session) {
  const message = session.lastMessage;
  if (!message) return "No messages yet";
  const text = message.content.replace(/\s+/g, " ").trim();
  const short = text.length > PREVIEW_LENGTH ? text.slice(0, PREVIEW_LENGTH) + "…" : text;
  return (roleOf(message) === "user" ? "You: " : "") + short;
}
