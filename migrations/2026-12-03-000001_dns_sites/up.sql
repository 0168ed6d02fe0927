-- DNS record checks are sites too: dns://name/TYPE (the API validates the name and
-- the type and stores the canonical form); a DNS answer other than the expected one
-- is the failure dns_mismatch.
ALTER TABLE websites DROP CONSTRAINT websites_url_check;
ALTER TABLE websites ADD CONSTRAINT websites_url_check
    CHECK (url ~ '^https?://'
        OR url ~ '^tcp://[^/?#@]+:[0-9]{1,5}$'
        OR url ~ '^dns://[a-z0-9_.-]{1,253}/(A|AAAA|CNAME|MX|TXT|NS)$');

ALTER TABLE ticks DROP CONSTRAINT ticks_failure_check;
ALTER TABLE ticks ADD CONSTRAINT ticks_failure_check
    CHECK (failure IN ('timeout', 'dns', 'connect', 'tls', 'http_status', 'keyword_missing',
                       'redirect_loop', 'keyword_present', 'json_mismatch', 'too_slow',
                       'dns_mismatch'));
