-- Continue anywhere. `via`: the door a message came in by (web, telegram, scheduled); NULL on
-- rows written before this migration, read as the session's own channel.
ALTER TABLE chat_message_history ADD COLUMN IF NOT EXISTS via text;

-- The outbox: every reply to be sent out through a channel (a web question in a Telegram
-- session answered in Telegram). Sent by the worker at least once, retried with backoff, marked
-- failed after a bounded number of attempts; a row is never lost to a restart.
CREATE TABLE message_deliveries (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    message_id      bigint NOT NULL REFERENCES chat_message_history (id) ON DELETE CASCADE,
    channel         text NOT NULL,
    target          text,          -- the channel's address (a Telegram chat id); NULL: none
    status          text NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'sent', 'failed')),
    attempts        integer NOT NULL DEFAULT 0,
    last_error      text,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    sent_at         timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (message_id, channel)
);
CREATE INDEX message_deliveries_due_idx
    ON message_deliveries (next_attempt_at) WHERE status = 'pending';
