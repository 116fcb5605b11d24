// Entry point: sign-in, the address bar (?session=...), and wiring the list to the panel.

import {
  TELEGRAM_LINKED_QUERY,
  TELEGRAM_LINK_MUTATION,
  createClient,
  createDownloader,
  forgetToken,
  storeToken,
  takeToken,
  tokenProblem,
} from "./api.js";
import { Conversation } from "./conversation.js";
import { longTime, show } from "./dom.js";
import { Live } from "./live.js";
import { SessionActions, wireExportAll } from "./manage.js";
import { Search } from "./search.js";
import { SessionList } from "./session-list.js";

const byId = (id) => document.getElementById(id);

function start() {
  show(byId("boot"), false);
  const token = takeToken();
  const problem = tokenProblem(token);
  if (problem) {
    showSignIn(problem);
    return;
  }
  const graphql = createClient(token, {
    onUnauthenticated: (message) => showSignIn({ kind: "refused", message }),
  });
  const download = createDownloader(token, {
    onUnauthenticated: (message) => showSignIn({ kind: "refused", message }),
  });
  show(byId("app"), true);
  show(byId("topbar-actions"), true);
  const live = new Live(token, {
    onUnauthenticated: (message) => {
      live.close();
      showSignIn({ kind: "refused", message });
    },
    onState: (state) => showLiveState(state),
    onEnded: () => {
      const problem = tokenProblem(token);
      if (problem === null) return;
      live.close();
      showSignIn(problem); // an open page does not go quietly stale when its token expires
    },
    onReconnected: () => {
      list.refresh(); // session events have no replay: re-read the list
      conversation.onReconnected();
    },
  });

  const list = new SessionList(
    graphql,
    {
      scroller: byId("session-scroll"),
      list: byId("session-list"),
      status: byId("session-list-status"),
      sentinel: byId("session-sentinel"),
    },
    (sessionId) => navigate(sessionId),
  );
  const search = new Search(
    graphql,
    {
      form: byId("search-form"),
      input: byId("search-input"),
      clear: byId("search-clear"),
      panel: byId("search-panel"),
      status: byId("search-status"),
      results: byId("search-results"),
      more: byId("search-more"),
      listView: byId("session-scroll"),
    },
    (sessionId, hit) => navigate(sessionId, hit),
  );
  const actions = new SessionActions(
    graphql,
    download,
    {
      actions: byId("session-actions"),
      rename: byId("rename-session"),
      archive: byId("archive-session"),
      unarchive: byId("unarchive-session"),
      exportJson: byId("export-json"),
      exportMd: byId("export-md"),
      remove: byId("delete-session"),
      renameForm: byId("rename-form"),
      renameInput: byId("rename-input"),
      renameCancel: byId("rename-cancel"),
      dialog: byId("delete-dialog"),
      dialogText: byId("delete-text"),
      dialogError: byId("delete-error"),
      confirmDelete: byId("confirm-delete"),
      cancelDelete: byId("cancel-delete"),
    },
    {
      onChanged: (session) => {
        list.upsert(session); // renamed in place; archived or brought back: in or out of the list
        conversation.sessionChanged(session);
      },
      onDeleted: (sessionId) => forget(sessionId),
      onNotice: (text) => conversation.setNotice(text),
    },
  );
  const conversation = new Conversation(
    graphql,
    {
      title: byId("conversation-title"),
      badge: byId("conversation-badge"),
      meta: byId("conversation-meta"),
      scroller: byId("message-scroll"),
      loadOlder: byId("load-older"),
      list: byId("message-list"),
      status: byId("message-status"),
      emptyNote: byId("empty-note"),
      notice: byId("notice"),
      form: byId("composer-form"),
      composer: byId("composer"),
      send: byId("send"),
      composerHint: byId("composer-hint"),
      newer: byId("newer"),
      loadNewer: byId("load-newer"),
    },
    {
      onHeader: (session) => actions.setSession(session),
      onSessionChanged: (session) => list.bringToTop(session),
      onSessionCreated: (sessionId) => {
        // The new session replaces the "new session" page: a refresh reopens it.
        history.replaceState(null, "", sessionUrl(sessionId));
        list.setActive(sessionId);
      },
      onRead: (sessionId) => list.markRead(sessionId),
    },
    live,
  );
  live.sessionEvents((event) => {
    if (event.kind === "DELETED" || !event.session) {
      list.remove(event.sessionId);
      if (event.kind === "DELETED") forget(event.sessionId);
    } else {
      list.upsert(event.session);
      conversation.sessionChanged(event.session);
    }
  });

  /** Show what the address bar names: a session, or a new one. */
  function route({ view, hitId = null } = {}) {
    const sessionId = currentSessionId();
    const at = new URLSearchParams(window.location.search).get("at");
    list.setActive(sessionId);
    if (sessionId) conversation.open(sessionId, { at, hitId });
    else conversation.startNew();
    setView(view || (sessionId ? "chat" : "list"));
  }

  /** Open a session (null: a new one); `at`: a message cursor to open it at. */
  function navigate(sessionId, { at = null, ...options } = {}) {
    history.pushState(null, "", sessionUrl(sessionId, at));
    route(options);
  }

  /** A session was deleted (here or elsewhere): gone from the list, results and the panel. */
  function forget(sessionId) {
    list.remove(sessionId);
    search.remove(sessionId);
    if (currentSessionId() === sessionId) {
      history.replaceState(null, "", sessionUrl(null)); // Back does not lead to it
      route({ view: "list" });
    }
  }

  byId("channel-filter").addEventListener("change", (event) => {
    list.setFilter(event.target.value);
    search.setChannel(event.target.value);
  });
  byId("show-archived").addEventListener("click", (event) => {
    const button = event.currentTarget;
    const archived = button.getAttribute("aria-pressed") !== "true";
    button.setAttribute("aria-pressed", String(archived));
    list.setArchived(archived);
    search.clear(); // the list is what the person asked to see
  });
  byId("jump-latest").addEventListener("click", () => navigate(currentSessionId()));
  wireExportAll(byId("export-all"), byId("export-all-status"), download);
  byId("new-session").addEventListener("click", () => navigate(null, { view: "chat" }));
  byId("back").addEventListener("click", () => setView("list"));
  window.addEventListener("popstate", () => route());
  wireTelegramLink(graphql);

  list.reload();
  route();
}

