-- The spec's migration: chat_sessions becomes the registry of every channel (AC-1, AC-2, AC-3).
ALTER TABLE chat_sessions
    ADD COLUMN IF NOT EXISTS channel text NOT NULL DEFAULT 'web',
    ADD COLUMN IF NOT EXISTS session_id text;

ALTER TABLE chat_sessions
    ADD CONSTRAINT chat_sessions_channel_check CHECK (channel IN ('web', 'telegram', 'scheduled'));

-- Backfill: every existing row is a web session whose history is keyed by its chat_id.
UPDATE chat_sessions
   SET session_id = chat_id::text,
       channel = 'web'
 WHERE session_id IS NULL;

CREATE UNIQUE INDEX IF NOT EXISTS chat_sessions_session_id_key
    ON chat_sessions (session_id)
 WHERE session_id IS NOT NULL;

CREATE INDEX IF NOT EXISTS chat_sessions_user_channel_created_idx
    ON chat_sessions (user_id, channel, created_at DESC);
