// The message panel's chrome: its header (the open session's title, badge and id) and its
// status line (loading, or an error with a way to try again).

import { CHANNEL_LABELS, channelBadge, channelOf, el, show } from "./dom.js";

/** `sessionId` null: a new session; `session` null: not loaded (yet, while `loading`). */
export function renderHeader({ title, badge, meta }, { sessionId, session, loading }) {
  badge.replaceChildren();
  if (sessionId === null) {
    badge.append(channelBadge("web"));
    title.textContent = "New session";
    meta.textContent = "Your first message starts a new web session.";
  } else if (session === null) {
    title.textContent = loading ? "Loading…" : "Session not found";
    meta.textContent = sessionId;
  } else {
    const channel = channelOf(session);
    badge.append(channelBadge(channel));
    title.textContent =
      session.title || `${CHANNEL_LABELS[channel] || channel} session · ${session.agentName}`;
    const running = channel === "scheduled" && session.isActive ? " · running" : "";
    const archived = session.archivedAt ? " · archived" : "";
    meta.textContent = session.sessionId + running + archived;
  }
}

/** The status line: `text` (null hides it), a spinner while `busy`, a "Try again" `retry`. */
export function renderStatus(status, text, { busy = false, error = false, retry = null } = {}) {
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
