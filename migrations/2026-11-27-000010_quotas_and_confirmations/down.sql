DROP TABLE target_host_checks;
DELETE FROM alert_outbox WHERE kind = 'channel_confirmation';
ALTER TABLE alert_outbox DROP CONSTRAINT alert_outbox_kind_check;
ALTER TABLE alert_outbox ADD CONSTRAINT alert_outbox_kind_check
    CHECK (kind IN ('incident_opened', 'incident_resolved', 'tls_expiring', 'test', 'operator'));
ALTER TABLE alert_channels
    DROP COLUMN confirmation_expires_at,
    DROP COLUMN confirmation_hash,
    DROP COLUMN confirmed_at;
ALTER TABLE users DROP COLUMN max_checks_per_day, DROP COLUMN max_sites;
