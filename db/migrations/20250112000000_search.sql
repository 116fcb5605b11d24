-- Find, keep, forget (search): full-text search over a person's messages of every channel, in
-- PostgreSQL itself, scoped to the viewer inside the index.
--
-- Each message carries its owner (`user_id`, the owner of its session: also the distribution
-- column a sharded deployment would want) and a stored `search_vector`: the message's text
-- (string content, or the text of its parts) under the configured text-search configuration,
-- plus one owner lexeme ('owner <uuid>', with a space, which the parser never produces from text).
-- A search is `search_vector @@ (websearch_to_tsquery(config, query) && 'owner <viewer>')` on one
-- GIN index: the index intersects the query's posting lists with the viewer's own, so no other
-- person's row is ever read from the table. (btree_gin's (user_id, tsvector) would do the same,
-- but the embedded PostgreSQL of `make dev`/`make test` ships no contrib extensions.)
--
-- A BEFORE trigger fills both columns on every insert (whatever statement inserts), looking the
-- owner up in chat_sessions; a message stored before its session exists is owned (and made
-- findable) when the session is created.

-- The configuration the vectors are built with: one row. The API checks SEARCH_LANGUAGE against
-- it at start-up; `SELECT us_search_reconfigure('german')` switches it (rewrites every vector).
-- Text, not regconfig: pg_upgrade refuses user tables with reg* columns other than regclass.
CREATE TABLE search_settings (
    only_row  boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    config    text NOT NULL DEFAULT 'english'
);
INSERT INTO search_settings DEFAULT VALUES;

-- The searchable text of a LangChain message: data.content when a string, else the text of its
-- parts (strings, or objects with a string "text"), joined by spaces.
CREATE FUNCTION us_message_text(message jsonb) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE jsonb_typeof(message -> 'data' -> 'content')
        WHEN 'string' THEN message -> 'data' ->> 'content'
        WHEN 'array' THEN coalesce((
            SELECT string_agg(CASE
                       WHEN jsonb_typeof(part) = 'string' THEN part #>> '{}'
                       WHEN jsonb_typeof(part -> 'text') = 'string' THEN part ->> 'text'
                   END, ' ' ORDER BY n)
              FROM jsonb_array_elements(message -> 'data' -> 'content') WITH ORDINALITY AS p(part, n)
        ), '')
        ELSE ''
    END
$$;

-- The tsquery term naming an owner; the same lexeme us_search_vector adds.
CREATE FUNCTION us_owner_query(owner uuid) RETURNS tsquery
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT ('''owner ' || owner::text || '''')::tsquery
$$;

CREATE FUNCTION us_search_vector(config regconfig, message jsonb, owner uuid) RETURNS tsvector
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT to_tsvector(config, us_message_text(message))
           || CASE WHEN owner IS NULL THEN ''::tsvector
                   ELSE array_to_tsvector(ARRAY['owner ' || owner::text]) END
$$;

ALTER TABLE chat_message_history
    ADD COLUMN IF NOT EXISTS user_id uuid,
    ADD COLUMN IF NOT EXISTS search_vector tsvector;

-- Backfill (one rewrite of the table): the owner of each message's session, and its vector.
UPDATE chat_message_history m
   SET user_id = (SELECT s.user_id FROM chat_sessions s WHERE s.session_id = m.session_id),
       search_vector = us_search_vector(
           'english',
           m.message,
           (SELECT s.user_id FROM chat_sessions s WHERE s.session_id = m.session_id));

-- Every insert (and any change of a message's session, content or owner): the owner is always
-- the session's (a given user_id is overwritten, so a message cannot be filed under someone
-- else), NULL while there is no such session.
CREATE FUNCTION us_message_search_fields() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.user_id := (SELECT s.user_id FROM chat_sessions s WHERE s.session_id = NEW.session_id);
    NEW.search_vector := us_search_vector(
        (SELECT config FROM search_settings)::regconfig, NEW.message, NEW.user_id);
    RETURN NEW;
END
$$;

CREATE TRIGGER chat_message_history_search_fields
    BEFORE INSERT OR UPDATE OF session_id, message, user_id ON chat_message_history
    FOR EACH ROW EXECUTE FUNCTION us_message_search_fields();

-- Messages stored before their session existed get their owner when it is created.
CREATE FUNCTION us_own_orphan_messages() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE chat_message_history SET user_id = NEW.user_id
     WHERE session_id = NEW.session_id AND user_id IS NULL;
    RETURN NULL;
END
$$;

CREATE TRIGGER chat_sessions_own_orphan_messages
    AFTER INSERT ON chat_sessions
    FOR EACH ROW WHEN (NEW.session_id IS NOT NULL)
    EXECUTE FUNCTION us_own_orphan_messages();

-- Switch the text-search configuration: every vector is rebuilt, in this one transaction.
CREATE FUNCTION us_search_reconfigure(config regconfig) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE search_settings SET config = us_search_reconfigure.config::text;
    UPDATE chat_message_history
       SET search_vector = us_search_vector(us_search_reconfigure.config, message, user_id);
END
$$;

-- The search: the viewer's matches through the vector (GIN), then newest first.
CREATE INDEX chat_message_history_search_idx
    ON chat_message_history USING gin (search_vector);
-- A person's messages by recency: a query matching most of them (a common word, "-word") is
-- cheaper walked newest first until the page is full than collected and sorted.
CREATE INDEX chat_message_history_user_created_idx
    ON chat_message_history (user_id, created_at, id);
