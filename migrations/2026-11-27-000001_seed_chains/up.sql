-- Seeds nobody can steer: each epoch of rounds reveals, round by round, the links of
-- a hash chain of the hub's own secret, committed (its tip published) a whole epoch
-- before its first round. See shared/src/selection.rs.
--
-- anchor = 32 random bytes, h_0 = anchor, h_k = keccak256("overlaps/v1/seed-chain" || h_(k-1)),
-- tip = h_rounds. Round first_round + i reveals h_(rounds - 1 - i).
CREATE TABLE seed_chains (
    epoch         BIGINT PRIMARY KEY CHECK (epoch >= 1),
    first_round   BIGINT NOT NULL UNIQUE,
    rounds        INTEGER NOT NULL CHECK (rounds > 0),
    -- Public: the commitment every reveal of the epoch hashes forward to.
    tip           BYTEA NOT NULL CHECK (length(tip) = 32),
    -- The hub's secret: never served by any route nor logged.
    anchor        BYTEA NOT NULL CHECK (length(anchor) = 32),
    committed_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- The chain link this round revealed; NULL for rounds opened under the old rule
-- (seed from the latest closed round's results hash).
ALTER TABLE rounds ADD COLUMN seed_reveal BYTEA CHECK (length(seed_reveal) = 32);
