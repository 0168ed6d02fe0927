-- Assertions per site, the `degraded` third state, and results signed under
-- overlaps/v2 (bound to the check spec by its SHA-256).

-- Per-site assertions, one JSON object (shared::check_spec::SiteAssertions; absent
-- keys are defaults): accepted_status (canonical "200-299,301"), keyword_absent,
-- json_path with json_expected (canonical JSON text), max_response_ms. The API
-- validates every value; the checks here only bound what can be stored.
ALTER TABLE websites
    ADD COLUMN assertions JSONB NOT NULL DEFAULT '{}'::jsonb
        CHECK (jsonb_typeof(assertions) = 'object' AND length(assertions::text) <= 2048);

-- TCP port checks are sites too: tcp://host:port.
ALTER TABLE websites DROP CONSTRAINT websites_url_check;
ALTER TABLE websites ADD CONSTRAINT websites_url_check
    CHECK (url ~ '^https?://' OR url ~ '^tcp://[^/?#@]+:[0-9]{1,5}$');

-- What the hub sent with each assignment (set when it is sent): a result must sign
-- this spec hash, and a degraded one must be over this limit.
ALTER TABLE check_assignments
    ADD COLUMN spec_hash        BYTEA CHECK (length(spec_hash) = 32),
    ADD COLUMN max_response_ms  INTEGER;

-- Which layout each result was signed under: 1 (old rows, no spec hash) or 2.
ALTER TABLE ticks
    ADD COLUMN protocol_version SMALLINT NOT NULL DEFAULT 1 CHECK (protocol_version IN (1, 2)),
    ADD COLUMN spec_hash        BYTEA CHECK (length(spec_hash) = 32),
    ADD CONSTRAINT ticks_v2_has_spec_hash CHECK ((protocol_version = 2) = (spec_hash IS NOT NULL));
ALTER TABLE ticks DROP CONSTRAINT ticks_status_check;
ALTER TABLE ticks ADD CONSTRAINT ticks_status_check
    CHECK (status IN ('up', 'down', 'degraded'));
ALTER TABLE ticks DROP CONSTRAINT ticks_failure_check;
ALTER TABLE ticks ADD CONSTRAINT ticks_failure_check
    CHECK (failure IN ('timeout', 'dns', 'connect', 'tls', 'http_status', 'keyword_missing',
                       'redirect_loop', 'keyword_present', 'json_mismatch', 'too_slow'));

ALTER TABLE website_status DROP CONSTRAINT website_status_state_check;
ALTER TABLE website_status ADD CONSTRAINT website_status_state_check
    CHECK (state IN ('up', 'down', 'degraded', 'unknown'));
ALTER TABLE website_status DROP CONSTRAINT website_status_pending_state_check;
ALTER TABLE website_status ADD CONSTRAINT website_status_pending_state_check
    CHECK (pending_state IN ('up', 'down', 'degraded', 'unknown'));

-- Degraded results, counted apart from up and down.
ALTER TABLE website_hourly_rollups
    ADD COLUMN degraded_checks INTEGER NOT NULL DEFAULT 0;
