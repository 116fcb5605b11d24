-- A Telegram turn that fails every time it is tried (not the agent's failure: that is an
-- outcome, and the message is set aside at once) was found again by the worker's sweep forever,
-- and the chat's later messages waited behind it. Each try is counted; past
-- TELEGRAM_TURN_TRIES the message is set aside and the person told (bots/turns.py).
ALTER TABLE telegram_messages ADD COLUMN IF NOT EXISTS tries int NOT NULL DEFAULT 0;
