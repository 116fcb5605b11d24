-- Find, keep, forget (delete, retention). Deleting a session (deleteSession, the retention job,
-- or an operator's own `DELETE FROM chat_sessions`) removes it everywhere, for good, and its id
-- is never used again.
--
-- Integrity: rows that only ever exist after their session (messages, turn leases, read marks)
-- reference it with a foreign key, ON DELETE CASCADE: nothing can be stored into a session that
-- is gone, also by a turn in flight while it is deleted (its insert fails; the FK check waits for
-- the deleting transaction). Message deliveries already cascade from their message. Rows that by
-- design name a session before it exists (a Telegram chat's pointer and its filed messages, the
-- bot files a message before it creates the session; a schedule's queued run, the worker creates
-- its session when it begins) cannot have a foreign key: one statement-level trigger on
-- chat_sessions handles them, with the tombstones and the live event, in the deleting statement.

-- The registry's key becomes referenceable: a foreign key needs a full unique constraint, not
-- the spec's partial index (chat_sessions_session_id_key, kept: the spec names it and the
-- upsert's `ON CONFLICT (session_id) WHERE session_id IS NOT NULL` infers either). NULL ids
-- stay allowed.
ALTER TABLE chat_sessions ADD CONSTRAINT chat_sessions_session_id_unique UNIQUE (session_id);

-- Tombstones: a deleted id is refused by upsert_session forever (see core/sessions.py).
CREATE TABLE deleted_sessions (
    session_id  text PRIMARY KEY,
    user_id     uuid NOT NULL,
    channel     text NOT NULL,
    deleted_at  timestamptz NOT NULL DEFAULT now()
);

-- Existing orphans. Messages of no session belong to no one (no API reaches them): they are
-- moved aside, for an operator to inspect and drop, not destroyed by a migration. Their
-- deliveries go with them (they could never be sent). Leases and read marks of no session
-- are meaningless and deleted.
CREATE TABLE orphaned_chat_messages (LIKE chat_message_history);
WITH moved AS (
    DELETE FROM chat_message_history m
     WHERE NOT EXISTS (SELECT 1 FROM chat_sessions s WHERE s.session_id = m.session_id)
    RETURNING m.*
)
INSERT INTO orphaned_chat_messages SELECT * FROM moved;
DELETE FROM session_turns t
 WHERE NOT EXISTS (SELECT 1 FROM chat_sessions s WHERE s.session_id = t.session_id);
DELETE FROM session_read_marks r
 WHERE NOT EXISTS (SELECT 1 FROM chat_sessions s WHERE s.session_id = r.session_id);

ALTER TABLE chat_message_history
    ADD CONSTRAINT chat_message_history_session_fkey FOREIGN KEY (session_id)
        REFERENCES chat_sessions (session_id) ON DELETE CASCADE;
ALTER TABLE session_turns
    ADD CONSTRAINT session_turns_session_fkey FOREIGN KEY (session_id)
        REFERENCES chat_sessions (session_id) ON DELETE CASCADE;
ALTER TABLE session_read_marks
    ADD CONSTRAINT session_read_marks_session_fkey FOREIGN KEY (session_id)
        REFERENCES chat_sessions (session_id) ON DELETE CASCADE;

-- Every reference a deletion follows is an index scan.
CREATE INDEX IF NOT EXISTS session_read_marks_session_idx ON session_read_marks (session_id);
CREATE INDEX IF NOT EXISTS telegram_chats_session_idx ON telegram_chats (session_id);
CREATE INDEX IF NOT EXISTS telegram_messages_session_idx ON telegram_messages (session_id);
CREATE INDEX IF NOT EXISTS schedule_runs_session_idx ON schedule_runs (session_id);
-- Retention: a channel's sessions idle since before a moment, oldest first.
CREATE INDEX IF NOT EXISTS chat_sessions_channel_updated_idx
    ON chat_sessions (channel, updated_at);

-- A filed Telegram message of a deleted session stays filed (so that Telegram's redelivery of it
-- is recognised and dropped, never answered into a new session) with no session and no text,
-- marked answered; it is pruned with the others after a week. (`text` is the bot's durable turn
-- queue, 20250114000000_telegram_turns.sql; added here too so the trigger below may clear it.)
ALTER TABLE telegram_messages
    ALTER COLUMN session_id DROP NOT NULL,
    ADD COLUMN IF NOT EXISTS text text;
-- A finished run keeps its row (its slot ran: a duplicate job must not run it again) without
-- its session; an open one is closed as failed.
ALTER TABLE schedule_runs ALTER COLUMN session_id DROP NOT NULL;
-- A schedule appending to one session starts a fresh one when that session is deleted:
-- sched:<id> (generation 0), then sched:<id>.<generation> (workers/schedules.run_session_id).
ALTER TABLE schedules ADD COLUMN IF NOT EXISTS append_generation integer NOT NULL DEFAULT 0;

CREATE FUNCTION us_append_session_id(schedule_id uuid, generation integer) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT 'sched:' || schedule_id::text
           || CASE WHEN generation > 0 THEN '.' || generation::text ELSE '' END
$$;

CREATE FUNCTION us_forget_sessions() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO deleted_sessions (session_id, user_id, channel)
    SELECT session_id, user_id, channel FROM gone WHERE session_id IS NOT NULL
    ON CONFLICT (session_id) DO NOTHING;

    DELETE FROM telegram_chats c USING gone g WHERE c.session_id = g.session_id;
    UPDATE telegram_messages m
       SET session_id = NULL, text = NULL, answered_at = coalesce(m.answered_at, now())
      FROM gone g
     WHERE m.session_id = g.session_id;

    -- The schedules whose ongoing (append) session this was move on to their next one, and so
    -- do their queued runs that have not begun.
    UPDATE schedules s SET append_generation = s.append_generation + 1
      FROM gone g
     WHERE s.id IN (SELECT r.schedule_id FROM schedule_runs r WHERE r.session_id = g.session_id)
       AND s.session_mode = 'append'
       AND g.session_id = us_append_session_id(s.id, s.append_generation);
    UPDATE schedule_runs r SET session_id = us_append_session_id(s.id, s.append_generation)
      FROM gone g, schedules s
     WHERE r.session_id = g.session_id AND s.id = r.schedule_id AND s.session_mode = 'append'
       AND r.status = 'running' AND r.attempts = 0;
    UPDATE schedule_runs r
       SET session_id = NULL,
           status = CASE WHEN r.status = 'running' THEN 'failed' ELSE r.status END,
           error = CASE WHEN r.status = 'running' THEN 'its session was deleted' ELSE r.error END,
           finished_at = coalesce(r.finished_at, now()),
           lease_until = NULL
      FROM gone g
     WHERE r.session_id = g.session_id;

    PERFORM pg_notify('us_events', json_build_object(
                'k', 's', 'e', 'DELETED', 'u', d.user_id, 's', d.session_id, 'c', d.channel
            )::text)
       FROM (SELECT user_id, session_id, channel FROM gone
              WHERE session_id IS NOT NULL LIMIT 200) AS d;
    RETURN NULL;
END
$$;

CREATE TRIGGER chat_sessions_forget
    AFTER DELETE ON chat_sessions
    REFERENCING OLD TABLE AS gone
    FOR EACH STATEMENT EXECUTE FUNCTION us_forget_sessions();

-- The retention job's runs (workers/retention.py), for `unified-sessions retention`: the
-- policy it applied, how far it got, and how it ended. The job keeps the latest 100.
CREATE TABLE retention_runs (
    id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    started_at        timestamptz NOT NULL DEFAULT now(),
    finished_at       timestamptz,
    policy            jsonb NOT NULL,
    sessions_deleted  integer NOT NULL DEFAULT 0,
    error             text
);
