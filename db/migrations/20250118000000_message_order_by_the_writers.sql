-- The trigger of 20250117000000 (a session's messages visible in id order) goes: it redrew
-- explicit ids below a session's newest (an import, a restore; even a duplicate id slipped
-- past ON CONFLICT (id)), and it held every message insert's session row until commit, so an
-- outside writer's open transaction froze the session and two importers writing sessions in
-- opposite orders deadlocked (found by review). The service's own statements now take the
-- session row before the id is drawn (graphql_api/core/messages.IN_SESSION_TURN): the same
-- order for what the service writes, nothing imposed on anyone else.
DROP TRIGGER IF EXISTS chat_message_history_commit_order ON chat_message_history;
DROP FUNCTION IF EXISTS us_message_in_commit_order();
