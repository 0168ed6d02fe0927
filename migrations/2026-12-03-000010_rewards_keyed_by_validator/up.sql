-- A validator's rewards are keyed (validator, eon) instead of (eon, validator) plus
-- a second index on (validator, eon). Within one eon's partition both orders are
-- the validator's order, so the one key serves reads by eon (the partition, in
-- validator order) and by validator (its rows across eons), and closing an eon
-- builds one index over its million rows instead of two.
ALTER TABLE validator_rewards DROP CONSTRAINT validator_rewards_pkey;
DROP INDEX validator_rewards_validator_idx;
ALTER TABLE validator_rewards ADD CONSTRAINT validator_rewards_pkey PRIMARY KEY (validator_id, eon);
