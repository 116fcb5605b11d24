// The app's only way to the server: POST /graphql with the bearer token, plus token storage.

const TOKEN_KEY = "unified-sessions.token";

/** An error from the API: `codes` holds each GraphQL error's extensions.code. */
export class ApiError extends Error {
  constructor(message, { codes = [], data = null, network = false } = {}) {
    super(message);
    this.codes = codes;
    this.data = data;
    this.network = network;
  }

  has(code) {
    return this.codes.includes(code);
  }
}

// --- the token ------------------------------------------------------------------------------

/** Take `#token=...` from the address bar into storage (then remove it); return the token. */
export function takeToken() {
  const fragment = new URLSearchParams(window.location.hash.slice(1));
  const fromUrl = fragment.get("token");
  if (fromUrl) {
    localStorage.setItem(TOKEN_KEY, fromUrl);
    fragment.delete("token");
    const rest = fragment.toString();
    const url = window.location.pathname + window.location.search + (rest ? "#" + rest : "");
    history.replaceState(history.state, "", url);
  }
  return localStorage.getItem(TOKEN_KEY);
}

export function storeToken(token) {
  localStorage.setItem(TOKEN_KEY, token);
}

export function forgetToken() {
  localStorage.removeItem(TOKEN_KEY);
}

/**
 * Why a token cannot be used, judged locally before asking the server (null: looks usable).
 * The server still verifies the signature; this only catches missing, garbled and expired ones.
 */
export function tokenProblem(token) {
  if (!token) return { kind: "missing" };
  const claims = decodeClaims(token);
  if (claims === null) return { kind: "invalid" };
  if (typeof claims.exp === "number" && claims.exp * 1000 <= Date.now()) {
    return { kind: "expired", at: new Date(claims.exp * 1000) };
  }
  return null;
}

function decodeClaims(token) {
  const parts = token.split(".");
  if (parts.length !== 3) return null;
  try {
    const base64 = parts[1].replace(/-/g, "+").replace(/_/g, "/");
    const json = atob(base64 + "=".repeat((4 - (base64.length % 4)) % 4));
    const claims = JSON.parse(json);
    return claims && typeof claims === "object" ? claims : null;
  } catch {
    return null;
  }
}

// --- GraphQL --------------------------------------------------------------------------------

/** A GraphQL client bound to a token; `onUnauthenticated(message)` runs when the server refuses it. */
export function createClient(token, { onUnauthenticated }) {
  return async function graphql(query, variables = {}) {
    let response;
    try {
      response = await fetch("graphql", {
        method: "POST",
        headers: {
          "Content-Type": "application/json",
          Accept: "application/json",
          Authorization: `Bearer ${token}`,
        },
        body: JSON.stringify({ query, variables }),
      });
    } catch {
      throw new ApiError("Could not reach the server. Check your connection and try again.", {
        network: true,
      });
    }
    let body;
    try {
      body = await response.json();
    } catch {
      throw new ApiError(`The server answered HTTP ${response.status}.`, { network: true });
    }
    const errors = Array.isArray(body.errors) ? body.errors : [];
    if (errors.length === 0 && body.data) return body.data;
    const codes = errors.map((e) => (e.extensions && e.extensions.code) || "UNKNOWN");
    const message = errors.length ? errors[0].message : `HTTP ${response.status}`;
    const error = new ApiError(message, { codes, data: body.data || null });
    if (error.has("UNAUTHENTICATED")) onUnauthenticated(message);
    throw error;
  };
}

