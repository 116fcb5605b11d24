// A conversation's messages as the list shows them: one bubble per stored message (its
// Markdown, the door it came in by, where it was delivered), day separators between days, and
// the re-reading of deliveries that are still pending.

import { MESSAGE_DELIVERIES_QUERY } from "./api.js";
import { dayKey, daySeparator, el, longTime, roleOf } from "./dom.js";
import { renderMarkdown } from "./markdown.js";

// "via web": the door a message came in by, shown when it is not the session's own channel.
const VIA_LABELS = { web: "via web", telegram: "via Telegram", scheduled: "via schedule" };
const DELIVERY_TARGETS = { web: "the web app", telegram: "Telegram", scheduled: "the schedule" };

// Deliveries change without a live event: a pending one is re-read every few seconds, a while.
const DELIVERY_POLL_MS = 2500;
const DELIVERY_POLL_TIMES = 10;

/**
 * A message bubble: its Markdown, sanitized; its time on hover (the day is a separator).
 * `sessionChannel`: the open session's channel ("web", "telegram", ...).
 */
export function renderMessage(message, sessionChannel) {
  const role = roleOf(message);
  const created = message.createdAt;
  const content = el("div", { class: "message-content" });
  content.append(renderMarkdown(message.content));
  const via = message.via ? String(message.via).toLowerCase() : null;
  const viaLabel =
    via && via !== sessionChannel
      ? el(
          "span",
          { class: "message-via", "data-testid": "message-via", "data-via": via },
          VIA_LABELS[via] || `via ${via}`,
        )
      : null;
  const deliveries = el("span", { class: "message-deliveries" });
  fillDeliveries(deliveries, message.deliveries || []);
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
export function fillDeliveries(container, deliveries) {
  container.replaceChildren(...deliveries.map(deliveryLabel));
}

function deliveryLabel(delivery) {
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
}

export function hasPendingDelivery(deliveries) {
  return (deliveries || []).some((d) => d.status === "PENDING");
}

/** A reply written here in another channel's session is delivered there too. */
export function expectsDelivery(message, sessionChannel) {
  const via = message.via ? String(message.via).toLowerCase() : null;
  return (
    sessionChannel === "telegram" &&
    via !== null &&
    via !== "telegram" &&
    !(message.deliveries || []).length
  );
}

/** The shown bubble of a stored message in `list`, or null. */
export function messageNode(list, messageId) {
  const id = CSS.escape(messageId);
  return list.querySelector(`:scope > [data-testid="message"][data-message-id="${id}"]`);
}

/** A day separator above the first message of each day (a message being sent is today). */
export function renderDays(list) {
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

/**
 * The messages of `list` whose deliveries are re-read: every few seconds (at most
 * DELIVERY_POLL_TIMES times) while one is pending, or (`expect`) while none is there yet.
 * `stop()` ends them all (another session opened); a look under way then changes nothing.
 */
export class DeliveryPolls {
  constructor(graphql, list) {
    this.graphql = graphql;
    this.list = list;
    this.timers = new Map(); // message id -> timer
    this.generation = 0;
  }

  /** Show a message's deliveries as they are now (and keep re-reading a pending one). */
  show(messageId, deliveries) {
    const node = messageNode(this.list, messageId);
    const container = node && node.querySelector(".message-deliveries");
    if (container) fillDeliveries(container, deliveries);
  }

  poll(messageId, { expect = false } = {}) {
    if (this.timers.has(messageId)) return;
    const generation = this.generation;
    let times = 0;
    const tick = async () => {
      times += 1;
      const deliveries = await this.read(messageId);
      if (generation !== this.generation) return;
      if (deliveries !== null) this.show(messageId, deliveries);
      const again =
        deliveries === null || hasPendingDelivery(deliveries) || (expect && !deliveries.length);
      if (again && times < DELIVERY_POLL_TIMES) {
        this.timers.set(messageId, setTimeout(tick, DELIVERY_POLL_MS));
      } else {
        this.timers.delete(messageId);
      }
    };
    this.timers.set(messageId, setTimeout(tick, DELIVERY_POLL_MS));
  }

  /** The message's deliveries now, or null when the look failed. */
  async read(messageId) {
    try {
      const data = await this.graphql(MESSAGE_DELIVERIES_QUERY, { id: messageId });
      const found = data.node && data.node.deliveries;
      return Array.isArray(found) ? found : null;
    } catch {
      return null; // a missed look is only a stale label; the next one may work
    }
  }

  stop() {
    this.generation += 1;
    for (const timer of this.timers.values()) clearTimeout(timer);
    this.timers.clear();
  }
}
