// Keeping and forgetting the open session: rename, archive / unarchive, export (JSON, Markdown)
// and delete (after a confirmation); and "Export all" for everything of the person.

import {
  ARCHIVE_SESSION_MUTATION,
  DELETE_SESSION_MUTATION,
  RENAME_SESSION_MUTATION,
  UNARCHIVE_SESSION_MUTATION,
} from "./api.js";
import { CHANNEL_LABELS, channelOf, el, show } from "./dom.js";

const TITLE_MAX = 80; // the server's limit (renameSession: 1-80 characters)

export class SessionActions {
  /**
   * @param graphql   the API client
   * @param download  the file downloader (api.js createDownloader)
   * @param elements  { actions, rename, archive, unarchive, exportJson, exportMd, remove,
   *                    renameForm, renameInput, renameCancel,
   *                    dialog, dialogText, dialogError, confirmDelete, cancelDelete }
   * @param events    { onChanged(session), onDeleted(sessionId), onNotice(text | null) }
   */
  constructor(graphql, download, elements, events) {
    this.graphql = graphql;
    this.download = download;
    this.els = elements;
    this.events = events;
    this.session = null;
    this.busy = false;
    elements.rename.addEventListener("click", () => this.startRename());
    elements.renameCancel.addEventListener("click", () => this.stopRename());
    elements.renameInput.addEventListener("keydown", (event) => {
      if (event.key === "Escape") {
        event.preventDefault();
        this.stopRename();
      }
    });
    elements.renameForm.addEventListener("submit", (event) => {
      event.preventDefault();
      this.rename();
    });
    elements.archive.addEventListener("click", () => this.setArchived(true));
    elements.unarchive.addEventListener("click", () => this.setArchived(false));
    elements.exportJson.addEventListener("click", () => this.exportAs("json"));
    elements.exportMd.addEventListener("click", () => this.exportAs("md"));
    elements.remove.addEventListener("click", () => this.askDelete());
    elements.cancelDelete.addEventListener("click", () => elements.dialog.close());
    elements.confirmDelete.addEventListener("click", () => this.remove());
  }

  /** The session shown in the panel (null: a new session, or none): the actions follow it. */
  setSession(session) {
    const changed = (session && session.sessionId) !== (this.session && this.session.sessionId);
    this.session = session;
    if (changed) {
      this.stopRename({ focus: false });
      if (this.els.dialog.open) this.els.dialog.close();
    }
    show(this.els.actions, Boolean(session));
    if (!session) return;
    const archived = Boolean(session.archivedAt);
    show(this.els.archive, !archived);
    show(this.els.unarchive, archived);
  }

  // --- rename ---------------------------------------------------------------------------------

  startRename() {
    if (!this.session) return;
    const input = this.els.renameInput;
    input.value = this.session.title || "";
    input.maxLength = TITLE_MAX;
    show(this.els.renameForm, true);
    input.focus();
    input.select();
  }

  stopRename({ focus = true } = {}) {
    const wasOpen = !this.els.renameForm.hidden;
    show(this.els.renameForm, false);
    if (wasOpen && focus) this.els.rename.focus();
  }

  async rename() {
    const title = this.els.renameInput.value.trim();
    if (!this.session || !title) return;
    if (title === this.session.title) {
      this.stopRename();
      return;
    }
    const input = { sessionId: this.session.sessionId, title };
    const data = await this.run(RENAME_SESSION_MUTATION, { input }, "Could not rename the session");
    if (!data) return;
    this.events.onChanged(data.renameSession);
    this.stopRename();
  }

  // --- archive --------------------------------------------------------------------------------

  async setArchived(archived) {
    if (!this.session) return;
    const mutation = archived ? ARCHIVE_SESSION_MUTATION : UNARCHIVE_SESSION_MUTATION;
    const what = archived ? "archive" : "unarchive";
    const input = { sessionId: this.session.sessionId };
    const data = await this.run(mutation, { input }, `Could not ${what} the session`);
    if (!data) return;
    const session = archived ? data.archiveSession : data.unarchiveSession;
    this.events.onChanged(session);
    // The pressed button is hidden now: keep the keyboard on its counterpart.
    (archived ? this.els.unarchive : this.els.archive).focus();
  }

  // --- export ---------------------------------------------------------------------------------

  async exportAs(extension) {
    if (!this.session) return;
    const sessionId = this.session.sessionId;
    const button = extension === "json" ? this.els.exportJson : this.els.exportMd;
    button.disabled = true;
    button.setAttribute("aria-busy", "true");
    try {
      const path = `export/sessions/${encodeURIComponent(sessionId)}.${extension}`;
      saveFile(await this.download(path, `${sessionId}.${extension}`));
      this.events.onNotice(null);
    } catch (error) {
      this.events.onNotice(`Could not export the session: ${error.message}`);
    } finally {
      button.disabled = false;
      button.removeAttribute("aria-busy");
    }
  }

  // --- delete ---------------------------------------------------------------------------------

  askDelete() {
    if (!this.session) return;
    const session = this.session;
    const channel = CHANNEL_LABELS[channelOf(session)] || channelOf(session);
    this.els.dialogText.textContent = session.title
      ? `“${session.title}” (${channel} session) will be deleted with all its messages.`
      : `This ${channel} session (${session.sessionId}) will be deleted with all its messages.`;
    show(this.els.dialogError, false);
    this.els.confirmDelete.disabled = false;
    this.els.dialog.showModal();
    this.els.cancelDelete.focus(); // the safe choice first
  }

  async remove() {
    if (!this.session || this.busy) return;
    const { confirmDelete, dialog, dialogError } = this.els;
    confirmDelete.disabled = true;
    const variables = { sessionId: this.session.sessionId };
    const data = await this.run(DELETE_SESSION_MUTATION, variables, null);
    confirmDelete.disabled = false;
    if (!data) {
      dialogError.textContent = `Could not delete the session: ${this.lastError}`;
      show(dialogError, true);
      return;
    }
    dialog.close();
    this.events.onDeleted(data.deleteSession.deletedSessionId);
  }

  /** Run a mutation on the open session; null (and the error shown, if `failure`) on failure. */
  async run(mutation, variables, failure) {
    if (this.busy) return null;
    this.busy = true;
    try {
      const data = await this.graphql(mutation, variables);
      this.events.onNotice(null);
      return data;
    } catch (error) {
      this.lastError = error.message;
      if (failure) this.events.onNotice(`${failure}: ${error.message}`);
      return null;
    } finally {
      this.busy = false;
    }
  }
}

/** "Export all": every session of the person, one line per message (all.jsonl). */
export function wireExportAll(button, status, download) {
  button.addEventListener("click", async () => {
    button.disabled = true;
    status.classList.remove("error");
    status.textContent = "Exporting…";
    try {
      saveFile(await download("export/all.jsonl", "unified-sessions.jsonl"));
      status.textContent = "";
    } catch (error) {
      status.classList.add("error");
      status.textContent = `Could not export: ${error.message}`;
    } finally {
      button.disabled = false;
    }
  });
}

/** Hand a downloaded file to the browser to save (a download needs the token: no plain link). */
export function saveFile({ blob, filename }) {
  const url = URL.createObjectURL(blob);
  const link = el("a", { href: url, download: filename, hidden: true });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000); // the browser has read it by then
}
