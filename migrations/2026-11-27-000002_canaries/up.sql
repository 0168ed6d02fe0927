-- Known-answer checks (canaries): see shared/src/canary.rs and the README's trust model.

-- Each round's canary key is a value of a hash chain whose tip is published an
-- epoch before its first round; the anchor is the hub's secret and is never
-- served. The rate (basis points of online validators given a canary per round)
-- is fixed with the commitment.
CREATE TABLE canary_chains (
    epoch         BIGINT PRIMARY KEY CHECK (epoch >= 1),
    first_round   BIGINT NOT NULL UNIQUE CHECK (first_round >= 1),
    rounds        INTEGER NOT NULL CHECK (rounds > 0),
    rate_bp       INTEGER NOT NULL CHECK (rate_bp BETWEEN 0 AND 10000),
    tip           BYTEA NOT NULL CHECK (length(tip) = 32),
    anchor        BYTEA NOT NULL CHECK (length(anchor) = 32),
    committed_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- The round's canary key, revealed when the round closes (NULL before).
ALTER TABLE rounds ADD COLUMN canary_key BYTEA CHECK (length(canary_key) = 32);

-- Canary assignments point at one website row of the hub's own (no owner sees
-- it, it is never due, never alerted, never in any uptime).
ALTER TABLE websites ADD COLUMN canary BOOLEAN NOT NULL DEFAULT FALSE;
CREATE UNIQUE INDEX websites_one_canary_idx ON websites (canary) WHERE canary;

-- What the hub sent for each canary assignment, and, once the round closed, how
-- it was answered and what a failure forfeited.
CREATE TABLE canary_assignments (
    assignment_id  BIGINT PRIMARY KEY REFERENCES check_assignments (id) ON DELETE CASCADE,
    round_number   BIGINT NOT NULL REFERENCES rounds (number) ON DELETE CASCADE,
    validator_id   BIGINT NOT NULL REFERENCES validators (id) ON DELETE CASCADE,
    mode           TEXT NOT NULL CHECK (mode IN ('ok', 'server_error', 'keyword_missing',
                                                 'timeout', 'refused', 'bad_tls')),
    keyword        TEXT,
    url            TEXT NOT NULL CHECK (url ~ '^https?://'),
    timeout_ms     INTEGER NOT NULL CHECK (timeout_ms > 0),
    outcome        TEXT CHECK (outcome IN ('passed', 'failed', 'missed')),
    forfeited      NUMERIC(78, 0) NOT NULL DEFAULT 0 CHECK (forfeited >= 0)
);
CREATE INDEX canary_assignments_round_idx ON canary_assignments (round_number);
