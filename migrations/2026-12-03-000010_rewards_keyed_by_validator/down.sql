ALTER TABLE validator_rewards DROP CONSTRAINT validator_rewards_pkey;
ALTER TABLE validator_rewards ADD CONSTRAINT validator_rewards_pkey PRIMARY KEY (eon, validator_id);
CREATE INDEX validator_rewards_validator_idx ON validator_rewards (validator_id, eon);
