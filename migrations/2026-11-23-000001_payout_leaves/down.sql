DROP TABLE validator_rewards;
DROP TABLE merkle_leaves;
CREATE TABLE merkle_leaves (
    eon             BIGINT NOT NULL REFERENCES eons (number) ON DELETE CASCADE,
    validator_id    BIGINT NOT NULL REFERENCES validators (id),
    leaf_index      INTEGER,
    payout_address  BYTEA CHECK (length(payout_address) = 20),
    cumulative      NUMERIC(78, 0) NOT NULL CHECK (cumulative >= 0),
    leaf_hash       BYTEA CHECK (length(leaf_hash) = 32),
    proof           BYTEA,
    PRIMARY KEY (eon, validator_id),
    UNIQUE (eon, leaf_index)
);
