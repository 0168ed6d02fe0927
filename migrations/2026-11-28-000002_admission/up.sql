-- Who may be selected: stake bound to a validator's Ed25519 key on-chain (recorded
-- by the chain service from final contract events), or the operator's allowlist.

-- One row per key and staker (each address holds its own position on a key, so
-- nobody can block a key by staking on it first), derived from the final Staked /
-- UnstakeRequested / Unstaked events (recomputed from them after a reorg of final
-- blocks).
CREATE TABLE validator_stakes (
    -- The validator's Ed25519 public key, as bound in `stake(bytes32)`.
    public_key       BYTEA NOT NULL CHECK (length(public_key) = 32),
    -- The address that staked; only it may unstake this position, and the hub
    -- counts only the position of the key's payout address.
    staker           BYTEA NOT NULL CHECK (length(staker) = 20),
    -- Wei staked and not yet paid out.
    amount           NUMERIC(78, 0) NOT NULL CHECK (amount >= 0),
    -- When an unstake was requested: the instant its unbonding ends (block time);
    -- the stake stops counting then, and `unstake` may pay it out.
    unbonding_until  TIMESTAMPTZ,
    -- The final block of the latest event applied.
    block_number     BIGINT NOT NULL,
    updated_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (public_key, staker)
);

-- Keys the operator admits under VALIDATOR_ADMISSION=allowlist.
CREATE TABLE validator_allowlist (
    public_key  BYTEA PRIMARY KEY CHECK (length(public_key) = 32),
    note        TEXT NOT NULL DEFAULT '' CHECK (length(note) <= 200),
    added_by    BIGINT REFERENCES users (id) ON DELETE SET NULL,
    added_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);

ALTER TABLE contract_events DROP CONSTRAINT contract_events_kind_check;
ALTER TABLE contract_events ADD CONSTRAINT contract_events_kind_check CHECK (kind IN (
    'root_committed', 'root_cancelled', 'claimed', 'funded', 'operator_changed', 'guardian_changed',
    'staked', 'unstake_requested', 'unstaked'
));
