-- Where a schedule's runs go: a new session per run (as before) or all runs appended to one
-- ongoing session; and channels each run's reply is also delivered to (e.g. '{telegram}').
ALTER TABLE schedules
    ADD COLUMN IF NOT EXISTS session_mode text NOT NULL DEFAULT 'new_per_run'
        CHECK (session_mode IN ('new_per_run', 'append')),
    ADD COLUMN IF NOT EXISTS deliver_to text[] NOT NULL DEFAULT '{}';
