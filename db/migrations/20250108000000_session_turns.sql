-- One turn at a time per session, with no database connection held while the agent answers:
-- a turn holds a lease row here from its message to its reply. A holder that dies leaves a
-- lease that expires (the turn's agent timeout plus a margin), and the next turn takes it over.
CREATE TABLE session_turns (
    session_id  text PRIMARY KEY,
    holder      uuid NOT NULL,
    lease_until timestamptz NOT NULL
);
