-- A deleted session's id is never used again, also when an upsert of it races the delete.
-- upsert_session's own check (NOT EXISTS in deleted_sessions) reads the snapshot its statement
-- began with: an upsert that met the row while a delete of it was in flight waits for the
-- deleting transaction and, once it commits, inserts the id anew without looking again, next
-- to the tombstone. This trigger looks again after the insert, in a snapshot of its own (taken
-- once the deleter has committed), and fails the insert; upsert_session reports it as it
-- reports any deleted id.
CREATE FUNCTION us_refuse_deleted_session_id() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT FROM deleted_sessions d WHERE d.session_id = NEW.session_id) THEN
        RAISE EXCEPTION 'session % was deleted; its id cannot be used again', NEW.session_id
              USING ERRCODE = 'US001';
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER chat_sessions_refuse_deleted_id
    AFTER INSERT ON chat_sessions
    FOR EACH ROW WHEN (NEW.session_id IS NOT NULL)
    EXECUTE FUNCTION us_refuse_deleted_session_id();
