-- Validators, check rounds, assignments and the append-only, day-partitioned ticks.

CREATE TABLE validators (
    id              BIGSERIAL PRIMARY KEY,
    -- Identity is the verified Ed25519 key, never a name the validator sends.
    public_key      BYTEA NOT NULL UNIQUE CHECK (length(public_key) = 32),
    payout_address  BYTEA CHECK (length(payout_address) = 20),
    -- Reputation in basis points (0..=10000); weights the random selection.
    reputation      INTEGER NOT NULL DEFAULT 5000 CHECK (reputation BETWEEN 0 AND 10000),
    checks_done     BIGINT NOT NULL DEFAULT 0,
    checks_agreed   BIGINT NOT NULL DEFAULT 0,
    checks_missed   BIGINT NOT NULL DEFAULT 0,
    credited        NUMERIC(78, 0) NOT NULL DEFAULT 0 CHECK (credited >= 0),
    claimed         NUMERIC(78, 0) NOT NULL DEFAULT 0 CHECK (claimed >= 0),
    first_seen_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_seen_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX validators_payout_address_idx ON validators (payout_address);

CREATE TABLE rounds (
    number        BIGINT PRIMARY KEY CHECK (number >= 0),
    -- Public seed: hash of the previous seed and the previous round's closed results.
    seed          BYTEA NOT NULL CHECK (length(seed) = 32),
    opened_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    deadline_at   TIMESTAMPTZ NOT NULL,
    closed_at     TIMESTAMPTZ,
    -- Fewer validators were online than some site's quorum.
    degraded      BOOLEAN NOT NULL DEFAULT FALSE,
    -- Hash chain: hash(previous round's hash, this round's closed results).
    results_hash  BYTEA CHECK (length(results_hash) = 32),
    chain_hash    BYTEA CHECK (length(chain_hash) = 32),
    CHECK (deadline_at > opened_at)
);
-- accounting looks for open rounds past their deadline.
CREATE INDEX rounds_open_idx ON rounds (deadline_at) WHERE closed_at IS NULL;

CREATE TABLE check_assignments (
    id               BIGSERIAL PRIMARY KEY,
    round_number     BIGINT NOT NULL REFERENCES rounds (number) ON DELETE CASCADE,
    website_id       BIGINT NOT NULL REFERENCES websites (id) ON DELETE CASCADE,
    validator_id     BIGINT NOT NULL REFERENCES validators (id) ON DELETE CASCADE,
    -- The server instance holding the validator's socket when assigned.
    server_instance  TEXT NOT NULL,
    -- When in the round the check should start (sites are spread over the round).
    due_at           TIMESTAMPTZ NOT NULL,
    deadline_at      TIMESTAMPTZ NOT NULL,
    state            TEXT NOT NULL DEFAULT 'pending'
                     CHECK (state IN ('pending', 'answered', 'missed')),
    answered_at      TIMESTAMPTZ,
    UNIQUE (round_number, website_id, validator_id)
);
CREATE INDEX check_assignments_validator_pending_idx
    ON check_assignments (validator_id) WHERE state = 'pending';
CREATE INDEX check_assignments_website_round_idx ON check_assignments (website_id, round_number);

-- One signed result per answered assignment. Append-only and large (20,000/s is
-- 1.7 billion rows a day): range-partitioned by day on the hub's receive time, so
-- old days are dropped whole. An assignment's move from 'pending' to 'answered' in
-- the same transaction is what makes a resent result land once. The ids are not
-- foreign keys: ticks outlive nothing they point to (partitions are dropped by age)
-- and the ingest path checks them before writing, so per-row FK lookups would only
-- slow the hottest insert in the system.
CREATE TABLE ticks (
    assignment_id   BIGINT NOT NULL,
    round_number    BIGINT NOT NULL,
    website_id      BIGINT NOT NULL,
    validator_id    BIGINT NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('up', 'down')),
    http_status     SMALLINT,
    latency_ms      INTEGER NOT NULL CHECK (latency_ms >= 0),
    failure         TEXT CHECK (failure IN ('timeout', 'dns', 'connect', 'tls', 'http_status',
                                            'keyword_missing', 'redirect_loop')),
    tls_expires_at  TIMESTAMPTZ,
    checked_at      TIMESTAMPTZ NOT NULL,
    received_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    signature       BYTEA NOT NULL CHECK (length(signature) = 64),
    PRIMARY KEY (received_at, assignment_id)
) PARTITION BY RANGE (received_at);
CREATE INDEX ticks_assignment_id_idx ON ticks (assignment_id);
CREATE INDEX ticks_website_received_idx ON ticks (website_id, received_at);
CREATE INDEX ticks_round_number_idx ON ticks (round_number);

-- Creates the daily tick partitions from `first_day` for `days` days; existing ones are kept.
CREATE FUNCTION ensure_tick_partitions(first_day DATE, days INTEGER) RETURNS INTEGER
LANGUAGE plpgsql AS $$
DECLARE
    day     DATE;
    name    TEXT;
    created INTEGER := 0;
BEGIN
    FOR i IN 0 .. days - 1 LOOP
        day := first_day + i;
        name := format('ticks_%s', to_char(day, 'YYYYMMDD'));
        IF to_regclass(name) IS NULL THEN
            EXECUTE format(
                'CREATE TABLE %I PARTITION OF ticks FOR VALUES FROM (%L) TO (%L)',
                name, day::timestamp AT TIME ZONE 'UTC', (day + 1)::timestamp AT TIME ZONE 'UTC');
            created := created + 1;
        END IF;
    END LOOP;
    RETURN created;
END $$;

-- Drops the daily tick partitions that end on or before `before_day`.
CREATE FUNCTION drop_tick_partitions(before_day DATE) RETURNS INTEGER
LANGUAGE plpgsql AS $$
DECLARE
    part    RECORD;
    dropped INTEGER := 0;
BEGIN
    FOR part IN
        SELECT c.relname
        FROM pg_inherits i
        JOIN pg_class c ON c.oid = i.inhrelid
        JOIN pg_class p ON p.oid = i.inhparent
        WHERE p.relname = 'ticks' AND c.relname ~ '^ticks_[0-9]{8}$'
    LOOP
        IF to_date(substring(part.relname FROM 7), 'YYYYMMDD') < before_day THEN
            EXECUTE format('DROP TABLE %I', part.relname);
            dropped := dropped + 1;
        END IF;
    END LOOP;
    RETURN dropped;
END $$;

SELECT ensure_tick_partitions((now() AT TIME ZONE 'UTC')::date - 1, 9);
