DROP TABLE canary_assignments;
DELETE FROM websites WHERE canary;
DELETE FROM users WHERE email = 'canaries@overlaps.invalid';
DROP INDEX websites_one_canary_idx;
ALTER TABLE websites DROP COLUMN canary;
ALTER TABLE rounds DROP COLUMN canary_key;
DROP TABLE canary_chains;
