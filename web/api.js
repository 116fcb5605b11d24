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
  sessionId channel agentName title isActive updatedAt lastError unreadCount
  lastMessage { id role content createdAt }
`;

export const DELIVERY_FIELDS = "channel status attempts lastError sentAt";

export const MESSAGE_FIELDS = `id role content createdAt via deliveries { ${DELIVERY_FIELDS} }`;

export const SESSIONS_QUERY = `
query Sessions($channel: Channel, $first: Int, $after: String) {
  sessions(channel: $channel, first: $first, after: $after) {
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
