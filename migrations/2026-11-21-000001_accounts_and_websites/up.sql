-- Accounts, API keys, monitored websites and where their alerts go.

CREATE TABLE users (
    id          BIGSERIAL PRIMARY KEY,
    email       TEXT NOT NULL UNIQUE CHECK (length(email) BETWEEN 3 AND 320),
    name        TEXT NOT NULL DEFAULT '',
    role        TEXT NOT NULL DEFAULT 'owner' CHECK (role IN ('operator', 'owner')),
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Only a hash of each key is kept; the key itself is shown once at creation.
CREATE TABLE api_keys (
    id            BIGSERIAL PRIMARY KEY,
    user_id       BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name          TEXT NOT NULL DEFAULT '',
    key_prefix    TEXT NOT NULL,
    key_hash      BYTEA NOT NULL UNIQUE CHECK (length(key_hash) = 32),
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_used_at  TIMESTAMPTZ,
    revoked_at    TIMESTAMPTZ
);
CREATE INDEX api_keys_user_id_idx ON api_keys (user_id);

CREATE TABLE websites (
    id                BIGSERIAL PRIMARY KEY,
    owner_id          BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name              TEXT NOT NULL DEFAULT '',
    url               TEXT NOT NULL CHECK (url ~ '^https?://'),
    method            TEXT NOT NULL DEFAULT 'GET' CHECK (method IN ('GET', 'HEAD')),
    interval_seconds  INTEGER NOT NULL CHECK (interval_seconds > 0),
    timeout_ms        INTEGER NOT NULL CHECK (timeout_ms > 0),
    quorum            SMALLINT NOT NULL CHECK (quorum > 0),
    keyword           TEXT,
    enabled           BOOLEAN NOT NULL DEFAULT TRUE,
    created_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at        TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX websites_owner_id_idx ON websites (owner_id);
-- The scheduler reads the enabled sites every round.
CREATE INDEX websites_enabled_idx ON websites (id) WHERE enabled;

-- An alert channel belongs to an owner; with a website it serves only that site.
CREATE TABLE alert_channels (
    id          BIGSERIAL PRIMARY KEY,
    owner_id    BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    website_id  BIGINT REFERENCES websites (id) ON DELETE CASCADE,
    kind        TEXT NOT NULL CHECK (kind IN ('slack', 'email', 'webhook')),
    target      TEXT NOT NULL,
    -- HMAC-SHA256 key for generic webhooks.
    secret      TEXT,
    enabled     BOOLEAN NOT NULL DEFAULT TRUE,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX alert_channels_owner_id_idx ON alert_channels (owner_id);
CREATE INDEX alert_channels_website_id_idx ON alert_channels (website_id);
