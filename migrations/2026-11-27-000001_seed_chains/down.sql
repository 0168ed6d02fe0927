ALTER TABLE rounds DROP COLUMN seed_reveal;
DROP TABLE seed_chains;
