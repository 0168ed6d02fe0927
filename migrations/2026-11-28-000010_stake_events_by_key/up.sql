-- The chain follower re-derives a key's stake from every final stake event of that
-- key (`data->>'key'`, the Ed25519 key as 0x-hex) whenever one becomes final: find
-- them without scanning every contract event ever recorded.
CREATE INDEX contract_events_stake_key_idx ON contract_events ((data->>'key'), block_number, log_index)
    WHERE kind IN ('staked', 'unstake_requested', 'unstaked');
