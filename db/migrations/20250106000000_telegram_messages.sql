-- The Telegram messages the bot has handled, and the session each was filed under. Telegram
-- redelivers an update it is not sure was handled; the redelivery goes to the same session
-- (whatever /new did since), stores nothing twice, and once the answer was delivered
-- (answered_at) sends nothing again. A /new is filed under the session it started, so a
-- redelivered /new changes nothing either. A message sent before the account was unlinked and
-- linked to someone else stays the first person's: its redelivery is left alone. Rows older than a week are pruned as new messages
-- arrive (Telegram gives up on an update after 24 hours).
CREATE TABLE IF NOT EXISTS telegram_messages (
    telegram_chat_id  bigint NOT NULL,
    message_id        bigint NOT NULL,  -- Telegram's, unique within a chat
    user_id           uuid NOT NULL,    -- the person linked when it came; another's is left alone
    session_id        text NOT NULL,
    received_at       timestamptz NOT NULL DEFAULT now(),
    answered_at       timestamptz,
    PRIMARY KEY (telegram_chat_id, message_id)
);

-- Messages of the last two days that were stored before this table existed, so that their
-- redeliveries find them too (with no answered_at: as before, a redelivery re-sends the stored
-- reply). Their idempotency key is 'tg:<chat id>:<message id>'.
INSERT INTO telegram_messages (telegram_chat_id, message_id, user_id, session_id, received_at)
SELECT split_part(m.idempotency_key, ':', 2)::bigint,
       split_part(m.idempotency_key, ':', 3)::bigint,
       s.user_id,
       m.session_id,
       m.created_at
  FROM chat_message_history m
  JOIN chat_sessions s ON s.session_id = m.session_id
 WHERE m.idempotency_key ~ '^tg:-?[0-9]{1,18}:[0-9]{1,18}$'
   AND m.created_at > now() - interval '2 days'
   AND s.user_id IS NOT NULL
ON CONFLICT DO NOTHING;
