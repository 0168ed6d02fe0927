-- The chain follower re-derives a position (one Ed25519 key and one staker) from
-- every final stake event of that pair (`data->>'key'`, the key as 0x-hex, and
-- `data->>'staker'`) whenever one becomes final: find them without scanning every
-- contract event ever recorded, nor every other staker's events on the same key.
CREATE INDEX contract_events_stake_key_idx
    ON contract_events ((data->>'key'), (data->>'staker'), block_number, log_index)
    WHERE kind IN ('staked', 'unstake_requested', 'unstaked');
