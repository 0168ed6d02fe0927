-- Roots wait a challenge window on-chain before claims may use them; the guardian
-- may cancel a pending root and rotate the operator. The follower records those
-- events and each eon's on-chain state.
ALTER TABLE contract_events DROP CONSTRAINT contract_events_kind_check;
ALTER TABLE contract_events ADD CONSTRAINT contract_events_kind_check CHECK (kind IN (
    'root_committed', 'root_cancelled', 'claimed', 'funded', 'operator_changed', 'guardian_changed'
));

ALTER TABLE root_commitments
    -- The first block where claims may use the on-chain root (from RootCommitted).
    ADD COLUMN onchain_claimable_block BIGINT,
    -- The block of the guardian's RootCancelled, when it cancelled this root.
    ADD COLUMN onchain_cancelled_block BIGINT,
    -- The eon whose commit replaced this root while it was still pending.
    ADD COLUMN onchain_replaced_by BIGINT;
