// Message Markdown: marked turns it into HTML, DOMPurify sanitizes that, and only the sanitized
// DOM (a fragment, never an HTML string) goes into the page. Raw HTML in a message is not
// markup: it is shown as the text it is. Images are not loaded (their alt text is shown).

import DOMPurify from "./vendor/dompurify/purify.es.js";
import { Marked } from "./vendor/marked/marked.esm.js";

const ESCAPES = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };

function escapeHtml(text) {
  return String(text).replace(/[&<>"']/g, (c) => ESCAPES[c]);
}

/** Line breaks stay line breaks, and stay "\n" in the text (`textContent` is the message). */
function withBreaks(html) {
  return html.replace(/\n/g, "<br>\n");
}

const marked = new Marked({
  gfm: true,
  breaks: true,
  async: false,
  renderer: {
    html({ text, block }) {
      const escaped = withBreaks(escapeHtml(block ? text.replace(/\n+$/, "") : text));
      return block ? `<p>${escaped}</p>\n` : escaped;
    },
    br() {
      return "<br>\n";
    },
    image({ text }) {
      return escapeHtml(text);
    },
  },
});

const ALLOWED_TAGS = [
  "a", "blockquote", "br", "code", "del", "em", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "li",
  "ol", "p", "pre", "strong", "table", "tbody", "td", "th", "thead", "tr", "ul",
];
const ALLOWED_ATTR = ["href", "title", "start", "align"];

const purify = DOMPurify(window);
purify.addHook("afterSanitizeAttributes", (node) => {
  if (node.tagName === "A") {
    node.setAttribute("target", "_blank");
    node.setAttribute("rel", "noopener noreferrer nofollow");
  }
});

/** A message's Markdown as a sanitized DocumentFragment. */
export function renderMarkdown(source) {
  let html;
  try {
    html = marked.parse(String(source)).trim();
  } catch {
    html = `<p>${withBreaks(escapeHtml(source))}</p>`;
  }
  return purify.sanitize(html, {
    ALLOWED_TAGS,
    ALLOWED_ATTR,
    ALLOWED_URI_REGEXP: /^(?:https?:|mailto:|tg:|#)/i,
    RETURN_DOM_FRAGMENT: true,
  });
}
