-- More alert channel kinds (Discord, Telegram, Microsoft Teams, PagerDuty, ntfy,
-- Mattermost, Pushover), reminders while a site stays down, and the owner's time
-- zone for readable alert times.

ALTER TABLE alert_channels DROP CONSTRAINT alert_channels_kind_check;
ALTER TABLE alert_channels ADD CONSTRAINT alert_channels_kind_check
    CHECK (kind IN ('slack', 'email', 'webhook', 'discord', 'telegram', 'teams',
                    'pagerduty', 'ntfy', 'mattermost', 'pushover'));

-- While an incident stays open, the alert is repeated every reminder_minutes,
-- at most reminder_max times; both or neither.
ALTER TABLE alert_channels
    ADD COLUMN reminder_minutes INTEGER CHECK (reminder_minutes BETWEEN 1 AND 10080),
    ADD COLUMN reminder_max INTEGER CHECK (reminder_max BETWEEN 1 AND 100),
    ADD CONSTRAINT alert_channels_reminder_check
        CHECK ((reminder_minutes IS NULL) = (reminder_max IS NULL));

-- An IANA zone name (e.g. Europe/Berlin), checked by the API; NULL: UTC only.
ALTER TABLE users ADD COLUMN time_zone TEXT CHECK (length(time_zone) BETWEEN 1 AND 64);

ALTER TABLE alert_outbox DROP CONSTRAINT alert_outbox_kind_check;
ALTER TABLE alert_outbox ADD CONSTRAINT alert_outbox_kind_check
    CHECK (kind IN ('incident_opened', 'incident_resolved', 'incident_reminder',
                    'tls_expiring', 'test', 'operator', 'channel_confirmation'));

-- A reminder whose incident was resolved before it went out is cancelled, not
-- failed: nothing went wrong and nobody needs telling.
ALTER TABLE alert_outbox DROP CONSTRAINT alert_outbox_state_check;
ALTER TABLE alert_outbox ADD CONSTRAINT alert_outbox_state_check
    CHECK (state IN ('pending', 'sent', 'failed', 'cancelled'));
