DELETE FROM alert_outbox WHERE kind = 'incident_reminder' OR state = 'cancelled';
ALTER TABLE alert_outbox DROP CONSTRAINT alert_outbox_state_check;
ALTER TABLE alert_outbox ADD CONSTRAINT alert_outbox_state_check
    CHECK (state IN ('pending', 'sent', 'failed'));
ALTER TABLE alert_outbox DROP CONSTRAINT alert_outbox_kind_check;
ALTER TABLE alert_outbox ADD CONSTRAINT alert_outbox_kind_check
    CHECK (kind IN ('incident_opened', 'incident_resolved', 'tls_expiring', 'test',
                    'operator', 'channel_confirmation'));
ALTER TABLE users DROP COLUMN time_zone;
ALTER TABLE alert_channels
    DROP CONSTRAINT alert_channels_reminder_check,
    DROP COLUMN reminder_max,
    DROP COLUMN reminder_minutes;
DELETE FROM alert_channels WHERE kind NOT IN ('slack', 'email', 'webhook');
ALTER TABLE alert_channels DROP CONSTRAINT alert_channels_kind_check;
ALTER TABLE alert_channels ADD CONSTRAINT alert_channels_kind_check
    CHECK (kind IN ('slack', 'email', 'webhook'));
