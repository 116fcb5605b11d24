-- A session's messages become visible in the order of their ids, so that "everything after
-- id N" (a live subscriber's reconnect, a replay, the web app's history) misses nothing.
-- An id is drawn when its row is inserted, not when it commits: two writers to one session
-- (the bot storing a message while the worker stores a reply; a write that waited for the
-- session row's lock) could commit the later id first, and a reader that saw it would never
-- page back to the earlier one. Here writers to one session take turns, from their insert to
-- their commit (the session row, locked as an UPDATE of it would lock it, which the turn's own
-- statements do anyway), and a writer whose id was drawn before a row that committed while it
-- waited draws again. Ids given explicitly (an import, in order) are kept.
CREATE FUNCTION us_message_in_commit_order() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM FROM chat_sessions s WHERE s.session_id = NEW.session_id FOR NO KEY UPDATE;
    IF NEW.id < (SELECT max(h.id) FROM chat_message_history h
                  WHERE h.session_id = NEW.session_id) THEN
        NEW.id := nextval(pg_get_serial_sequence('chat_message_history', 'id'));
    END IF;
    RETURN NEW;
END
$$;

-- Before chat_message_history_search_fields (BEFORE triggers fire in name order).
CREATE TRIGGER chat_message_history_commit_order
    BEFORE INSERT ON chat_message_history
    FOR EACH ROW EXECUTE FUNCTION us_message_in_commit_order();
