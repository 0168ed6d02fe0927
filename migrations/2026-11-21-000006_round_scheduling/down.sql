DROP INDEX rounds_close_pending_idx;
ALTER TABLE websites DROP COLUMN last_scheduled_at;
ALTER TABLE rounds
    DROP COLUMN close_enqueued_at,
    DROP COLUMN candidates,
    DROP COLUMN seed_results_round;
