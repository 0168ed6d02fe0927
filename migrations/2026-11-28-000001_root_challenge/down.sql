ALTER TABLE root_commitments
    DROP COLUMN onchain_replaced_by,
    DROP COLUMN onchain_cancelled_block,
    DROP COLUMN onchain_claimable_block;
DELETE FROM contract_events
    WHERE kind IN ('root_cancelled', 'operator_changed', 'guardian_changed');
ALTER TABLE contract_events DROP CONSTRAINT contract_events_kind_check;
ALTER TABLE contract_events ADD CONSTRAINT contract_events_kind_check
    CHECK (kind IN ('root_committed', 'claimed', 'funded'));
