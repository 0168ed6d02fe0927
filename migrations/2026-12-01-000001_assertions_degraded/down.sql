ALTER TABLE website_hourly_rollups DROP COLUMN degraded_checks;
DELETE FROM website_status WHERE state = 'degraded' OR pending_state = 'degraded';
ALTER TABLE website_status DROP CONSTRAINT website_status_pending_state_check;
ALTER TABLE website_status ADD CONSTRAINT website_status_pending_state_check
    CHECK (pending_state IN ('up', 'down', 'unknown'));
ALTER TABLE website_status DROP CONSTRAINT website_status_state_check;
ALTER TABLE website_status ADD CONSTRAINT website_status_state_check
    CHECK (state IN ('up', 'down', 'unknown'));
DELETE FROM ticks WHERE protocol_version = 2;
ALTER TABLE ticks DROP CONSTRAINT ticks_failure_check;
ALTER TABLE ticks ADD CONSTRAINT ticks_failure_check
    CHECK (failure IN ('timeout', 'dns', 'connect', 'tls', 'http_status',
                       'keyword_missing', 'redirect_loop'));
ALTER TABLE ticks DROP CONSTRAINT ticks_status_check;
ALTER TABLE ticks ADD CONSTRAINT ticks_status_check CHECK (status IN ('up', 'down'));
ALTER TABLE ticks DROP CONSTRAINT ticks_v2_has_spec_hash,
    DROP COLUMN spec_hash, DROP COLUMN protocol_version;
ALTER TABLE check_assignments DROP COLUMN max_response_ms, DROP COLUMN spec_hash;
ALTER TABLE websites DROP COLUMN assertions;
DELETE FROM websites WHERE url LIKE 'tcp://%';
ALTER TABLE websites DROP CONSTRAINT websites_url_check;
ALTER TABLE websites ADD CONSTRAINT websites_url_check CHECK (url ~ '^https?://');
