-- What the history API needs: keyset pages over messages and sessions ordered by last activity,
-- columns the keyset relies on made NOT NULL, and room to record failures and idempotency keys.
UPDATE chat_sessions
   SET created_at = coalesce(created_at, updated_at, now()),
       updated_at = coalesce(updated_at, created_at, now()),
       is_active  = coalesce(is_active, false),
       agent_name = coalesce(agent_name, 'default')
 WHERE created_at IS NULL OR updated_at IS NULL OR is_active IS NULL OR agent_name IS NULL;

ALTER TABLE chat_sessions
    ALTER COLUMN created_at SET NOT NULL,
    ALTER COLUMN updated_at SET NOT NULL,
    ALTER COLUMN is_active SET NOT NULL,
    ALTER COLUMN agent_name SET DEFAULT 'default',
    ALTER COLUMN agent_name SET NOT NULL,
    ADD COLUMN IF NOT EXISTS last_error text,
    ADD COLUMN IF NOT EXISTS last_error_at timestamptz;

UPDATE chat_message_history SET created_at = now() WHERE created_at IS NULL;
ALTER TABLE chat_message_history
    ALTER COLUMN created_at SET NOT NULL,
    -- A channel's own id for a message (a Telegram update, a schedule slot): a redelivery of the
    -- same message is refused by the unique index below instead of being stored twice.
    ADD COLUMN IF NOT EXISTS idempotency_key text;

-- One page of a session's history: WHERE session_id = $1 AND id < $2 ORDER BY id DESC LIMIT n.
CREATE INDEX IF NOT EXISTS chat_message_history_session_id_id_idx
    ON chat_message_history (session_id, id);

CREATE UNIQUE INDEX IF NOT EXISTS chat_message_history_idempotency_key
    ON chat_message_history (session_id, idempotency_key)
 WHERE idempotency_key IS NOT NULL;

-- A person's sessions by last activity, all channels or one: keyset on (updated_at, id).
CREATE INDEX IF NOT EXISTS chat_sessions_user_updated_idx
    ON chat_sessions (user_id, updated_at DESC, id DESC);
CREATE INDEX IF NOT EXISTS chat_sessions_user_channel_updated_idx
    ON chat_sessions (user_id, channel, updated_at DESC, id DESC);
