-- Find, keep, forget (part one): a session's title (from its first message, or renamed) and
-- archiving. The default list is the unarchived sessions, by last activity: its own index.
ALTER TABLE chat_sessions
    ADD COLUMN IF NOT EXISTS title text,
    ADD COLUMN IF NOT EXISTS archived_at timestamptz;

CREATE INDEX IF NOT EXISTS chat_sessions_user_unarchived_updated_idx
    ON chat_sessions (user_id, updated_at DESC, id DESC) WHERE archived_at IS NULL;
CREATE INDEX IF NOT EXISTS chat_sessions_user_channel_unarchived_updated_idx
    ON chat_sessions (user_id, channel, updated_at DESC, id DESC) WHERE archived_at IS NULL;
