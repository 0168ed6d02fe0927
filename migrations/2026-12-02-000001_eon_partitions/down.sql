-- Back to one plain table each, every partition's rows kept.
ALTER TABLE merkle_leaves RENAME TO merkle_leaves_partitioned;
ALTER INDEX merkle_leaves_pkey RENAME TO merkle_leaves_partitioned_pkey;
ALTER INDEX merkle_leaves_eon_payout_address_key RENAME TO merkle_leaves_partitioned_address_key;
ALTER TABLE validator_rewards RENAME TO validator_rewards_partitioned;
ALTER INDEX validator_rewards_pkey RENAME TO validator_rewards_partitioned_pkey;
ALTER INDEX validator_rewards_validator_idx RENAME TO validator_rewards_partitioned_validator_idx;

CREATE TABLE merkle_leaves (
    eon             BIGINT NOT NULL REFERENCES eons (number) ON DELETE CASCADE,
    leaf_index      INTEGER NOT NULL CHECK (leaf_index >= 0),
    payout_address  BYTEA NOT NULL CHECK (length(payout_address) = 20),
    cumulative      NUMERIC(78, 0) NOT NULL CHECK (cumulative >= 0),
    PRIMARY KEY (eon, leaf_index),
    UNIQUE (eon, payout_address)
);
CREATE TABLE validator_rewards (
    eon             BIGINT NOT NULL REFERENCES eons (number) ON DELETE CASCADE,
    validator_id    BIGINT NOT NULL REFERENCES validators (id),
    payout_address  BYTEA CHECK (length(payout_address) = 20),
    earned          NUMERIC(78, 0) NOT NULL CHECK (earned >= 0),
    cumulative      NUMERIC(78, 0) NOT NULL CHECK (cumulative >= 0),
    attributed      NUMERIC(78, 0) NOT NULL CHECK (attributed >= 0 AND attributed <= cumulative),
    PRIMARY KEY (eon, validator_id)
);
CREATE INDEX validator_rewards_validator_idx ON validator_rewards (validator_id, eon);

INSERT INTO merkle_leaves (eon, leaf_index, payout_address, cumulative)
SELECT eon, leaf_index, payout_address, cumulative FROM merkle_leaves_partitioned;
INSERT INTO validator_rewards (eon, validator_id, payout_address, earned, cumulative, attributed)
SELECT eon, validator_id, payout_address, earned, cumulative, attributed FROM validator_rewards_partitioned;

-- Dropping a partitioned table drops its partitions.
DROP TABLE merkle_leaves_partitioned;
DROP TABLE validator_rewards_partitioned;
