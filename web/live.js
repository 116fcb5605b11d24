// Live updates: one WebSocket to /graphql (the graphql-transport-ws protocol, through the
// vendored graphql-ws client) carrying the session list's and the open session's subscriptions.
//
// The client connects lazily (while a subscription exists), sends the token in connection_init,
// and on a dropped connection reconnects with exponential backoff and re-sends every active
// subscription. A message subscription resumes `after:` the newest cursor it has delivered, so a
// reconnect misses nothing and (with the id check in conversation.js) shows nothing twice.

import { MESSAGE_FIELDS, SESSION_FIELDS } from "./api.js";
import { createClient } from "./vendor/graphql-ws/client.js";

const FORBIDDEN = 4403; // the server's answer to a missing, bad or expired token
const PING_EVERY_MS = 15_000; // a ping to find a connection that died without closing
const PONG_WITHIN_MS = 5_000;
const BACKOFF_BASE_MS = 500;
const BACKOFF_CAP_MS = 15_000;

export const SESSION_EVENTS_SUBSCRIPTION = `
subscription SessionEvents {
  sessionEvents {
    kind sessionId
    session { ${SESSION_FIELDS} }
  }
}`;

export const MESSAGE_EVENTS_SUBSCRIPTION = `
subscription MessageEvents($sessionId: String!, $after: String) {
  messageEvents(sessionId: $sessionId, after: $after) {
    kind cursor text
    message { ${MESSAGE_FIELDS} }
  }
}`;

/** 0.5 s, 1 s, 2 s, ... up to 15 s, each with up to a third more at random (no thundering herd). */
function backoff(retries) {
  const wait = Math.min(BACKOFF_CAP_MS, BACKOFF_BASE_MS * 2 ** retries);
  return new Promise((resolve) => setTimeout(resolve, wait + Math.random() * (wait / 3)));
}

function graphqlUrl() {
  const url = new URL("graphql", window.location.href);
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  url.search = "";
  url.hash = "";
  return url.href;
}

export class Live {
  /**
   * @param token   the bearer token, sent in connection_init
   * @param events  { onUnauthenticated(message), onState(state): "connecting" | "live" |
   *                "reconnecting", onReconnected(): after a connection that replaced a lost one,
   *                onEnded(): the server ended a subscription (its token expired) }
   */
  constructor(token, events) {
    this.events = events;
    this.socket = null;
    this.pongTimer = null;
    this.everConnected = false;
    this.client = createClient({
      url: graphqlUrl(),
      lazy: true,
      connectionParams: () => ({ Authorization: `Bearer ${token}` }),
      retryAttempts: Infinity,
      retryWait: backoff,
      shouldRetry: (event) => !(event && event.code === FORBIDDEN),
      keepAlive: PING_EVERY_MS,
      on: {
        connecting: () => events.onState(this.everConnected ? "reconnecting" : "connecting"),
        connected: (socket) => {
          this.socket = socket;
          const again = this.everConnected;
          this.everConnected = true;
          events.onState("live");
          if (again) events.onReconnected();
        },
        closed: (event) => {
          this.socket = null;
          clearTimeout(this.pongTimer);
          if (event && event.code === FORBIDDEN) {
            events.onUnauthenticated(event.reason || "the server refused the token");
          } else if (this.everConnected) {
            events.onState("reconnecting");
          }
        },
        ping: (received) => {
          if (received) return;
          const socket = this.socket;
          clearTimeout(this.pongTimer);
          this.pongTimer = setTimeout(() => {
            if (socket && socket.readyState === WebSocket.OPEN) socket.close(4408, "No pong");
          }, PONG_WITHIN_MS);
        },
        pong: (received) => {
          if (received) clearTimeout(this.pongTimer);
        },
      },
    });
  }

  /** Close the connection for good (after the token is refused). */
  close() {
    this.client.dispose().catch(() => {}); // it rejects when the connection was refused
  }

  /** The viewer's session events; returns a function that ends the subscription. */
  sessionEvents(onEvent) {
    return this.subscribe({ query: SESSION_EVENTS_SUBSCRIPTION }, (data) =>
      onEvent(data.sessionEvents),
    );
  }

  /**
   * A session's message events from `after` on (null: only what happens from now). The cursor of
   * every ADDED event becomes the new `after`: graphql-ws re-sends this same payload object when
   * it reconnects, so the resumed subscription replays exactly what came after the last one seen.
   */
  messageEvents(sessionId, after, onEvent, onError) {
    const payload = { query: MESSAGE_EVENTS_SUBSCRIPTION, variables: { sessionId, after } };
    return this.subscribe(
      payload,
      (data) => {
        const event = data.messageEvents;
        if (event.kind === "ADDED" && event.cursor) payload.variables.after = event.cursor;
        onEvent(event);
      },
      onError,
    );
  }

  subscribe(payload, onData, onError = () => {}) {
    let ended = false; // by the caller: not news
    const unsubscribe = this.client.subscribe(payload, {
      next: (result) => {
        if (result.errors && result.errors.length) onError(result.errors[0]);
        if (result.data) onData(result.data);
      },
      error: (error) => onError(Array.isArray(error) ? error[0] : error),
      // The server ends a subscription when its token expires (it never ends one otherwise).
      complete: () => {
        if (!ended) this.events.onEnded();
      },
    });
    return () => {
      ended = true;
      unsubscribe();
    };
  }
}
