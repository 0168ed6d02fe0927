DELETE FROM contract_events WHERE kind IN ('staked', 'unstake_requested', 'unstaked');
ALTER TABLE contract_events DROP CONSTRAINT contract_events_kind_check;
ALTER TABLE contract_events ADD CONSTRAINT contract_events_kind_check CHECK (kind IN (
    'root_committed', 'root_cancelled', 'claimed', 'funded', 'operator_changed', 'guardian_changed'
));
DROP TABLE validator_allowlist;
DROP TABLE validator_stakes;
