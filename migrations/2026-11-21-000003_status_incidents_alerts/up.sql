-- What the quorum decided per site, incidents, hourly rollups and the alert outbox.

CREATE TABLE website_status (
    website_id     BIGINT PRIMARY KEY REFERENCES websites (id) ON DELETE CASCADE,
    state          TEXT NOT NULL DEFAULT 'unknown' CHECK (state IN ('up', 'down', 'unknown')),
    since          TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_round     BIGINT REFERENCES rounds (number) ON DELETE SET NULL,
    -- A state seen by the quorum but not yet confirmed by enough consecutive rounds.
    pending_state  TEXT CHECK (pending_state IN ('up', 'down', 'unknown')),
    pending_count  INTEGER NOT NULL DEFAULT 0 CHECK (pending_count >= 0),
    tls_expires_at TIMESTAMPTZ,
    updated_at     TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE incidents (
    id              BIGSERIAL PRIMARY KEY,
    website_id      BIGINT NOT NULL REFERENCES websites (id) ON DELETE CASCADE,
    opened_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    opened_round    BIGINT NOT NULL REFERENCES rounds (number),
    resolved_at     TIMESTAMPTZ,
    resolved_round  BIGINT REFERENCES rounds (number),
    cause           TEXT NOT NULL,
    -- The validators' signed results that decided it (assignment ids, statuses, failures).
    evidence        JSONB NOT NULL DEFAULT '[]'::jsonb
);
CREATE INDEX incidents_website_opened_idx ON incidents (website_id, opened_at DESC);
-- At most one open incident per site.
CREATE UNIQUE INDEX incidents_one_open_per_site_idx ON incidents (website_id) WHERE resolved_at IS NULL;

-- Per-site hourly figures, updated when a round closes, so status and uptime
-- queries never scan raw ticks.
CREATE TABLE website_hourly_rollups (
    website_id      BIGINT NOT NULL REFERENCES websites (id) ON DELETE CASCADE,
    hour            TIMESTAMPTZ NOT NULL,
    checks          INTEGER NOT NULL DEFAULT 0,
    up              INTEGER NOT NULL DEFAULT 0,
    down            INTEGER NOT NULL DEFAULT 0,
    unknown_rounds  INTEGER NOT NULL DEFAULT 0,
    latency_p50_ms  INTEGER,
    latency_p95_ms  INTEGER,
    latency_p99_ms  INTEGER,
    PRIMARY KEY (website_id, hour)
);

-- Alerts are written here in the same transaction as the incident that causes them,
-- then delivered by `send_alert` jobs; `dedup_key` makes delivery at most once per channel.
CREATE TABLE alert_outbox (
    id               BIGSERIAL PRIMARY KEY,
    -- NULL for operator alerts, which go to NOTIFICATION_HOOK_URL / OPERATOR_EMAIL.
    channel_id       BIGINT REFERENCES alert_channels (id) ON DELETE CASCADE,
    incident_id      BIGINT REFERENCES incidents (id) ON DELETE CASCADE,
    kind             TEXT NOT NULL CHECK (kind IN ('incident_opened', 'incident_resolved',
                                                   'tls_expiring', 'test', 'operator')),
    dedup_key        TEXT NOT NULL UNIQUE,
    payload          JSONB NOT NULL,
    state            TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'sent', 'failed')),
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_error       TEXT,
    created_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    sent_at          TIMESTAMPTZ
);
CREATE INDEX alert_outbox_pending_idx ON alert_outbox (next_attempt_at) WHERE state = 'pending';
