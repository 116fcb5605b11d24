-- Telegram: which Telegram account belongs to which person, the one-time codes that link them,
-- and the conversation each (Telegram chat, person) pair is currently in.

-- One Telegram account per person and one person per Telegram account.
CREATE TABLE IF NOT EXISTS telegram_links (
    telegram_user_id   bigint PRIMARY KEY,
    user_id            uuid NOT NULL,
    telegram_username  text,
    linked_at          timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX IF NOT EXISTS telegram_links_user_id_key ON telegram_links (user_id);

-- A link code is a credential: only its SHA-256 is stored. Single use: redeeming is
-- UPDATE ... SET used_at = now() WHERE used_at IS NULL AND expires_at > now() RETURNING user_id,
-- so of two racing redemptions exactly one gets the row.
CREATE TABLE IF NOT EXISTS telegram_link_codes (
    code_hash        bytea PRIMARY KEY CHECK (octet_length(code_hash) = 32),
    user_id          uuid NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    expires_at       timestamptz NOT NULL,
    used_at          timestamptz,
    used_by          bigint  -- the Telegram user id that redeemed it
);
-- A person's codes (pruned when they ask for a new one).
CREATE INDEX IF NOT EXISTS telegram_link_codes_user_created_idx
    ON telegram_link_codes (user_id, created_at DESC);

-- The session a linked person is talking in from a Telegram chat; /new points it at a fresh one.
CREATE TABLE IF NOT EXISTS telegram_chats (
    telegram_chat_id  bigint NOT NULL,
    user_id           uuid NOT NULL,
    telegram_user_id  bigint NOT NULL,
    session_id        text NOT NULL,
    started_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (telegram_chat_id, user_id)
);
-- Unlinking forgets the person's chats with that Telegram account.
CREATE INDEX IF NOT EXISTS telegram_chats_telegram_user_idx
    ON telegram_chats (telegram_user_id, user_id);
