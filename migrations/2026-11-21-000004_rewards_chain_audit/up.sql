-- Credits, eons and their Merkle commitments, on-chain transactions, followed
-- blocks and contract events, and audit reports. Money is NUMERIC(78,0): the
-- chain's smallest unit, as wide as a uint256.

CREATE TABLE validator_credits (
    round_number  BIGINT NOT NULL REFERENCES rounds (number) ON DELETE CASCADE,
    validator_id  BIGINT NOT NULL REFERENCES validators (id) ON DELETE CASCADE,
    checks        INTEGER NOT NULL CHECK (checks > 0),
    amount        NUMERIC(78, 0) NOT NULL CHECK (amount >= 0),
    PRIMARY KEY (round_number, validator_id)
);
CREATE INDEX validator_credits_validator_idx ON validator_credits (validator_id, round_number);

CREATE TABLE eons (
    number      BIGINT PRIMARY KEY CHECK (number >= 1),
    first_round BIGINT NOT NULL,
    last_round  BIGINT NOT NULL,
    closed_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    CHECK (last_round >= first_round)
);

CREATE TABLE root_commitments (
    eon             BIGINT PRIMARY KEY REFERENCES eons (number) ON DELETE CASCADE,
    root            BYTEA NOT NULL CHECK (length(root) = 32),
    total           NUMERIC(78, 0) NOT NULL CHECK (total >= 0),
    leaf_count      INTEGER NOT NULL CHECK (leaf_count >= 0),
    -- Validators that earned but had no payout address, so were left out of the tree.
    excluded_count  INTEGER NOT NULL DEFAULT 0,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- Filled by the chain follower once `RootCommitted` is final.
    onchain_root    BYTEA CHECK (length(onchain_root) = 32),
    onchain_block   BIGINT
);

CREATE TABLE merkle_leaves (
    eon             BIGINT NOT NULL REFERENCES eons (number) ON DELETE CASCADE,
    validator_id    BIGINT NOT NULL REFERENCES validators (id),
    -- NULL when left out of the tree for lack of a payout address.
    leaf_index      INTEGER,
    payout_address  BYTEA CHECK (length(payout_address) = 20),
    cumulative      NUMERIC(78, 0) NOT NULL CHECK (cumulative >= 0),
    leaf_hash       BYTEA CHECK (length(leaf_hash) = 32),
    -- Sibling hashes from leaf to root, 32 bytes each, concatenated.
    proof           BYTEA,
    PRIMARY KEY (eon, validator_id),
    UNIQUE (eon, leaf_index)
);

-- One row per on-chain call; `tag` (e.g. 'commit_root:7') makes it idempotent.
CREATE TABLE ethereum_transactions (
    id            BIGSERIAL PRIMARY KEY,
    tag           TEXT NOT NULL UNIQUE,
    from_address  BYTEA NOT NULL CHECK (length(from_address) = 20),
    to_address    BYTEA NOT NULL CHECK (length(to_address) = 20),
    data          BYTEA NOT NULL,
    value         NUMERIC(78, 0) NOT NULL DEFAULT 0,
    nonce         BIGINT,
    state         TEXT NOT NULL DEFAULT 'pending'
                  CHECK (state IN ('pending', 'mined', 'confirmed', 'failed')),
    mined_block   BIGINT,
    last_error    TEXT,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (from_address, nonce)
);
CREATE INDEX ethereum_transactions_open_idx ON ethereum_transactions (id) WHERE state IN ('pending', 'mined');

-- Each broadcast of a transaction (the same nonce, re-sent with higher fees).
CREATE TABLE ethereum_transaction_attempts (
    id                        BIGSERIAL PRIMARY KEY,
    transaction_id            BIGINT NOT NULL REFERENCES ethereum_transactions (id) ON DELETE CASCADE,
    tx_hash                   BYTEA NOT NULL UNIQUE CHECK (length(tx_hash) = 32),
    nonce                     BIGINT NOT NULL,
    max_fee_per_gas           NUMERIC(78, 0) NOT NULL,
    max_priority_fee_per_gas  NUMERIC(78, 0) NOT NULL,
    gas_limit                 BIGINT NOT NULL,
    broadcast_at              TIMESTAMPTZ NOT NULL DEFAULT now(),
    broadcast_block           BIGINT NOT NULL,
    mined_block               BIGINT,
    mined_block_hash          BYTEA CHECK (length(mined_block_hash) = 32)
);
CREATE INDEX ethereum_transaction_attempts_tx_idx ON ethereum_transaction_attempts (transaction_id);

CREATE TABLE chain_blocks (
    number       BIGINT PRIMARY KEY,
    hash         BYTEA NOT NULL UNIQUE CHECK (length(hash) = 32),
    parent_hash  BYTEA NOT NULL CHECK (length(parent_hash) = 32),
    timestamp    TIMESTAMPTZ NOT NULL,
    finalized    BOOLEAN NOT NULL DEFAULT FALSE
);

-- Decoded RootCommitted / Claimed / Funded logs; removed with their block on a reorg.
CREATE TABLE contract_events (
    id            BIGSERIAL PRIMARY KEY,
    block_number  BIGINT NOT NULL REFERENCES chain_blocks (number) ON DELETE CASCADE,
    block_hash    BYTEA NOT NULL CHECK (length(block_hash) = 32),
    tx_hash       BYTEA NOT NULL CHECK (length(tx_hash) = 32),
    log_index     INTEGER NOT NULL,
    kind          TEXT NOT NULL CHECK (kind IN ('root_committed', 'claimed', 'funded')),
    eon           BIGINT,
    account       BYTEA CHECK (length(account) = 20),
    amount        NUMERIC(78, 0),
    data          JSONB NOT NULL,
    UNIQUE (block_hash, log_index)
);
CREATE INDEX contract_events_kind_idx ON contract_events (kind, block_number);

CREATE TABLE audit_reports (
    eon          BIGINT PRIMARY KEY REFERENCES eons (number) ON DELETE CASCADE,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    ok           BOOLEAN NOT NULL,
    -- Counts of what was re-derived (ticks, rounds, credits, leaves, ...).
    checked      JSONB NOT NULL,
    -- Each mismatch with the exact ids involved.
    mismatches   JSONB NOT NULL DEFAULT '[]'::jsonb
);
