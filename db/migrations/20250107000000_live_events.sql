-- Live updates. Every committed write to the registry sends a NOTIFY on `us_events`, whatever
-- process or statement made it (the API, the bot, the worker, a script): the triggers run inside
-- the writing transaction and PostgreSQL delivers the notification only if it commits. Each API
-- process LISTENs and fans events out to its subscribers. Events are hints, never the data:
-- subscribers read the rows, and a client that missed hints replays from a cursor.
--
-- Statement-level triggers with transition tables: one statement that writes many rows (an
-- import, a backfill) sends one notification per session (up to 50 ids each, else a "replay"
-- hint), not one per row. Payloads stay far under NOTIFY's 8,000-byte limit.

CREATE OR REPLACE FUNCTION us_notify_messages() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('us_events', json_build_object(
                'k', 'm',
                's', per_session.session_id,
                'ids', CASE WHEN per_session.n <= 50 THEN per_session.ids END
            )::text)
       FROM (SELECT session_id, count(*) AS n,
                    (array_agg(id ORDER BY id))[1:50] AS ids
               FROM new_rows GROUP BY session_id) AS per_session;
    RETURN NULL;
END
$$;

CREATE TRIGGER chat_message_history_notify
    AFTER INSERT ON chat_message_history
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION us_notify_messages();

CREATE OR REPLACE FUNCTION us_notify_sessions() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('us_events', json_build_object(
                'k', 's',
                'e', TG_ARGV[0],
                'u', changed.user_id,
                's', changed.session_id
            )::text)
       FROM (SELECT DISTINCT user_id, session_id FROM new_rows
              WHERE session_id IS NOT NULL LIMIT 200) AS changed;
    RETURN NULL;
END
$$;

CREATE TRIGGER chat_sessions_notify_created
    AFTER INSERT ON chat_sessions
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION us_notify_sessions('CREATED');

CREATE TRIGGER chat_sessions_notify_updated
    AFTER UPDATE ON chat_sessions
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION us_notify_sessions('UPDATED');

-- Read marks: the newest message a person has read in a session. unreadCount counts the
-- session's messages after it.
CREATE TABLE session_read_marks (
    user_id      uuid NOT NULL,
    session_id   text NOT NULL,
    last_read_id bigint NOT NULL,
    read_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, session_id)
);
