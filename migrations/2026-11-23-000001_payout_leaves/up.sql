-- The contract pays addresses, and several validators may share one payout address:
-- a Merkle leaf is per payout address, and each validator's share of an eon is kept
-- beside it in `validator_rewards`.
DROP TABLE merkle_leaves;

CREATE TABLE merkle_leaves (
    eon             BIGINT NOT NULL REFERENCES eons (number) ON DELETE CASCADE,
    leaf_index      INTEGER NOT NULL CHECK (leaf_index >= 0),
    payout_address  BYTEA NOT NULL CHECK (length(payout_address) = 20),
    -- Everything ever attributed to this address, up to this eon.
    cumulative      NUMERIC(78, 0) NOT NULL CHECK (cumulative >= 0),
    leaf_hash       BYTEA NOT NULL CHECK (length(leaf_hash) = 32),
    -- Sibling hashes from leaf to root, 32 bytes each, concatenated.
    proof           BYTEA NOT NULL CHECK (length(proof) % 32 = 0),
    PRIMARY KEY (eon, leaf_index),
    UNIQUE (eon, payout_address)
);

-- Each validator with any reward, per eon. `cumulative` is all it has earned;
-- `attributed` the part already added to some payout address's leaf. A validator
-- without a payout address accrues (cumulative grows, attributed does not) and is
-- left out of the tree until it has one; a changed address only receives what is
-- earned from then on, so nothing is paid twice.
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
