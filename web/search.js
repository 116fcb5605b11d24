// The search box: full-text search over every message of the person's sessions (all channels,
// or the channel filter's), results with a highlighted snippet and the session's channel, each
// opening its session at the message that matched.

import { SEARCH_QUERY } from "./api.js";
import { CHANNEL_LABELS, channelBadge, channelOf, el, roleOf, show, timeElement } from "./dom.js";

const PAGE_SIZE = 20;
const DEBOUNCE_MS = 300;

export class Search {
  /**
   * @param graphql   the API client
   * @param elements  { form, input, clear, panel, status, results, more, listView }: listView is
   *                  the session list's box, hidden while results show
   * @param onOpen    called with (sessionId, { at, hitId }) when the person picks a result
   */
  constructor(graphql, elements, onOpen) {
    this.graphql = graphql;
    this.els = elements;
    this.onOpen = onOpen;
    this.channel = "all";
    this.query = "";
    this.generation = 0;
    this.timer = null;
    this.cursor = null;
    this.loading = false;
    elements.form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.run(elements.input.value, { force: true });
    });
    elements.input.addEventListener("input", () => {
      clearTimeout(this.timer);
      this.timer = setTimeout(() => this.run(elements.input.value), DEBOUNCE_MS);
    });
    elements.input.addEventListener("keydown", (event) => {
      if (event.key === "Escape" && elements.input.value) {
        event.preventDefault();
        this.clear();
      }
    });
    elements.clear.addEventListener("click", () => {
      this.clear();
      elements.input.focus();
    });
    elements.more.addEventListener("click", () => this.loadMore());
  }

  /** The channel filter applies to search too. */
  setChannel(channel) {
    this.channel = channel;
    if (this.query) this.run(this.query, { force: true });
  }

  /** A session was deleted: its hits go. */
  remove(sessionId) {
    for (const item of Array.from(this.els.results.children)) {
      if (item.dataset.sessionId === sessionId) item.remove();
    }
  }

  clear() {
    clearTimeout(this.timer);
    this.els.input.value = "";
    this.run("");
  }

  /** Search for `text` (blank: back to the session list). */
  run(text, { force = false } = {}) {
    clearTimeout(this.timer);
    const query = text.trim();
    if (query === this.query && !force) return;
    this.query = query;
    this.generation += 1;
    this.cursor = null;
    this.loading = false;
    this.els.results.replaceChildren();
    const active = query !== "";
    show(this.els.panel, active);
    show(this.els.listView, !active);
    show(this.els.clear, active || this.els.input.value !== "");
    show(this.els.more, false);
    this.setStatus(null);
    if (active) this.loadMore();
  }

  async loadMore() {
    if (this.loading || !this.query) return;
    const generation = this.generation;
    this.loading = true;
    show(this.els.more, false);
    this.setStatus(this.cursor ? "Loading more results…" : "Searching…", { busy: true });
    let connection;
    try {
      const data = await this.graphql(SEARCH_QUERY, {
        query: this.query,
        channel: this.channel === "all" ? null : this.channel.toUpperCase(),
        first: PAGE_SIZE,
        after: this.cursor,
      });
      connection = data.search;
    } catch (error) {
      if (generation !== this.generation) return;
      this.loading = false;
      this.setStatus(`Search failed: ${error.message}`, { error: true });
      return;
    }
    if (generation !== this.generation) return;
    this.loading = false;
    for (const { node } of connection.edges) this.els.results.append(this.renderHit(node));
    this.cursor = connection.pageInfo.endCursor;
    const count = this.els.results.children.length;
    const more = connection.pageInfo.hasNextPage;
    const where = this.channel === "all" ? "" : ` in ${CHANNEL_LABELS[this.channel]} sessions`;
    this.setStatus(
      count === 0
        ? `No messages match “${this.query}”${where}.`
        : `${count}${more ? "+" : ""} matching message${count === 1 ? "" : "s"}${where}`,
    );
    show(this.els.more, more);
  }

  renderHit(hit) {
    const session = hit.session;
    const channel = channelOf(session);
    const at = encodeURIComponent(hit.messageCursor);
    const href = `?session=${encodeURIComponent(session.sessionId)}&at=${at}`;
    const link = el(
      "a",
      { class: "search-link", href },
      el(
        "span",
        { class: "session-top" },
        channelBadge(channel),
        el("span", { class: "session-agent" }, session.title || session.agentName),
        session.archivedAt ? el("span", { class: "pill" }, "archived") : null,
        timeElement(hit.message.createdAt, "session-time"),
      ),
      el(
        "span",
        { class: "search-snippet", "data-testid": "search-snippet" },
        roleOf(hit.message) === "user" ? "You: " : "",
        snippetNodes(hit.snippet),
      ),
    );
    link.addEventListener("click", (event) => {
      if (event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) {
        return; // let the browser open it in a new tab
      }
      event.preventDefault();
      this.onOpen(session.sessionId, { at: hit.messageCursor, hitId: hit.message.id });
    });
    return el(
      "li",
      {
        class: "search-result",
        "data-testid": "search-result",
        "data-session-id": session.sessionId,
        "data-channel": channel,
        "data-message-id": hit.message.id,
      },
      link,
    );
  }

  setStatus(text, { busy = false, error = false } = {}) {
    const status = this.els.status;
    status.replaceChildren();
    status.classList.toggle("error", error);
    if (text === null) return;
    if (busy) status.append(el("span", { class: "spinner", "aria-hidden": "true" }));
    status.append(text);
  }
}

const ENTITIES = { "&lt;": "<", "&gt;": ">", "&amp;": "&", "&quot;": '"', "&#39;": "'" };

/**
 * The snippet as text nodes and <mark> elements, never parsed as HTML. The server sends it as
 * escaped text with each match in <mark>...</mark> (graphql_api/core/search.py): those two tags
 * are read as marks, the escapes are undone, and anything else stays literal text.
 */
export function snippetNodes(snippet) {
  const nodes = [];
  let highlighted = false;
  for (const part of String(snippet || "").split(/(<\/?mark>)/)) {
    if (part === "<mark>") highlighted = true;
    else if (part === "</mark>") highlighted = false;
    else if (part) {
      const text = part.replace(/&(?:lt|gt|amp|quot|#39);/g, (entity) => ENTITIES[entity]);
      nodes.push(highlighted ? el("mark", {}, text) : document.createTextNode(text));
    }
  }
  return nodes;
}
