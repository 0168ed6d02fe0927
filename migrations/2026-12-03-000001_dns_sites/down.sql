DELETE FROM ticks WHERE failure = 'dns_mismatch';
ALTER TABLE ticks DROP CONSTRAINT ticks_failure_check;
ALTER TABLE ticks ADD CONSTRAINT ticks_failure_check
    CHECK (failure IN ('timeout', 'dns', 'connect', 'tls', 'http_status', 'keyword_missing',
                       'redirect_loop', 'keyword_present', 'json_mismatch', 'too_slow'));
DELETE FROM websites WHERE url LIKE 'dns://%';
ALTER TABLE websites DROP CONSTRAINT websites_url_check;
ALTER TABLE websites ADD CONSTRAINT websites_url_check
    CHECK (url ~ '^https?://' OR url ~ '^tcp://[^/?#@]+:[0-9]{1,5}$');
