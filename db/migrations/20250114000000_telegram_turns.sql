-- Durable Telegram turns. The bot files a message with its text and the time its turn was
-- queued; the worker answers the chat's waiting messages in Telegram's order, queues the reply
-- in the outbox, then marks the message answered and forgets its text (the registry has it).
-- A turn whose enqueue was lost, or whose worker died, is found again by the worker's sweep.
ALTER TABLE telegram_messages
    ADD COLUMN IF NOT EXISTS text text,
    ADD COLUMN IF NOT EXISTS queued_at timestamptz;

CREATE INDEX IF NOT EXISTS telegram_messages_waiting_idx
    ON telegram_messages (queued_at) WHERE queued_at IS NOT NULL AND answered_at IS NULL;

-- One address's deliveries go out in order: a row is sent only when no older row to the same
-- target is still pending (deliveries.claim), found with this index.
CREATE INDEX IF NOT EXISTS message_deliveries_target_pending_idx
    ON message_deliveries (channel, target, id) WHERE status = 'pending';
