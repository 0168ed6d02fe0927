-- What the scheduler needs to open rounds that anyone can re-derive.

-- The closed round whose results hash went into this round's seed (NULL: none
-- was closed yet, zeros were used), and the candidates it drew from: every
-- validator online at opening with its weight, as [[validator_id, weight], ...].
ALTER TABLE rounds
    ADD COLUMN seed_results_round BIGINT REFERENCES rounds (number),
    ADD COLUMN candidates JSONB NOT NULL DEFAULT '[]'::jsonb,
    -- Set once the close_round job for this round has been enqueued.
    ADD COLUMN close_enqueued_at TIMESTAMPTZ;

-- When the scheduler last assigned the site; it is due again `interval_seconds` later.
ALTER TABLE websites ADD COLUMN last_scheduled_at TIMESTAMPTZ;

CREATE INDEX rounds_close_pending_idx ON rounds (deadline_at)
    WHERE closed_at IS NULL AND close_enqueued_at IS NULL;
