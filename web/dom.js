// Small DOM helpers. Text always goes in as text nodes: nothing from the server is parsed as HTML.

/**
 * Create an element. `attrs`: attributes (`class`, `data-*`, ...); a value of null/false is
 * skipped, true sets an empty attribute. `children`: nodes or strings (strings become text).
 */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/** Show or hide an element (the `hidden` attribute). */
export function show(node, visible) {
  node.hidden = !visible;
}

export const CHANNEL_LABELS = { web: "Web", telegram: "Telegram", scheduled: "Scheduled" };

/** A channel badge: `<span class="badge badge-telegram">Telegram</span>`. */
export function channelBadge(channel) {
  return el(
    "span",
    { class: `badge badge-${channel}`, "data-testid": "channel-badge" },
    CHANNEL_LABELS[channel] || channel,
  );
}

const timeOnly = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit" });
const dayAndMonth = new Intl.DateTimeFormat(undefined, { day: "numeric", month: "short" });
const fullDate = new Intl.DateTimeFormat(undefined, { dateStyle: "medium" });
const fullDateTime = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });

/** A short time for lists: 14:05 today, "3 Mar" this year, else the date. */
export function shortTime(iso) {
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return "";
  const now = new Date();
  if (date.toDateString() === now.toDateString()) return timeOnly.format(date);
  if (date.getFullYear() === now.getFullYear()) return dayAndMonth.format(date);
  return fullDate.format(date);
}

export function longTime(iso) {
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? "" : fullDateTime.format(date);
}

/** A `<time>` element showing `shortTime`, with the full date as its tooltip. */
export function timeElement(iso, className = "time") {
  return el("time", { class: className, datetime: iso, title: longTime(iso) }, shortTime(iso));
}

const weekdayDate = new Intl.DateTimeFormat(undefined, {
  weekday: "long",
  day: "numeric",
  month: "long",
});
const fullDay = new Intl.DateTimeFormat(undefined, { dateStyle: "full" });

/** The local calendar day of a time (null: now), as YYYY-MM-DD. */
export function dayKey(iso) {
  const date = iso ? new Date(iso) : new Date();
  if (Number.isNaN(date.getTime())) return "";
  const pad = (n) => String(n).padStart(2, "0");
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}`;
}

/** "Today", "Yesterday", "Monday 3 March" this year, else the full date. */
export function dayLabel(iso) {
  const date = iso ? new Date(iso) : new Date();
  if (Number.isNaN(date.getTime())) return "";
  const now = new Date();
  const yesterday = new Date(now.getFullYear(), now.getMonth(), now.getDate() - 1);
  if (date.toDateString() === now.toDateString()) return "Today";
  if (date.toDateString() === yesterday.toDateString()) return "Yesterday";
  if (date.getFullYear() === now.getFullYear()) return weekdayDate.format(date);
  return fullDay.format(date);
}

/** A day separator for a message list: the day of `iso` (null: today). */
export function daySeparator(iso) {
  return el(
    "li",
    { class: "day-separator", "data-testid": "day-separator" },
    el("time", { datetime: dayKey(iso) }, dayLabel(iso)),
  );
}

/** The channel server values are enum names (WEB); the app and its testids use lower case. */
export function channelOf(session) {
  return String(session.channel).toLowerCase();
}

export function roleOf(message) {
  return String(message.role).toLowerCase();
}
