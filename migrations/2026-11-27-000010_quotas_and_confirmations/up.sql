-- Abuse limits: per-account quotas, e-mail channels that must be confirmed by the
-- address before alerts go to it, and the checks each round aims at each host.

-- NULL: the hub's defaults (ACCOUNT_MAX_SITES, ACCOUNT_MAX_CHECKS_PER_DAY).
ALTER TABLE users
    ADD COLUMN max_sites INTEGER CHECK (max_sites >= 0),
    ADD COLUMN max_checks_per_day BIGINT CHECK (max_checks_per_day >= 0);

-- Channels that exist now (and rows an operator inserts by hand) count as
-- confirmed; the API creates e-mail channels with confirmed_at NULL. Only a hash of
-- the confirmation token is kept.
ALTER TABLE alert_channels
    ADD COLUMN confirmed_at TIMESTAMPTZ DEFAULT now(),
    ADD COLUMN confirmation_hash BYTEA UNIQUE CHECK (length(confirmation_hash) = 32),
    ADD COLUMN confirmation_expires_at TIMESTAMPTZ;

ALTER TABLE alert_outbox DROP CONSTRAINT alert_outbox_kind_check;
ALTER TABLE alert_outbox ADD CONSTRAINT alert_outbox_kind_check
    CHECK (kind IN ('incident_opened', 'incident_resolved', 'tls_expiring', 'test',
                    'operator', 'channel_confirmation'));

-- Checks each round sent to each target host (lower-case host name of the URL):
-- the scheduler caps them per minute across every account.
CREATE TABLE target_host_checks (
    host          TEXT NOT NULL,
    round_number  BIGINT NOT NULL,
    opened_at     TIMESTAMPTZ NOT NULL,
    checks        INTEGER NOT NULL CHECK (checks > 0),
    PRIMARY KEY (host, round_number)
);
CREATE INDEX target_host_checks_opened_at_idx ON target_host_checks (opened_at);
