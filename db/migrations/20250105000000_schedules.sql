-- Scheduled channel: a person's schedules, and one row per run slot so each slot runs exactly once.
CREATE TABLE IF NOT EXISTS schedules (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id       uuid NOT NULL,
    name          text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 200),
    prompt        text NOT NULL CHECK (char_length(prompt) >= 1),
    cron          text NOT NULL,
    timezone      text NOT NULL DEFAULT 'UTC',
    agent_name    text NOT NULL,
    enabled       boolean NOT NULL DEFAULT true,
    -- The next slot to claim; NULL while disabled. Written only by the domain code (croniter).
    next_run_at   timestamptz,
    -- The slot of the most recent finished run, and how it ended.
    last_run_at   timestamptz,
    last_outcome  text CHECK (last_outcome IN ('succeeded', 'failed')),
    last_error    text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);

-- The periodic claim: WHERE enabled AND next_run_at <= now() ORDER BY next_run_at ... SKIP LOCKED.
CREATE INDEX IF NOT EXISTS schedules_due_idx
    ON schedules (next_run_at)
 WHERE enabled;

-- A person's schedules, newest first: keyset on (created_at, id).
CREATE INDEX IF NOT EXISTS schedules_user_created_idx
    ON schedules (user_id, created_at DESC, id DESC);

-- One row per (schedule, slot): the database, not the queue, decides that a slot runs once.
-- A killed worker leaves its row 'running'; the retried job resumes it with the same session.
CREATE TABLE IF NOT EXISTS schedule_runs (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    schedule_id   uuid NOT NULL REFERENCES schedules (id) ON DELETE CASCADE,
    slot          timestamptz NOT NULL,
    session_id    text NOT NULL,
    status        text NOT NULL DEFAULT 'running'
                  CHECK (status IN ('running', 'succeeded', 'failed')),
    attempts      integer NOT NULL DEFAULT 0,
    -- While a worker runs the slot: no other worker takes it over before this moment.
    lease_until   timestamptz,
    started_at    timestamptz NOT NULL DEFAULT now(),
    finished_at   timestamptz,
    error         text,
    CONSTRAINT schedule_runs_schedule_slot_key UNIQUE (schedule_id, slot)
);
-- A schedule's runs newest first use the unique index above, scanned backwards.

-- Open runs whose worker is gone (lease expired) are re-queued by the periodic claim.
CREATE INDEX IF NOT EXISTS schedule_runs_open_idx
    ON schedule_runs (lease_until)
 WHERE status = 'running';