/** A fresh id for sendMessage's clientMessageId (a retry with it stores nothing twice). */
export function newClientMessageId() {
  if (crypto.randomUUID) return crypto.randomUUID();
  const bytes = crypto.getRandomValues(new Uint8Array(16)); // randomUUID needs a secure context
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

// --- the documents --------------------------------------------------------------------------

export const SESSION_FIELDS = `
  sessionId channel agentName title archivedAt isActive updatedAt lastError unreadCount
  lastMessage { id role content createdAt }
`;

export const DELIVERY_FIELDS = "channel status attempts lastError sentAt";

export const MESSAGE_FIELDS = `id role content createdAt via deliveries { ${DELIVERY_FIELDS} }`;

export const SESSIONS_QUERY = `
query Sessions($channel: Channel, $archived: Boolean, $first: Int, $after: String) {
  sessions(channel: $channel, archived: $archived, first: $first, after: $after) {
    edges { node { ${SESSION_FIELDS} } }
    pageInfo { hasNextPage endCursor }
  }
}`;

export const SESSION_QUERY = `
query Session($sessionId: String!, $last: Int, $before: String) {
  session(sessionId: $sessionId) {
    ${SESSION_FIELDS}
    messages(last: $last, before: $before) {
      edges { cursor node { ${MESSAGE_FIELDS} } }
      pageInfo { hasPreviousPage startCursor }
    }
  }
}`;

export const OLDER_MESSAGES_QUERY = `
query OlderMessages($sessionId: String!, $last: Int, $before: String) {
  messages(sessionId: $sessionId, last: $last, before: $before) {
    edges { cursor node { ${MESSAGE_FIELDS} } }
    pageInfo { hasPreviousPage startCursor }
  }
}`;

export const SEND_MESSAGE_MUTATION = `
mutation SendMessage($input: SendMessageInput!) {
  sendMessage(input: $input) {
    session { ${SESSION_FIELDS} }
    userMessage { ${MESSAGE_FIELDS} }
    reply { ${MESSAGE_FIELDS} }
  }
}`;

/** One message's deliveries, re-read while one is still being sent (they change without events). */
export const MESSAGE_DELIVERIES_QUERY = `
query MessageDeliveries($id: ID!) {
  node(id: $id) {
    ... on ChatMessage { id deliveries { ${DELIVERY_FIELDS} } }
  }
}`;

export const MARK_SESSION_READ_MUTATION = `
mutation MarkSessionRead($input: MarkSessionReadInput!) {
  markSessionRead(input: $input) { sessionId unreadCount }
}`;

export const TELEGRAM_LINKED_QUERY = `
query TelegramLinked {
  telegramLink { telegramUserId telegramUsername linkedAt }
}`;

export const TELEGRAM_LINK_MUTATION = `
mutation TelegramLink {
  createTelegramLinkCode { code expiresAt deepLink }
}`;

// --- find, keep, forget ---------------------------------------------------------------------

/**
 * A file download bound to the token: GET `path` (e.g. "export/all.jsonl") with the bearer token
 * and resolve to { blob, filename } (the name from Content-Disposition, else `fallbackName`).
 */
export function createDownloader(token, { onUnauthenticated }) {
  return async function download(path, fallbackName) {
    let response;
    try {
      response = await fetch(path, { headers: { Authorization: `Bearer ${token}` } });
    } catch {
      throw new ApiError("Could not reach the server. Check your connection and try again.", {
        network: true,
      });
    }
    if (!response.ok) {
      let message = `The server answered HTTP ${response.status}.`;
      try {
        const body = await response.json();
        if (body && typeof body.error === "string") message = body.error;
      } catch {
        // not JSON: keep the status line
      }
      if (response.status === 401) onUnauthenticated(message);
      throw new ApiError(message);
    }
    const blob = await response.blob();
    const filename = filenameOf(response.headers.get("Content-Disposition")) || fallbackName;
    return { blob, filename };
  };
}

/** The file name of a Content-Disposition header (plain `filename="..."` only), or null. */
function filenameOf(disposition) {
  const match = /filename="([^"\\/]+)"/.exec(disposition || "");
  return match ? match[1] : null;
}

export const RENAME_SESSION_MUTATION = `
mutation RenameSession($input: RenameSessionInput!) {
  renameSession(input: $input) { ${SESSION_FIELDS} }
}`;

export const ARCHIVE_SESSION_MUTATION = `
mutation ArchiveSession($input: ArchiveSessionInput!) {
  archiveSession(input: $input) { ${SESSION_FIELDS} }
}`;

export const UNARCHIVE_SESSION_MUTATION = `
mutation UnarchiveSession($input: ArchiveSessionInput!) {
  unarchiveSession(input: $input) { ${SESSION_FIELDS} }
}`;

export const DELETE_SESSION_MUTATION = `
mutation DeleteSession($sessionId: String!) {
  deleteSession(input: { sessionId: $sessionId }) { deletedSessionId }
}`;

export const SEARCH_QUERY = `
query Search($query: String!, $channel: Channel, $first: Int, $after: String) {
  search(query: $query, channel: $channel, first: $first, after: $after) {
    edges {
      node {
        snippet messageCursor
        session { sessionId channel agentName title archivedAt }
        message { id role createdAt }
      }
    }
    pageInfo { hasNextPage endCursor }
  }
}`;

/** A session opened at a search hit: its fields and the page of messages centred on the hit. */
export const SESSION_AROUND_QUERY = `
query SessionAround($sessionId: String!, $around: String!, $last: Int) {
  session(sessionId: $sessionId) { ${SESSION_FIELDS} }
  messages(sessionId: $sessionId, around: $around, last: $last) {
    edges { cursor node { ${MESSAGE_FIELDS} } }
    pageInfo { hasPreviousPage hasNextPage startCursor endCursor }
  }
}`;

/** The `last` messages just newer than `after` (paging forward from a search hit). */
export const NEWER_MESSAGES_QUERY = `
query NewerMessages($sessionId: String!, $last: Int, $after: String) {
  messages(sessionId: $sessionId, last: $last, after: $after) {
    edges { cursor node { ${MESSAGE_FIELDS} } }
    pageInfo { hasNextPage endCursor }
  }
}`;
