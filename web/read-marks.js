// The person's read mark in the open session: moved up to the newest message shown, one request
// at a time, and only while the page is visible (what arrived while it was hidden is marked read
// when it shows again).

import { MARK_SESSION_READ_MUTATION } from "./api.js";

export class ReadMarks {
  /** `onRead(sessionId)`: the session was (about to be) marked read, e.g. to clear its badge. */
  constructor(graphql, onRead) {
    this.graphql = graphql;
    this.onRead = onRead;
    this.generation = 0;
    this.reset();
    document.addEventListener("visibilitychange", () => {
      if (document.visibilityState === "visible" && this.unseen) this.mark(...this.unseen);
    });
  }

  /** Another session opened: a request under way for the last one is left to finish alone. */
  reset() {
    this.generation += 1;
    this.reading = false; // a markSessionRead request is under way
    this.next = null; // [sessionId, cursor] to mark once it is done
    this.unseen = null; // [sessionId, cursor] shown while the page was hidden
  }

  /** Mark `sessionId` read up to the message `cursor` (null: its newest). */
  mark(sessionId, cursor) {
    if (document.visibilityState === "hidden") {
      this.unseen = [sessionId, cursor];
      return;
    }
    this.unseen = null;
    this.onRead(sessionId);
    if (this.reading) {
      this.next = [sessionId, cursor];
      return;
    }
    const generation = this.generation;
    this.reading = true;
    const input = { sessionId };
    if (cursor) input.upTo = cursor;
    this.graphql(MARK_SESSION_READ_MUTATION, { input })
      .catch(() => {}) // a missed mark only leaves a badge; the next message marks again
      .finally(() => {
        if (generation !== this.generation) return;
        this.reading = false;
        const next = this.next;
        this.next = null;
        if (next) this.mark(...next);
      });
  }
}