/** A quiet line in the top bar while the live connection is down. */
function showLiveState(state) {
  const line = byId("live-status");
  line.textContent = state === "reconnecting" ? "Reconnecting…" : "";
  line.dataset.state = state;
  show(line, state === "reconnecting");
}

function currentSessionId() {
  return new URLSearchParams(window.location.search).get("session");
}

function sessionUrl(sessionId, at = null) {
  if (!sessionId) return window.location.pathname;
  const hit = at ? "&at=" + encodeURIComponent(at) : "";
  return window.location.pathname + "?session=" + encodeURIComponent(sessionId) + hit;
}

/** At phone width only one pane shows: the list or the conversation. */
function setView(view) {
  document.body.dataset.view = view;
}

// --- sign-in -----------------------------------------------------------------------------------

function signInReason(problem) {
  switch (problem.kind) {
    case "missing":
      return "You are not signed in.";
    case "expired":
      return `Your sign-in token expired (${longTime(problem.at.toISOString())}). Get a new one.`;
    case "invalid":
      return "The saved sign-in token is not a valid token. Get a new one.";
    default:
      return `The server did not accept your token (${problem.message}). Get a new one.`;
  }
}

function showSignIn(problem) {
  if (problem.kind !== "missing") forgetToken();
  show(byId("boot"), false);
  show(byId("app"), false);
  show(byId("topbar-actions"), false);
  show(byId("link-panel"), false);
  byId("sign-in-reason").textContent = signInReason(problem);
  byId("sign-in-example").textContent =
    `${window.location.origin}${window.location.pathname}#token=<token>`;
  show(byId("sign-in"), true);
}

function wireSignIn() {
  byId("sign-in-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const token = byId("sign-in-token").value.trim();
    if (!token) return;
    storeToken(token);
    window.location.reload();
  });
  byId("sign-out").addEventListener("click", () => {
    forgetToken();
    window.location.assign(window.location.pathname);
  });
}

// --- Telegram linking --------------------------------------------------------------------------

function wireTelegramLink(graphql) {
  const panel = byId("link-panel");
  const status = byId("link-status");
  byId("link-close").addEventListener("click", () => show(panel, false));
  panel.addEventListener("click", (event) => {
    if (event.target === panel) show(panel, false); // a click beside the card
  });
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape") show(panel, false);
  });
  byId("telegram-link").addEventListener("click", async () => {
    show(panel, true);
    show(byId("link-result"), false);
    status.classList.remove("error");
    status.textContent = "Getting a link code…";
    show(status, true);
    showLinkedAccount(graphql);
    try {
      const { createTelegramLinkCode: link } = await graphql(TELEGRAM_LINK_MUTATION);
      showLinkCode(link);
      show(status, false);
    } catch (error) {
      status.classList.add("error");
      status.textContent = `Could not get a link code: ${error.message}`;
    }
  });
}

/** Which Telegram account is linked now, if any (a new code would replace it). */
async function showLinkedAccount(graphql) {
  const linked = byId("link-linked");
  show(linked, false);
  let account;
  try {
    account = (await graphql(TELEGRAM_LINKED_QUERY)).telegramLink;
  } catch {
    return; // the code is what matters here; its own errors are shown
  }
  if (!account) return;
  const name = account.telegramUsername
    ? `@${account.telegramUsername}`
    : `Telegram user ${account.telegramUserId}`;
  linked.textContent = `Linked to ${name} since ${longTime(account.linkedAt)}. A new code links another account instead.`;
  show(linked, true);
}

function showLinkCode(link) {
  byId("link-code").textContent = link.code;
  const anchor = byId("link-deep-link");
  const safe = safeLink(link.deepLink);
  show(byId("link-deep-link-row"), Boolean(safe));
  if (safe) {
    anchor.href = safe;
    anchor.textContent = safe;
  }
  byId("link-expires").textContent = link.expiresAt
    ? `The code works once, until ${longTime(link.expiresAt)}.`
    : "";
  show(byId("link-result"), true);
}

/** Only http(s) and tg: links become clickable. */
function safeLink(url) {
  if (!url) return null;
  try {
    const parsed = new URL(url);
    return ["https:", "http:", "tg:"].includes(parsed.protocol) ? parsed.href : null;
  } catch {
    return null;
  }
}

wireSignIn();
start();
